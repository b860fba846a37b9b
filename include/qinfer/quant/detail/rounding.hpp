// qinfer/quant/detail/rounding.hpp — the float-to-int rounding the K-quant and IQ
// quantizers use, reproduced exactly (ties to even through the float adder).
#pragma once

#include <bit>
#include <cstdint>

#include "../../core/config.hpp"

QINFER_NAMESPACE_BEGIN
namespace detail {

// Nearest integer for |v| <= 4194303: adding 1.5 * 2^23 pushes the fraction out of the
// mantissa, so the FPU's round-to-nearest-even does the rounding and the low mantissa bits
// hold the result. Same trick, same results as ggml's quantizers.
inline int nearest_int(float v) noexcept {
    const float shifted = v + 12582912.f;
    return static_cast<int>(std::bit_cast<std::int32_t>(shifted) & 0x007fffff) - 0x00400000;
}

// An already rounded float as an int8, as x86's convert-and-saturating-pack gives it (ggml's
// activation quantizers): values in [-128, 127] unchanged, beyond them saturated, NaN -128.
// A plain cast is undefined behaviour for NaN, which a model with NaN or infinite weights
// feeds the activation quantizers.
inline std::int8_t saturate_int8(float v) noexcept {
    return v >= -128.0f && v <= 127.0f ? static_cast<std::int8_t>(v) : v > 0.0f ? std::int8_t(127) : std::int8_t(-128);
}

}  // namespace detail
QINFER_NAMESPACE_END
