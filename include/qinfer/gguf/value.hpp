// qinfer/gguf/value.hpp — GGUF metadata value types and a typed view of one stored value.
//
// A `value` views the bytes of the file (no copy). Reading it as the wrong type throws a
// qinfer::error that names the expected and the found type; nothing converts silently.
#pragma once

#include <concepts>
#include <cstddef>
#include <cstdint>
#include <iterator>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../core/config.hpp"
#include "../core/error.hpp"
#include "detail/bytes.hpp"
#include "detail/cursor.hpp"
#include "detail/text.hpp"
#include "detail/format.hpp"

QINFER_NAMESPACE_BEGIN
namespace gguf {

enum class value_type : std::uint32_t {
    u8 = 0, i8 = 1, u16 = 2, i16 = 3, u32 = 4, i32 = 5, f32 = 6, boolean = 7,
    string = 8, array = 9, u64 = 10, i64 = 11, f64 = 12,
};

constexpr bool is_value_type(std::uint32_t raw) noexcept { return raw <= 12; }

// The short names llama.cpp's gguf_type_name uses ("u32", "str", "arr").
constexpr std::string_view value_type_name(value_type t) noexcept {
    switch (t) {
        case value_type::u8: return "u8";
        case value_type::i8: return "i8";
        case value_type::u16: return "u16";
        case value_type::i16: return "i16";
        case value_type::u32: return "u32";
        case value_type::i32: return "i32";
        case value_type::f32: return "f32";
        case value_type::boolean: return "bool";
        case value_type::string: return "str";
        case value_type::array: return "arr";
        case value_type::u64: return "u64";
        case value_type::i64: return "i64";
        case value_type::f64: return "f64";
    }
    return "?";
}

// Bytes of one scalar; 0 for strings and arrays, whose size is stored in the file.
constexpr std::size_t fixed_size(value_type t) noexcept {
    switch (t) {
        case value_type::u8: case value_type::i8: case value_type::boolean: return 1;
        case value_type::u16: case value_type::i16: return 2;
        case value_type::u32: case value_type::i32: case value_type::f32: return 4;
        case value_type::u64: case value_type::i64: case value_type::f64: return 8;
        case value_type::string: case value_type::array: return 0;
    }
    return 0;
}

namespace detail {

// The C++ types metadata can be read as, and the stored type each one requires.
template <class T>
concept metadata_scalar =
    std::same_as<T, std::uint8_t> || std::same_as<T, std::int8_t> || std::same_as<T, std::uint16_t> ||
    std::same_as<T, std::int16_t> || std::same_as<T, std::uint32_t> || std::same_as<T, std::int32_t> ||
    std::same_as<T, std::uint64_t> || std::same_as<T, std::int64_t> || std::same_as<T, float> ||
    std::same_as<T, double> || std::same_as<T, bool>;

template <class T>
concept metadata_readable =
    metadata_scalar<T> || std::same_as<T, std::string_view> || std::same_as<T, std::string>;

template <metadata_readable T> constexpr value_type stored_type_of() noexcept {
    if constexpr (std::same_as<T, std::uint8_t>) return value_type::u8;
    else if constexpr (std::same_as<T, std::int8_t>) return value_type::i8;
    else if constexpr (std::same_as<T, std::uint16_t>) return value_type::u16;
    else if constexpr (std::same_as<T, std::int16_t>) return value_type::i16;
    else if constexpr (std::same_as<T, std::uint32_t>) return value_type::u32;
    else if constexpr (std::same_as<T, std::int32_t>) return value_type::i32;
    else if constexpr (std::same_as<T, std::uint64_t>) return value_type::u64;
    else if constexpr (std::same_as<T, std::int64_t>) return value_type::i64;
    else if constexpr (std::same_as<T, float>) return value_type::f32;
    else if constexpr (std::same_as<T, double>) return value_type::f64;
    else if constexpr (std::same_as<T, bool>) return value_type::boolean;
    else return value_type::string;
}

// Fewest bytes one element of type `t` can occupy (a string: its length; an array: its
// element type and count). Lets a count be checked against the bytes left up front.
constexpr std::uint64_t min_encoded_size(value_type t) noexcept {
    if (t == value_type::string) return 8;
    if (t == value_type::array) return 12;
    return fixed_size(t);
}

// Validates one encoded value of type `t` at the cursor and moves past it. `depth` counts
// enclosing arrays. Work is linear in the bytes consumed, so hostile files cannot make it slow.
inline void skip_value(cursor& c, value_type t, int depth) {
    if (t == value_type::string) {
        c.read_string("a string", max_string_bytes);
        return;
    }
    if (t != value_type::array) {
        c.take(fixed_size(t), "a value");
        return;
    }
    const std::uint64_t type_at = c.offset();
    const auto raw = c.read<std::uint32_t>("an array element type");
    if (!is_value_type(raw))
        c.fail_at(type_at, cat("expected an array element type in 0..12, found ", raw));
    const auto et = static_cast<value_type>(raw);
    if (et == value_type::array && depth + 1 >= max_array_depth)
        c.fail_at(type_at, cat("expected arrays nested at most ", max_array_depth, " deep, found deeper"));

    const std::uint64_t count_at = c.offset();
    const auto n = c.read<std::uint64_t>("an array length");
    if (n > max_array_elements)
        c.fail_at(count_at, cat("expected an array length of at most ", max_array_elements, ", found ", n));
    const std::uint64_t min_each = min_encoded_size(et);
    if (n > c.remaining() / min_each)
        c.fail_at(count_at, cat("expected an array of ", n, " ", value_type_name(et), " elements (at least ",
                                min_each, " bytes each), found only ", c.remaining(), " bytes left in the file"));
    if (fixed_size(et) != 0) {
        c.take(n * fixed_size(et), "array elements");  // n * size <= remaining: no overflow
        return;
    }
    for (std::uint64_t i = 0; i < n; ++i) skip_value(c, et, depth + 1);
}

// Marks the constructor that trusts its bytes: only the reader and writer, which have
// validated them, may build a `value`.
struct validated_t {
    explicit validated_t() = default;
};
inline constexpr validated_t validated{};

}  // namespace detail

class value {
public:
    value(detail::validated_t, value_type type, std::span<const std::byte> encoded) noexcept
        : type_(type), bytes_(encoded) {}

