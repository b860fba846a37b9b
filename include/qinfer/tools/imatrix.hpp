// qinfer/tools/imatrix.hpp — reads llama.cpp's importance-matrix files (what llama-imatrix
// writes, what llama-quantize --imatrix reads) into the per-tensor importance vectors that
// the quantizers take (`quantize_row(x, y, n, importance)` in every qinfer/quant header
// whose ggml quantizer uses one).
//
// Two formats, told apart by the first four bytes:
//
// - GGUF ("GGUF" magic). For every matrix `T` two F32 tensors: `T.in_sum2`, the sums of
//   squared activations per input column ([ne0, n_expert]), and `T.counts`, how many
//   activations each expert saw ([1, n_expert]; read as integers, rounded). Metadata keys
//   imatrix.datasets (array of strings), imatrix.chunk_count and imatrix.chunk_size (u32)
//   are required, as llama-quantize requires them. Importance = sums / count per expert,
//   1 where an expert saw nothing.
// - Legacy binary (llama.cpp's original .dat), all little-endian int32 / float32:
//     n_entries; n_entries times { name_len, name bytes, ncall, nval, nval floats };
//   optionally followed by { chunk_count, dataset_len, dataset bytes }. The floats are
//   already averaged per call times ncall: importance = value / ncall (as is when ncall <= 0).
//
// Files are untrusted: every count and length is checked against what the file holds, and
// every problem is a qinfer::error naming the file and the entry.
#pragma once

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../core/config.hpp"
#include "../core/error.hpp"
#include "../core/types.hpp"
#include "../gguf/reader.hpp"

QINFER_NAMESPACE_BEGIN
namespace tools {

struct imatrix {
    // Tensor name (e.g. "blk.0.ffn_down.weight") -> one importance per column of the matrix,
    // ne0 * n_expert values (expert e's columns at e * ne0).
    std::map<std::string, std::vector<float>> entries;
    std::vector<std::string> datasets;  // what it was computed on (may be empty)
    int chunk_count = 0;                // how many chunks of text (0: not recorded)
    int chunk_size = 0;                 // tokens per chunk (GGUF only)
    bool legacy = false;                // read from the legacy binary format
    std::string path;                   // the file, as given

