// qinfer/model/model.hpp — a loaded model: the mapped file, its configuration, weights and
// tokenizer.
// Read-only after loading, so one model can serve any number of sessions and threads.
#pragma once

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "../gguf/reader.hpp"
#include "../text/tokenizer.hpp"
#include "config.hpp"
#include "transformer.hpp"
#include "weights.hpp"

QINFER_NAMESPACE_BEGIN

// How a model loads. With a progress callback the constructor first reads every page of the
// file (so the first eval does not stall on page faults), reporting bytes read of the file's
// size: (0, total), then after each chunk of model::load_chunk bytes (the last may be
// shorter), ending with (total, total). Returning false stops the load: the constructor
// throws qinfer::error with code errc::cancelled. Without one, pages are read on first use.
struct load_options {
    std::function<bool(std::uint64_t done, std::uint64_t total)> progress;
};

class model {
public:
    static constexpr std::uint64_t load_chunk = std::uint64_t(1) << 20;  // bytes between progress calls

    explicit model(const std::filesystem::path& path, const load_options& opt = {}) : model(gguf::reader(path), opt) {}

    explicit model(gguf::reader file, const load_options& opt = {})
        : file_(touch_pages(std::move(file), opt)), config_(read_config(file_)), tokenizer_(text::from_gguf(file_)) {
        if (std::int64_t(tokenizer_.size()) != config_.n_vocab)
            throw error(file_.path() + ": the tokenizer has " + std::to_string(tokenizer_.size()) +
                            " tokens but the model's vocabulary is " + std::to_string(config_.n_vocab),
                        errc::format);
        visit_arch(config_.arch, [&]<class Arch>() {
            weights_ = load_weights<Arch>(file_, config_);
            forward_ = &forward<Arch>;
            shift_ = &shift_keys<Arch>;
        });
        fingerprint_ = compute_fingerprint(file_);
    }

    model(const model&) = delete;
    model& operator=(const model&) = delete;

    const model_config& config() const noexcept { return config_; }
    const model_weights& weights() const noexcept { return weights_; }
    const gguf::reader& file() const noexcept { return file_; }
    const text::tokenizer& tokenizer() const noexcept { return tokenizer_; }

    // The architecture's forward pass (see model/transformer.hpp); sessions call this.
    void run(kv_cache& cache, std::span<const std::int32_t> tokens, std::int64_t n_past, bool all_logits, float* logits,
             executor& pool, forward_scratch& scratch, const trace_hook* trace) const {
        forward_(config_, weights_, cache, tokens, n_past, all_logits, logits, pool, scratch, trace);
    }

    // Re-rotates cached keys after a context shift (see shift_keys in model/transformer.hpp).
    void shift(kv_cache& cache, std::int64_t begin, std::int64_t end, std::int64_t delta) const {
        shift_(config_, weights_, cache, begin, end, delta);
    }

    // Identifies the model a saved session state belongs to: a 64-bit FNV-1a hash of the
    // file's size, its tensor directory (names, types, shapes, offsets) and the first 64
    // bytes of every tensor. Equal files agree; a re-quantized or fine-tuned file does not.
    std::uint64_t fingerprint() const noexcept { return fingerprint_; }

private:
    static std::uint64_t compute_fingerprint(const gguf::reader& f) noexcept {
        std::uint64_t h = 0xcbf29ce484222325ull;
        const auto mix = [&h](const void* p, std::size_t n) {
            const auto* b = static_cast<const unsigned char*>(p);
            for (std::size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
        };
        const std::uint64_t size = f.file_bytes().size();
        mix(&size, sizeof size);
        for (const gguf::tensor_info& t : f.tensors()) {
            mix(t.name.data(), t.name.size());
            const auto type = std::uint32_t(t.type);
            mix(&type, sizeof type);
            mix(t.ne.data(), sizeof t.ne);
            mix(&t.offset, sizeof t.offset);
            mix(t.data, std::size_t(std::min<std::uint64_t>(t.n_bytes, 64)));
        }
        return h;
    }

    static gguf::reader touch_pages(gguf::reader file, const load_options& opt) {
        if (!opt.progress) return file;
        const std::span<const std::byte> bytes = file.file_bytes();
        const std::uint64_t total = bytes.size();
        const auto report = [&](std::uint64_t done) {
            if (!opt.progress(done, total))
                throw error(file.path() + ": loading cancelled after " + std::to_string(done) + " of " + std::to_string(total) +
                                " bytes",
                            errc::cancelled);
        };
        report(0);
        const volatile std::byte* p = bytes.data();
        for (std::uint64_t done = 0; done < total;) {
            const std::uint64_t end = std::min(total, done + load_chunk);
            for (std::uint64_t i = done; i < end; i += 4096) (void)p[i];  // one read per page faults it in
            (void)p[end - 1];
            done = end;
            report(done);
        }
        return file;
    }

    using forward_fn = void (*)(const model_config&, const model_weights&, kv_cache&, std::span<const std::int32_t>,
                                std::int64_t, bool, float*, executor&, forward_scratch&, const trace_hook*);
    gguf::reader file_;
    model_config config_;
    text::tokenizer tokenizer_;
    model_weights weights_;
    using shift_fn = void (*)(const model_config&, const model_weights&, kv_cache&, std::int64_t, std::int64_t, std::int64_t);
    forward_fn forward_ = nullptr;
    shift_fn shift_ = nullptr;
    std::uint64_t fingerprint_ = 0;
};

QINFER_NAMESPACE_END
