// qinfer/quant/q8_k.hpp — Q8_K: the 8-bit activation operand of K-quant and IQ4_XS dots.
//
// Layout (292 bytes, identical to ggml's block_q8_K): a = d * qs[j] for 256 values, with a
// float scale and the sums of each group of 16 quants (bsums) precomputed for the kernels
// that fold per-group minimums or offsets into one multiply.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "../core/fp16.hpp"
#include "block_traits.hpp"
#include "detail/rounding.hpp"
#include "detail/simd.hpp"

QINFER_NAMESPACE_BEGIN

struct block_q8_K {
    float d;                    // scale (a float, not fp16)
    std::int8_t qs[256];        // quants
    std::int16_t bsums[16];     // sum of qs[16*g .. 16*g+15]
};
static_assert(sizeof(block_q8_K) == 292);

template <> struct block_traits<block_q8_K> {
    static constexpr type_id id = type_id::q8_K;
    static constexpr int block_size = 256;
    using dot_operand = block_q8_K;
};

// Reference quantization (== ggml's quantize_row_q8_K_ref): the value of largest magnitude
// maps to -127 (so its sign picks d's), quants clamp at 127.
inline void quantize_row(const float* QINFER_RESTRICT x, block_q8_K* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 256; ++i, x += 256) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 256; ++j) {
            if (std::fabs(x[j]) > amax) {
                amax = std::fabs(x[j]);
                max = x[j];
            }
        }
        if (amax == 0.0f) {
            std::memset(&y[i], 0, sizeof(block_q8_K));
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < 256; ++j)
            y[i].qs[j] = static_cast<std::int8_t>(std::min(127, detail::nearest_int(iscale * x[j])));
        for (int g = 0; g < 16; ++g) {
            int sum = 0;
            for (int j = 0; j < 16; ++j) sum += y[i].qs[16 * g + j];
            y[i].bsums[g] = static_cast<std::int16_t>(sum);
        }
        y[i].d = 1 / iscale;
    }
}

// ggml's CPU backend quantizes K-quant activations with the reference function on x86.
inline void quantize_activations(const float* QINFER_RESTRICT x, block_q8_K* QINFER_RESTRICT y, std::int64_t n) noexcept {
    quantize_row(x, y, n);
}

namespace detail::scalar {

inline void dequantize_row(const block_q8_K* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 256; ++i)
        for (int j = 0; j < 256; ++j) y[i * 256 + j] = x[i].d * x[i].qs[j];
}

}  // namespace detail::scalar

namespace detail::simd {

template <class Arch = default_arch>
inline void dequantize_row(const block_q8_K* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    alignas(64) std::int32_t q[256];
    for (std::int64_t i = 0; i < n / 256; ++i) {
        for (int j = 0; j < 256; ++j) q[j] = x[i].qs[j];
        scale_ints<Arch, 256>(q, x[i].d, y + i * 256);
    }
}

}  // namespace detail::simd

inline void dequantize_row(const block_q8_K* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    detail::simd::dequantize_row(x, y, n);
}

QINFER_NAMESPACE_END
