// qinfer/quant/q8_1.hpp — Q8_1: the 8-bit activation operand of Q4_1 and Q5_1 dot products.
//
// Layout (36 bytes, identical to ggml's block_q8_1): a[j] = d * qs[j] for 32 values, plus
// s = d * sum(qs) stored as fp16, which lets the weight formats with an offset (w = d*q + m)
// fold the m * sum(a) part of a block's dot product into one multiply, m * s.
// ggml has no to_float for Q8_1 (nothing dequantizes it); dequantize_row here is d * qs.
#pragma once

#include <cmath>
#include <cstdint>

#include "../core/fp16.hpp"
#include "block_traits.hpp"
#include "detail/rounding.hpp"
#include "detail/simd.hpp"

QINFER_NAMESPACE_BEGIN

struct block_q8_1 {
    fp16 d;                 // scale
    fp16 s;                 // d * sum(qs), rounded to fp16
    std::int8_t qs[32];     // quants
};
static_assert(sizeof(block_q8_1) == 36);

template <> struct block_traits<block_q8_1> {
    static constexpr type_id id = type_id::q8_1;
    static constexpr int block_size = 32;
    using dot_operand = block_q8_1;
};

// Reference quantization (== ggml's quantize_row_q8_1_ref): d = amax/127, q = round(x/d)
// with halves away from zero, s = fp16(sum(q) * d). n must be a multiple of 32.
inline void quantize_row(const float* QINFER_RESTRICT x, block_q8_1* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 32; ++i, x += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = to_fp16(d);
        int sum = 0;
        for (int j = 0; j < 32; ++j) {
            y[i].qs[j] = detail::saturate_int8(std::round(x[j] * id));
            sum += y[i].qs[j];
        }
        y[i].s = to_fp16(static_cast<float>(sum) * d);
    }
}

// Activation quantization as ggml-cpu's x86 from_float (its AVX path) does it: scale by
// 127/amax (not 1/d) and round halves to even; s is d times the integer sum of the quants.
// Differs from `quantize_row` in the last bit of some quants.
inline void quantize_activations(const float* QINFER_RESTRICT x, block_q8_1* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 32; ++i, x += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
        const float d = amax / 127.f;
        const float id = amax != 0.0f ? 127.f / amax : 0.0f;
        y[i].d = to_fp16(d);
        int sum = 0;
        for (int j = 0; j < 32; ++j) {
            const int q = detail::saturate_int8(std::nearbyint(x[j] * id));
            y[i].qs[j] = static_cast<std::int8_t>(q);
            sum += q;
        }
        y[i].s = to_fp16(d * static_cast<float>(sum));
    }
}

namespace detail::scalar {

inline void dequantize_row(const block_q8_1* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 32; ++i) {
        const float d = to_float(x[i].d);
        for (int j = 0; j < 32; ++j) y[i * 32 + j] = x[i].qs[j] * d;
    }
}

}  // namespace detail::scalar

namespace detail::simd {

template <class Arch = default_arch>
inline void dequantize_row(const block_q8_1* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    alignas(64) std::int32_t q[32];
    for (std::int64_t i = 0; i < n / 32; ++i) {
        for (int j = 0; j < 32; ++j) q[j] = x[i].qs[j];
        scale_ints<Arch, 32>(q, to_float(x[i].d), y + i * 32);
    }
}

}  // namespace detail::simd

inline void dequantize_row(const block_q8_1* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    detail::simd::dequantize_row(x, y, n);
}

QINFER_NAMESPACE_END
