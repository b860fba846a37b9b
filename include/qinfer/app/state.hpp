// qinfer/app/state.hpp — a session's state in a file: resume a conversation after a restart.
//
//   qinfer::save_state(session, "chat.qstate", &sampler);   // sampler optional
//   qinfer::load_state(other_session, "chat.qstate", &sampler);
//
// The file holds the session's snapshot (tokens, cached keys and values, next-token logits)
// and, optionally, a sampler chain's state. It is checked as the GGUF reader checks models:
// every count against the file's size before anything is allocated, the model by its
// fingerprint, a checksum over the whole file, and nothing changes unless all of it is good.
//
// Layout (little-endian), version 1:
//   "QINFSTAT"  u32 version  u32 flags (1: logits, 2: sampler)  u64 model fingerprint
//   u32 cache type (0 f16, 1 f32)  u32 long RoPE (0 / 1)
//   i64 n_layer  i64 kv_width  i64 n_vocab  i64 n_tokens
//   i32 tokens[n_tokens]  [f32 logits[n_vocab]]  [u64 sampler_bytes, its text]
//   keys then values: n_layer * n_tokens * kv_width elements each
//   u64 FNV-1a hash of every byte before it
#pragma once

#include <bit>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../model/session.hpp"
#include "../sampling/sampler.hpp"

QINFER_NAMESPACE_BEGIN

namespace detail {

static_assert(std::endian::native == std::endian::little, "state files are written little-endian");
inline constexpr char state_magic[8] = {'Q', 'I', 'N', 'F', 'S', 'T', 'A', 'T'};
inline constexpr std::uint32_t state_version = 1;

struct fnv1a {
    std::uint64_t h = 0xcbf29ce484222325ull;
    void add(const void* p, std::size_t n) noexcept {
        const auto* b = static_cast<const unsigned char*>(p);
        for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
    }
};

class state_writer {
public:
    explicit state_writer(const std::filesystem::path& p) : path_(p), out_(p, std::ios::binary | std::ios::trunc) {
        if (!out_) throw error(p.string() + ": cannot open the state file for writing", errc::io);
    }
    void bytes(const void* p, std::size_t n) {
        hash_.add(p, n);
        out_.write(static_cast<const char*>(p), std::streamsize(n));
    }
    template <class T> void value(T v) { bytes(&v, sizeof v); }
    void finish() {
        const std::uint64_t h = hash_.h;
        out_.write(reinterpret_cast<const char*>(&h), sizeof h);
        out_.flush();
        if (!out_) throw error(path_.string() + ": writing the state file failed", errc::io);
    }

private:
    std::filesystem::path path_;
    std::ofstream out_;
    fnv1a hash_;
};

class state_reader {
public:
    explicit state_reader(const std::filesystem::path& p) : path_(p.string()), in_(p, std::ios::binary) {
        if (!in_) throw error(path_ + ": cannot open the state file", errc::io);
        std::error_code ec;
        size_ = std::filesystem::file_size(p, ec);
        if (ec) throw error(path_ + ": cannot read the state file's size", errc::io);
    }
    std::uint64_t left() const noexcept { return size_ - read_; }
    [[noreturn]] void fail(const std::string& why) const {
        throw error(path_ + ": not a valid qinfer state file: " + why, errc::format);
    }
    void bytes(void* p, std::size_t n, const char* what) {
        if (n > left()) fail(std::string("the file ends inside ") + what);
        in_.read(static_cast<char*>(p), std::streamsize(n));
        if (!in_) throw error(path_ + ": reading the state file failed", errc::io);
        read_ += n;
        hash_.add(p, n);
    }
    template <class T> T value(const char* what) {
        T v;
        bytes(&v, sizeof v, what);
        return v;
    }
    // Checks that `count` elements of `size` bytes fit in what is left before allocating them.
    void need(std::uint64_t count, std::uint64_t size, const char* what) const {
        if (size != 0 && count > left() / size) fail(std::string(what) + " would run past the end of the file");
    }
    void finish() {
        const std::uint64_t expect = hash_.h;
        std::uint64_t h = 0;
        if (left() != sizeof h) fail(left() < sizeof h ? "the checksum is missing" : "bytes follow the data");
        in_.read(reinterpret_cast<char*>(&h), sizeof h);
        if (!in_) throw error(path_ + ": reading the state file failed", errc::io);
        if (h != expect) fail("the checksum does not match (the file is damaged)");
    }
    const std::string& path() const noexcept { return path_; }

private:
    std::string path_;
    std::ifstream in_;
    std::uint64_t size_ = 0, read_ = 0;
    fnv1a hash_;
};

}  // namespace detail