    value_type type() const noexcept { return type_; }
    bool is_array() const noexcept { return type_ == value_type::array; }

    // Element type of an array (throws for anything else).
    value_type element_type() const {
        require_array("element_type()");
        return static_cast<value_type>(detail::load_le<std::uint32_t>(bytes_.data()));
    }

    // Elements of an array; 1 for a scalar or string.
    std::uint64_t size() const noexcept {
        return is_array() ? detail::load_le<std::uint64_t>(bytes_.data() + 4) : 1;
    }

    // "u32", "str", "arr[str]", "arr[arr]" (inner arrays may differ, so no deeper type).
    std::string type_name() const {
        std::string s(value_type_name(type_));
        if (is_array()) s += detail::cat("[", value_type_name(element_type()), "]");
        return s;
    }

    template <detail::metadata_readable T> bool is() const noexcept {
        return type_ == detail::stored_type_of<T>();
    }
    template <detail::metadata_readable T> bool is_array_of() const noexcept {
        return is_array() && element_type() == detail::stored_type_of<T>();
    }

    // The value as T; std::string_view views the file. Throws if the stored type differs.
    template <detail::metadata_readable T> T as() const {
        if (!is<T>()) mismatch(value_type_name(detail::stored_type_of<T>()));
        return decode<T>(bytes_.data());
    }

