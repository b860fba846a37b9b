// qinfer/gguf/detail/cursor.hpp — bounds-checked sequential reading of untrusted bytes.
//
// Every read checks the bytes left first, so no field can point the parser outside the
// buffer. Failures throw qinfer::error naming the source, the byte offset of the field and
// what was being parsed ("key 'general.name'", "tensor 'output.weight'").
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "../../core/config.hpp"
#include "../../core/error.hpp"
#include "bytes.hpp"
#include "text.hpp"

QINFER_NAMESPACE_BEGIN
namespace gguf::detail {

// What the parser is looking at; formatted only when a message is needed.
struct subject {
    enum class kind { file, header, entry_index, key, tensor_index, tensor };
    kind what = kind::file;
    std::uint64_t index = 0;
    std::string_view name;

    static subject whole_file() noexcept { return {}; }
    static subject header() noexcept { return {kind::header, 0, {}}; }
    static subject entry(std::uint64_t i) noexcept { return {kind::entry_index, i, {}}; }
    static subject key(std::string_view k) noexcept { return {kind::key, 0, k}; }
    static subject tensor_info(std::uint64_t i) noexcept { return {kind::tensor_index, i, {}}; }
    static subject tensor(std::string_view n) noexcept { return {kind::tensor, 0, n}; }

    std::string describe() const {
        switch (what) {
            case kind::file: return {};
            case kind::header: return "header";
            case kind::entry_index: return cat("metadata entry #", index);
            case kind::key: return "key " + quoted(name);
            case kind::tensor_index: return cat("tensor info #", index);
            case kind::tensor: return "tensor " + quoted(name);
        }
        return {};
    }
};

// "model.gguf: byte offset 40, key 'general.alignment': expected ..., found ..."
inline std::string located(std::string_view source, std::uint64_t offset, const subject& about,
                           std::string_view message) {
    std::string s = cat(source, ": byte offset ", offset);
    if (const std::string who = about.describe(); !who.empty()) s += cat(", ", who);
    return cat(s, ": ", message);
}

class cursor {
public:
    cursor(std::span<const std::byte> bytes, std::string_view source) noexcept
        : data_(bytes.data()), size_(bytes.size()), source_(source) {}

    std::uint64_t offset() const noexcept { return pos_; }
    std::uint64_t size() const noexcept { return size_; }
    std::uint64_t remaining() const noexcept { return size_ - pos_; }
    std::string_view source() const noexcept { return source_; }

    void about(subject s) noexcept { about_ = s; }
    const subject& about() const noexcept { return about_; }

    [[noreturn]] void fail_at(std::uint64_t offset, std::string_view message) const {
        throw error(located(source_, offset, about_, message), errc::format);
    }
    [[noreturn]] void fail(std::string_view message) const { fail_at(pos_, message); }

    template <le_scalar T> T read(const char* what) {
        need(sizeof(T), what);
        const T v = load_le<T>(data_ + pos_);
        pos_ += sizeof(T);
        return v;
    }

    std::span<const std::byte> take(std::uint64_t n, const char* what) {
        need(n, what);
        const std::span<const std::byte> s(data_ + pos_, static_cast<std::size_t>(n));
        pos_ += n;
        return s;
    }

    // A GGUF string (u64 length + bytes), viewed in place.
    std::string_view read_string(const char* what, std::uint64_t max_bytes) {
        const std::uint64_t at = pos_;
        const auto n = read<std::uint64_t>(what);
        if (n > max_bytes)
            fail_at(at, cat("expected ", what, " of at most ", max_bytes, " bytes, found length ", n));
        if (n > remaining())
            fail_at(at, cat("expected ", what, " of ", n, " bytes, found only ", remaining(),
                            " bytes left in the file"));
        const auto* p = reinterpret_cast<const char*>(data_ + pos_);
        pos_ += n;
        return {p, static_cast<std::size_t>(n)};
    }

private:
    void need(std::uint64_t n, const char* what) const {
        if (n > remaining())
            fail(cat("expected ", n, " bytes for ", what, ", found only ", remaining(),
                     " before the end of the file"));
    }

    const std::byte* data_;
    std::uint64_t size_;
    std::uint64_t pos_ = 0;
    std::string_view source_;
    subject about_;
};

}  // namespace gguf::detail
QINFER_NAMESPACE_END