    const std::vector<float>* find(std::string_view name) const {
        const auto it = entries.find(std::string(name));
        return it == entries.end() ? nullptr : &it->second;
    }
};

namespace detail {

inline std::string imatrix_quoted(std::string_view s) { return gguf::detail::quoted(s); }

// Little-endian reads over the legacy file's bytes; every read is bounds-checked.
class imatrix_cursor {
public:
    imatrix_cursor(std::span<const std::byte> b, const std::string& file) : b_(b), file_(file) {}
    std::size_t left() const noexcept { return b_.size() - pos_; }
    std::size_t pos() const noexcept { return pos_; }
    std::int32_t i32(std::string_view what) {
        need(4, what);
        std::uint32_t u = 0;
        for (int k = 0; k < 4; ++k) u |= std::uint32_t(std::to_integer<std::uint8_t>(b_[pos_ + std::size_t(k)])) << (8 * k);
        pos_ += 4;
        return static_cast<std::int32_t>(u);
    }
    std::span<const std::byte> bytes(std::size_t n, std::string_view what) {
        need(n, what);
        auto s = b_.subspan(pos_, n);
        pos_ += n;
        return s;
    }
    [[noreturn]] void fail(std::string_view what) const {
        throw error(gguf::detail::cat(file_, ": ", what, " (at byte ", pos_, " of ", b_.size(), ")"));
    }

private:
    void need(std::size_t n, std::string_view what) const {
        if (n > left())
            throw error(gguf::detail::cat(file_, ": truncated legacy imatrix file: ", what, " needs ", n,
                                          " bytes at byte ", pos_, ", only ", left(), " left"));
    }
    std::span<const std::byte> b_;
    std::size_t pos_ = 0;
    const std::string& file_;
};

// A C string as llama.cpp keeps it: cut at the first NUL.
inline std::string c_string(std::span<const std::byte> b) {
    std::string s(reinterpret_cast<const char*>(b.data()), b.size());
    if (const auto z = s.find('\0'); z != std::string::npos) s.resize(z);
    return s;
}

inline imatrix parse_legacy_imatrix(std::span<const std::byte> bytes, const std::string& file) {
    imatrix m;
    m.path = file;
    m.legacy = true;
    imatrix_cursor c(bytes, file);
    const std::int32_t n_entries = c.i32("the entry count");
    if (n_entries < 1) c.fail(gguf::detail::cat("legacy imatrix file has no entries (entry count ", n_entries, ")"));
    // Each entry takes at least 16 bytes: a count beyond that is a corrupt file, not a huge one.
    if (std::uint64_t(n_entries) > c.left() / 16)
        c.fail(gguf::detail::cat("entry count ", n_entries, " does not fit in the file"));
    for (std::int32_t i = 0; i < n_entries; ++i) {
        const std::string which = gguf::detail::cat("entry ", i + 1, " of ", n_entries);
        const std::int32_t len = c.i32(which + ": name length");
        if (len < 0) c.fail(gguf::detail::cat(which, ": negative name length ", len));
        const std::string name = c_string(c.bytes(std::size_t(len), which + ": name"));
        const std::string named = gguf::detail::cat(which, " (", imatrix_quoted(name), ")");
        const std::int32_t ncall = c.i32(named + ": call count");
        const std::int32_t nval = c.i32(named + ": value count");
        if (nval < 1) c.fail(gguf::detail::cat(named, ": value count ", nval, " (must be at least 1)"));
        const auto raw = c.bytes(std::size_t(nval) * 4, named + ": values");
        std::vector<float> v(static_cast<std::size_t>(nval));
        std::memcpy(v.data(), raw.data(), raw.size());  // little-endian float32, as on x86
        // llama-quantize: the stored values are per-call means times ncall.
        if (ncall > 0)
            for (float& f : v) f = f / static_cast<float>(std::int64_t(ncall));
        m.entries[name] = std::move(v);  // a repeated name replaces the earlier one, as in llama.cpp
    }
    // Optional trailer: the chunk count, then the dataset name.
    if (c.left() > 0) {
        m.chunk_count = c.i32("trailer: chunk count");
        if (c.left() >= 4) {
            const std::int32_t len = c.i32("trailer: dataset name length");
            if (len > 0) m.datasets.push_back(c_string(c.bytes(std::size_t(len), "trailer: dataset name")));
        }
    }
    return m;
}

inline imatrix parse_gguf_imatrix(const gguf::reader& r) {
    const std::string& file = r.path();
    imatrix m;
    m.path = file;
    if (r.tensors().empty()) throw error(gguf::detail::cat(file, ": imatrix file has no tensors"));
    for (std::string_view key : {"imatrix.datasets", "imatrix.chunk_count", "imatrix.chunk_size"})
        if (!r.contains(key))
            throw error(gguf::detail::cat(file, ": missing imatrix metadata: key ", imatrix_quoted(key),
                                          " (is this an imatrix file?)"));
    if (r.type_of("imatrix.datasets") == gguf::value_type::array) {
        const gguf::metadata_entry* e = r.find("imatrix.datasets");
        if (e->value.is_array_of<std::string_view>())
            for (std::string_view s : e->value.as_array<std::string_view>()) m.datasets.emplace_back(s);
    }
    m.chunk_count = static_cast<int>(r.require<std::uint32_t>("imatrix.chunk_count"));
    m.chunk_size = static_cast<int>(r.require<std::uint32_t>("imatrix.chunk_size"));

    struct pair { const gguf::tensor_info* sums = nullptr; const gguf::tensor_info* counts = nullptr; };
    std::map<std::string, pair> by_name;
    auto strip = [](std::string_view n, std::string_view suffix, std::string& out) {
        if (n.size() < suffix.size() || n.substr(n.size() - suffix.size()) != suffix) return false;
        out = std::string(n.substr(0, n.size() - suffix.size()));
        return true;
    };
    for (const gguf::tensor_info& t : r.tensors()) {
        std::string base;
        if (t.name.empty()) continue;
        if (strip(t.name, ".in_sum2", base)) by_name[base].sums = &t;
        else if (strip(t.name, ".counts", base)) by_name[base].counts = &t;
    }
    for (const auto& [name, p] : by_name) {
        const std::string entry = gguf::detail::cat("entry ", imatrix_quoted(name));
        if (!p.sums || !p.counts)
            throw error(gguf::detail::cat(file, ": ", entry, " has ", p.sums ? "sums but no counts" : "counts but no sums",
                                          " (tensor ", imatrix_quoted(name + (p.sums ? ".counts" : ".in_sum2")),
                                          " is missing)"));
        for (const gguf::tensor_info* t : {p.sums, p.counts})
            if (t->type != type_id::f32)
                throw error(gguf::detail::cat(file, ": tensor ", imatrix_quoted(t->name), " has type ",
                                              type_name(t->type), ", expected f32"));
        const std::int64_t nval = p.sums->n_elements, ncounts = p.counts->n_elements;
        if (nval < 1 || ncounts < 1)
            throw error(gguf::detail::cat(file, ": ", entry, " is empty (", nval, " sums, ", ncounts, " counts)"));
        if (nval % ncounts != 0)
            throw error(gguf::detail::cat(file, ": ", entry, " has ", nval, " sums, not a multiple of its ", ncounts,
                                          " counts (one per expert)"));
        const std::int64_t ne0 = nval / ncounts;
        std::vector<float> sums(static_cast<std::size_t>(nval));
        std::memcpy(sums.data(), p.sums->data, sums.size() * sizeof(float));
        std::vector<float> counts(static_cast<std::size_t>(ncounts));
        std::memcpy(counts.data(), p.counts->data, counts.size() * sizeof(float));
        std::vector<float> v(static_cast<std::size_t>(nval));
        for (std::int64_t j = 0; j < ncounts; ++j) {
            const float c = counts[static_cast<std::size_t>(j)];
            if (!std::isfinite(c) || std::fabs(c) > 9.0e18f)
                throw error(gguf::detail::cat(file, ": ", entry, ": count ", j, " is ", std::to_string(c), ", not a token count"));
            // llama.cpp rounds the stored float to an integer, then divides by it as a float.
            const float count = static_cast<float>(static_cast<std::int64_t>(std::lround(c)));
            for (std::int64_t i = 0; i < ne0; ++i) {
                const auto k = static_cast<std::size_t>(j * ne0 + i);
                v[k] = count > 0.0f ? sums[k] / count : 1.0f;
            }
        }
        m.entries.emplace(name, std::move(v));
    }
    if (m.entries.empty())
        throw error(gguf::detail::cat(file, ": imatrix file has no '<tensor>.in_sum2' / '<tensor>.counts' pairs"));
    return m;
}

}  // namespace detail

// Parses an imatrix file held in memory; `name` stands for the file in messages.
inline imatrix parse_imatrix(std::span<const std::byte> bytes, const std::string& name) {
    if (bytes.size() >= 4 && std::memcmp(bytes.data(), "GGUF", 4) == 0) {
        imatrix m = detail::parse_gguf_imatrix(gguf::reader::from_memory(bytes, name));
        return m;
    }
    return detail::parse_legacy_imatrix(bytes, name);
}

// Reads an imatrix file (GGUF or legacy format, see the top of this header).
inline imatrix load_imatrix(const std::filesystem::path& path) {
    const std::string name = path.string();
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
        throw error(gguf::detail::cat(name, ": imatrix file does not exist or is not a regular file"));
    std::ifstream f(path, std::ios::binary);
    if (!f) throw error(gguf::detail::cat(name, ": cannot open the imatrix file"));
    f.seekg(0, std::ios::end);
    const std::streamoff size = f.tellg();
    f.seekg(0, std::ios::beg);
    if (size < 0) throw error(gguf::detail::cat(name, ": cannot read the imatrix file"));
    std::vector<std::byte> bytes(static_cast<std::size_t>(size));
    f.read(reinterpret_cast<char*>(bytes.data()), size);
    if (!f) throw error(gguf::detail::cat(name, ": cannot read the imatrix file"));
    if (bytes.size() >= 4 && std::memcmp(bytes.data(), "GGUF", 4) == 0) {
        // The reader keeps views into `bytes`; everything is copied out before they go.
        const gguf::reader r = gguf::reader::from_memory(bytes, name);
        return detail::parse_gguf_imatrix(r);
    }
    return detail::parse_legacy_imatrix(bytes, name);
}

// llama-quantize's --include-weights / --exclude-weights: keep only the entries whose name
// contains one of `include` (when not empty), then drop those containing one of `exclude`.
inline void filter_imatrix(imatrix& m, const std::vector<std::string>& include, const std::vector<std::string>& exclude) {
    for (const std::string& part : exclude)
        std::erase_if(m.entries, [&](const auto& e) { return e.first.find(part) != std::string::npos; });
    if (!include.empty())
        std::erase_if(m.entries, [&](const auto& e) {
            for (const std::string& part : include)
                if (e.first.find(part) != std::string::npos) return false;
            return true;
        });
}

}  // namespace tools
QINFER_NAMESPACE_END
