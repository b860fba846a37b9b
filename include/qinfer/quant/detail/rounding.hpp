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

}  // namespace detail
QINFER_NAMESPACE_END
