// qinfer/core/fp16.hpp — IEEE half and bfloat16 storage types with round-to-nearest-even
// conversions that give the same bits as ggml's (for every non-NaN input).
#pragma once

#include <bit>
#include <cstdint>

#include "config.hpp"

QINFER_NAMESPACE_BEGIN

// Raw 16-bit storage; conversions are explicit so a block struct stays trivially copyable
// and byte-identical to ggml's `ggml_half` / `ggml_bf16_t`.
struct fp16 { std::uint16_t bits; };
struct bf16 { std::uint16_t bits; };
static_assert(sizeof(fp16) == 2 && sizeof(bf16) == 2);

constexpr float to_float(fp16 h) noexcept {
    const std::uint32_t sign = std::uint32_t(h.bits & 0x8000u) << 16;
    const std::uint32_t em = h.bits & 0x7fffu;
    if (em >= 0x7c00u)  // inf / nan: widen the payload
        return std::bit_cast<float>(sign | 0x7f800000u | ((em & 0x3ffu) << 13));
    if (em >= 0x0400u)  // normal: rebias the exponent from 15 to 127
        return std::bit_cast<float>(sign | ((em << 13) + 0x38000000u));
    // zero / subnormal: em counts units of 2^-24, exactly representable as a float
    return std::bit_cast<float>(sign | std::bit_cast<std::uint32_t>(float(em) * 0x1p-24f));
}

constexpr fp16 to_fp16(float f) noexcept {
    std::uint32_t x = std::bit_cast<std::uint32_t>(f);
    const std::uint16_t sign = std::uint16_t((x >> 16) & 0x8000u);
    x &= 0x7fffffffu;
    if (x > 0x7f800000u) return {std::uint16_t(sign | 0x7e00u)};   // nan
    if (x >= 0x477ff000u) return {std::uint16_t(sign | 0x7c00u)};  // >= 65520 rounds to inf
    if (x < 0x38800000u) {
        // Result is subnormal: adding 0.5 aligns the value to the half's 2^-24 grid, so
        // the float adder does the round-to-nearest-even for us.
        const float a = std::bit_cast<float>(x) + 0.5f;
        return {std::uint16_t(sign | (std::bit_cast<std::uint32_t>(a) - 0x3f000000u))};
    }
    // Normal: rebias exponent (127 -> 15) and round the 13 dropped bits to nearest even.
    x += 0xc8000fffu + ((x >> 13) & 1u);
    return {std::uint16_t(sign | (x >> 13))};
}

constexpr float to_float(bf16 h) noexcept {
    return std::bit_cast<float>(std::uint32_t(h.bits) << 16);
}

constexpr bf16 to_bf16(float f) noexcept {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return {std::uint16_t((u >> 16) | 64u)};  // quiet nan
    return {std::uint16_t((u + (0x7fffu + ((u >> 16) & 1u))) >> 16)};
}

QINFER_NAMESPACE_END