// Writes the session's state (and the sampler's, when given) to `path`.
inline void save_state(const session& s, const std::filesystem::path& path, const sampler_chain* sampler = nullptr) {
    const session_snapshot snap = s.snapshot();
    const std::string sampler_text = sampler ? sampler->save_state() : std::string();
    detail::state_writer w(path);
    w.bytes(detail::state_magic, sizeof detail::state_magic);
    w.value(detail::state_version);
    w.value(std::uint32_t((snap.logits.empty() ? 0 : 1) | (sampler ? 2 : 0)));
    w.value(snap.model_fingerprint);
    w.value(std::uint32_t(snap.cache_type == kv_type::f16 ? 0 : 1));
    w.value(std::uint32_t(snap.long_rope ? 1 : 0));
    w.value(std::int64_t(snap.n_layer));
    w.value(std::int64_t(snap.kv_width));
    w.value(std::int64_t(s.get_model().config().n_vocab));
    w.value(std::int64_t(snap.tokens.size()));
    w.bytes(snap.tokens.data(), snap.tokens.size() * sizeof(std::int32_t));
    if (!snap.logits.empty()) w.bytes(snap.logits.data(), snap.logits.size() * sizeof(float));
    if (sampler) {
        w.value(std::uint64_t(sampler_text.size()));
        w.bytes(sampler_text.data(), sampler_text.size());
    }
    w.bytes(snap.keys.data(), snap.keys.size());
    w.bytes(snap.values.data(), snap.values.size());
    w.finish();
}

// Replaces the session's context with the one saved in `path` (and the sampler's state, when
// given and the file has one). Throws qinfer::error naming the file: errc::io when it cannot
// be read, errc::format when it is not a valid state file, errc::invalid_argument when it
// belongs to another model or does not fit the session. Nothing changes unless it succeeds.
inline void load_state(session& s, const std::filesystem::path& path, sampler_chain* sampler = nullptr) {
    const model_config& c = s.get_model().config();
    detail::state_reader r(path);
    char magic[sizeof detail::state_magic];
    r.bytes(magic, sizeof magic, "the header");
    if (std::memcmp(magic, detail::state_magic, sizeof magic) != 0) r.fail("it does not start with QINFSTAT");
    const auto version = r.value<std::uint32_t>("the header");
    if (version != detail::state_version)
        r.fail("version " + std::to_string(version) + " (this qinfer reads version " + std::to_string(detail::state_version) + ")");
    const auto flags = r.value<std::uint32_t>("the header");
    if (flags > 3) r.fail("unknown flags " + std::to_string(flags));
    session_snapshot snap;
    snap.model_fingerprint = r.value<std::uint64_t>("the header");
    if (snap.model_fingerprint != s.get_model().fingerprint())
        throw error(r.path() + ": the state was saved with another model (fingerprints differ)", errc::invalid_argument);
    const auto type = r.value<std::uint32_t>("the header");
    if (type > 1) r.fail("unknown cache type " + std::to_string(type));
    snap.cache_type = type == 0 ? kv_type::f16 : kv_type::f32;
    const auto long_rope = r.value<std::uint32_t>("the header");
    if (long_rope > 1) r.fail("bad long-RoPE flag");
    snap.long_rope = long_rope == 1;
    snap.n_layer = r.value<std::int64_t>("the header");
    snap.kv_width = r.value<std::int64_t>("the header");
    const auto n_vocab = r.value<std::int64_t>("the header");
    const auto n_tokens = r.value<std::int64_t>("the header");
    if (snap.n_layer != c.n_layer || snap.kv_width != c.n_head_kv * c.head_dim || n_vocab != c.n_vocab)
        r.fail("its shape (" + std::to_string(snap.n_layer) + " layers, width " + std::to_string(snap.kv_width) + ", " +
               std::to_string(n_vocab) + " tokens vocabulary) is not the model's");
    if (n_tokens < 0 || n_tokens > s.n_ctx())
        throw error(r.path() + ": the state holds " + std::to_string(n_tokens) + " tokens; the session's n_ctx is " +
                        std::to_string(s.n_ctx()),
                    errc::invalid_argument);
    r.need(std::uint64_t(n_tokens), sizeof(std::int32_t), "the tokens");
    snap.tokens.resize(std::size_t(n_tokens));
    r.bytes(snap.tokens.data(), snap.tokens.size() * sizeof(std::int32_t), "the tokens");
    if (flags & 1) {
        r.need(std::uint64_t(n_vocab), sizeof(float), "the logits");
        snap.logits.resize(std::size_t(n_vocab));
        r.bytes(snap.logits.data(), snap.logits.size() * sizeof(float), "the logits");
    }
    std::string sampler_text;
    if (flags & 2) {
        const auto n = r.value<std::uint64_t>("the sampler state's length");
        r.need(n, 1, "the sampler state");
        sampler_text.resize(std::size_t(n));
        r.bytes(sampler_text.data(), sampler_text.size(), "the sampler state");
    }
    const std::uint64_t elem = snap.cache_type == kv_type::f16 ? 2 : 4;
    const std::uint64_t kv_bytes = std::uint64_t(snap.n_layer) * std::uint64_t(n_tokens) * std::uint64_t(snap.kv_width) * elem;
    r.need(2, kv_bytes, "the keys and values");
    snap.keys.resize(std::size_t(kv_bytes));
    snap.values.resize(std::size_t(kv_bytes));
    r.bytes(snap.keys.data(), snap.keys.size(), "the keys");
    r.bytes(snap.values.data(), snap.values.size(), "the values");
    r.finish();
    // All read and checked: apply. Each of the two either succeeds or changes nothing, so the
    // sampler's old state is put back if the session's restore fails after it.
    if (sampler && (flags & 2)) {
        const std::string before = sampler->save_state();
        try {
            sampler->load_state(sampler_text);
        } catch (const error& e) {
            throw error(r.path() + ": " + e.what(), e.code());
        }
        try {
            s.restore(snap);
        } catch (...) {
            sampler->load_state(before);
            throw;
        }
        return;
    }
    s.restore(snap);
}

QINFER_NAMESPACE_END
