// qinfer/quant/q4_0.hpp — Q4_0: 4-bit weights with one fp16 scale per 32.
//
// Layout (18 bytes, identical to ggml's block_q4_0): w = d * (q - 8), q in 0..15.
// qs[j] holds weight j in its low nibble and weight j+16 in its high nibble.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "../core/cpu.hpp"
#include "../core/fp16.hpp"
#include "block_traits.hpp"
#include "detail/simd.hpp"
#include "detail/x86.hpp"
#include "q8_0.hpp"

QINFER_NAMESPACE_BEGIN

struct block_q4_0 {
    fp16 d;                 // scale
    std::uint8_t qs[16];    // nibbles, see above
};
static_assert(sizeof(block_q4_0) == 18);

template <> struct block_traits<block_q4_0> {
    static constexpr type_id id = type_id::q4_0;
    static constexpr int block_size = 32;
    using dot_operand = block_q8_0;
};

// Reference quantization (== ggml's quantize_row_q4_0_ref): the weight of largest magnitude
// maps to -8 exactly, so its sign picks the sign of d.
inline void quantize_row(const float* QINFER_RESTRICT x, block_q4_0* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 32; ++i, x += 32) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; ++j) {
            if (amax < std::fabs(x[j])) {
                amax = std::fabs(x[j]);
                max = x[j];
            }
        }
        const float d = max / -8;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = to_fp16(d);
        for (int j = 0; j < 16; ++j) {
            // truncation after +8.5 is ggml's rounding; the int8 cast keeps its wrap-around
            const int q0 = std::min(15, int(static_cast<std::int8_t>(static_cast<int>(x[j] * id + 8.5f))));
            const int q1 = std::min(15, int(static_cast<std::int8_t>(static_cast<int>(x[j + 16] * id + 8.5f))));
            y[i].qs[j] = static_cast<std::uint8_t>(std::uint8_t(q0) | (std::uint8_t(q1) << 4));
        }
    }
}

namespace detail::scalar {

inline void dequantize_row(const block_q4_0* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 32; ++i) {
        const float d = to_float(x[i].d);
        for (int j = 0; j < 16; ++j) {
            y[i * 32 + j] = ((x[i].qs[j] & 0x0f) - 8) * d;
            y[i * 32 + j + 16] = ((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

// Same operation order as ggml's generic vec_dot_q4_0_q8_0: (sumi * dw) * da per block.
inline float dot(const block_q4_0* w, const block_q8_0* a, std::int64_t n) noexcept {
    float sum = 0.0f;
    for (std::int64_t i = 0; i < n / 32; ++i) {
        int sumi0 = 0, sumi1 = 0;
        for (int j = 0; j < 16; ++j) {
            sumi0 += ((w[i].qs[j] & 0x0f) - 8) * a[i].qs[j];
            sumi1 += ((w[i].qs[j] >> 4) - 8) * a[i].qs[j + 16];
        }
        sum += (sumi0 + sumi1) * to_float(w[i].d) * to_float(a[i].d);
    }
    return sum;
}

}  // namespace detail::scalar

namespace detail::simd {

template <class Arch = default_arch>
inline void dequantize_row(const block_q4_0* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    alignas(64) std::int32_t q[32];
    for (std::int64_t i = 0; i < n / 32; ++i) {
        for (int j = 0; j < 16; ++j) {
            q[j] = (x[i].qs[j] & 0x0f) - 8;
            q[j + 16] = (x[i].qs[j] >> 4) - 8;
        }
        scale_ints<Arch, 32>(q, to_float(x[i].d), y + i * 32);
    }
}

}  // namespace detail::simd

#if QINFER_X86_DISPATCH
namespace detail::avx2 {

QINFER_TARGET_AVX2 inline float dot(const block_q4_0* w, const block_q8_0* a, std::int64_t n) noexcept {
    __m256 acc = _mm256_setzero_ps();
    const __m256i eight = _mm256_set1_epi8(8);
    for (std::int64_t i = 0; i < n / 32; ++i) {
        const __m256i qw = _mm256_sub_epi8(x86::unpack_nibbles(w[i].qs), eight);
        const __m256i qa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].qs));
        const __m256 d = _mm256_set1_ps(x86::half(w[i].d) * x86::half(a[i].d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(x86::dot_s8s8(qw, qa)), acc);
    }
    return x86::hsum(acc);
}

}  // namespace detail::avx2

namespace detail::avx512 {

// VNNI multiplies the unsigned nibbles directly; the -8 offset comes back as 8 * sum(a),
// itself one more dpbusd against a vector of ones.
QINFER_TARGET_AVX512 inline float dot(const block_q4_0* w, const block_q8_0* a, std::int64_t n) noexcept {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    const __m256i eights = _mm256_set1_epi8(8);
    auto block = [&](std::int64_t i) QINFER_TARGET_AVX512 {
        const __m256i qw = x86::unpack_nibbles(w[i].qs);
        const __m256i qa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].qs));
        const __m256i prod = _mm256_sub_epi32(x86::dot_u8s8_vnni(qw, qa), x86::dot_u8s8_vnni(eights, qa));
        return _mm256_cvtepi32_ps(prod);
    };
    std::int64_t i = 0;
    for (; i + 1 < n / 32; i += 2) {
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(x86::half(w[i].d) * x86::half(a[i].d)), block(i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(x86::half(w[i + 1].d) * x86::half(a[i + 1].d)), block(i + 1), acc1);
    }
    for (; i < n / 32; ++i)
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(x86::half(w[i].d) * x86::half(a[i].d)), block(i), acc0);
    return x86::hsum(_mm256_add_ps(acc0, acc1));
}

}  // namespace detail::avx512
#endif

inline void dequantize_row(const block_q4_0* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    detail::simd::dequantize_row(x, y, n);
}

// Dot product of n weights with n activations quantized by `quantize_activations`.
inline float dot(const block_q4_0* w, const block_q8_0* a, std::int64_t n) noexcept {
#if QINFER_X86_DISPATCH
    switch (active_isa()) {
    case isa::avx512: return detail::avx512::dot(w, a, n);
    case isa::avx2: return detail::avx2::dot(w, a, n);
    default: break;
    }
#endif
    return detail::scalar::dot(w, a, n);
}

QINFER_NAMESPACE_END