    // All elements of an array of T. Throws unless this is an array of exactly T.
    template <detail::metadata_readable T> std::vector<T> as_array() const {
        if (!is_array_of<T>())
            mismatch(detail::cat("arr[", value_type_name(detail::stored_type_of<T>()), "]"));
        const auto n = static_cast<std::size_t>(size());
        std::vector<T> out;
        out.reserve(n);
        const std::byte* p = bytes_.data() + 12;
        const std::byte* end = bytes_.data() + bytes_.size();
        for (std::size_t i = 0; i < n; ++i) {
            out.push_back(decode<T>(p));
            p += element_bytes(detail::stored_type_of<T>(), p, end);
        }
        return out;
    }

    class element_iterator;
    struct element_range;
    // The elements of an array as values (for generic consumers such as gguf-dump).
    element_range elements() const;

    // The stored bytes after the type tag (for arrays: element type, count, elements).
    std::span<const std::byte> encoded() const noexcept { return bytes_; }

private:
    template <detail::metadata_readable T> static T decode(const std::byte* p) {
        if constexpr (std::same_as<T, bool>) {
            return p[0] != std::byte{0};  // like llama.cpp: any non-zero byte is true
        } else if constexpr (detail::metadata_scalar<T>) {
            return detail::load_le<T>(p);
        } else {
            const auto n = detail::load_le<std::uint64_t>(p);
            return T(reinterpret_cast<const char*>(p + 8), static_cast<std::size_t>(n));
        }
    }

    // Size of the element of type `t` at `p`, inside validated bytes that end at `end`.
    static std::size_t element_bytes(value_type t, const std::byte* p, const std::byte* end) {
        if (const std::size_t fixed = fixed_size(t)) return fixed;
        if (t == value_type::string) return 8 + static_cast<std::size_t>(detail::load_le<std::uint64_t>(p));
        detail::cursor c({p, static_cast<std::size_t>(end - p)}, "<array element>");
        detail::skip_value(c, t, 1);
        return static_cast<std::size_t>(c.offset());
    }

    void require_array(const char* what) const {
        if (!is_array())
            throw error(detail::cat("gguf value: ", what, " needs an array, found ", value_type_name(type_)), errc::format);
    }

    [[noreturn]] void mismatch(std::string_view expected) const {
        throw error(detail::cat("gguf value: expected type ", expected, ", found ", type_name()), errc::format);
    }

    value_type type_;
    std::span<const std::byte> bytes_;
};

// Walks an array's elements; holds only pointers into the file, never the `value` itself.
class value::element_iterator {
public:
    using iterator_category = std::forward_iterator_tag;
    using value_type = gguf::value;
    using difference_type = std::ptrdiff_t;
    using pointer = void;
    using reference = gguf::value;

    element_iterator() = default;
    element_iterator(gguf::value_type type, const std::byte* p, const std::byte* end, std::uint64_t left)
        : type_(type), p_(p), end_(end), left_(left) {
        measure();
    }

    gguf::value operator*() const { return {detail::validated, type_, {p_, current_}}; }
    element_iterator& operator++() {
        p_ += current_;
        --left_;
        measure();
        return *this;
    }
    element_iterator operator++(int) {
        element_iterator old = *this;
        ++*this;
        return old;
    }
    friend bool operator==(const element_iterator& a, const element_iterator& b) noexcept {
        return a.left_ == b.left_;
    }

private:
    void measure() { current_ = left_ ? gguf::value::element_bytes(type_, p_, end_) : 0; }

    gguf::value_type type_ = gguf::value_type::u8;
    const std::byte* p_ = nullptr;
    const std::byte* end_ = nullptr;
    std::uint64_t left_ = 0;
    std::size_t current_ = 0;
};

struct value::element_range {
    element_iterator first;
    element_iterator last;
    element_iterator begin() const { return first; }
    element_iterator end() const { return last; }
};

inline value::element_range value::elements() const {
    require_array("elements()");
    return {element_iterator(element_type(), bytes_.data() + 12, bytes_.data() + bytes_.size(), size()),
            element_iterator()};
}

}  // namespace gguf
QINFER_NAMESPACE_END
