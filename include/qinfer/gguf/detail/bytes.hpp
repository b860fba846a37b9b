// qinfer/gguf/detail/bytes.hpp — little-endian loads/stores and overflow-checked arithmetic.
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>
#include <vector>

#include "../../core/config.hpp"

QINFER_NAMESPACE_BEGIN
namespace gguf::detail {

template <class T>
concept le_scalar = std::is_arithmetic_v<T> && !std::is_same_v<T, bool>;

template <std::size_t N> struct unsigned_of_size;
template <> struct unsigned_of_size<1> { using type = std::uint8_t; };
template <> struct unsigned_of_size<2> { using type = std::uint16_t; };
template <> struct unsigned_of_size<4> { using type = std::uint32_t; };
template <> struct unsigned_of_size<8> { using type = std::uint64_t; };

template <class U> constexpr U byteswap(U v) noexcept {
    U r = 0;
    for (std::size_t i = 0; i < sizeof(U); ++i) {
        r = static_cast<U>((r << 8) | (v & 0xffu));
        v = static_cast<U>(v >> 8);
    }
    return r;
}

// GGUF is little-endian; memcpy because file fields are unaligned.
template <le_scalar T> T load_le(const std::byte* p) noexcept {
    using U = typename unsigned_of_size<sizeof(T)>::type;
    U u;
    std::memcpy(&u, p, sizeof u);
    if constexpr (std::endian::native == std::endian::big) u = byteswap(u);
    return std::bit_cast<T>(u);
}

template <le_scalar T> void append_le(std::vector<std::byte>& out, T v) {
    using U = typename unsigned_of_size<sizeof(T)>::type;
    U u = std::bit_cast<U>(v);
    if constexpr (std::endian::native == std::endian::big) u = byteswap(u);
    const auto* p = reinterpret_cast<const std::byte*>(&u);
    out.insert(out.end(), p, p + sizeof u);
}

inline void append_bytes(std::vector<std::byte>& out, std::string_view s) {
    const auto* p = reinterpret_cast<const std::byte*>(s.data());
    out.insert(out.end(), p, p + s.size());
}

// A GGUF string: u64 length, then the bytes.
inline void append_string(std::vector<std::byte>& out, std::string_view s) {
    append_le<std::uint64_t>(out, s.size());
    append_bytes(out, s);
}

// Checked arithmetic: false on overflow (the result is then unspecified).
template <class T> [[nodiscard]] constexpr bool mul_ok(T a, T b, T& out) noexcept {
    return !__builtin_mul_overflow(a, b, &out);
}
template <class T> [[nodiscard]] constexpr bool add_ok(T a, T b, T& out) noexcept {
    return !__builtin_add_overflow(a, b, &out);
}

constexpr bool is_power_of_two(std::uint64_t v) noexcept { return v != 0 && (v & (v - 1)) == 0; }

// Bytes needed after `offset` to reach a multiple of `alignment` (a power of two).
constexpr std::uint64_t padding_for(std::uint64_t offset, std::uint64_t alignment) noexcept {
    return (alignment - (offset & (alignment - 1))) & (alignment - 1);
}

}  // namespace gguf::detail
QINFER_NAMESPACE_END
