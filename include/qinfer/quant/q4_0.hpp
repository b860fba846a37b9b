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
#include "detail/float_formats.hpp"
#include "detail/k_quants_sym.hpp"
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

// With an importance matrix (ggml_quantize_chunk's imatrix, ggml's quantize_row_q4_0_impl):
// x is one row of n weights and importance[j] the importance of column j (n values). Each
// block's scale is a weighted least-squares fit (make_qx_quants) under weights
// importance_j * sqrt(sigma2 + x_j^2), sigma2 the row's mean square. A null importance is
// the plain quantize_row above.
inline void quantize_row(const float* QINFER_RESTRICT x, block_q4_0* QINFER_RESTRICT y, std::int64_t n,
                         const float* QINFER_RESTRICT importance) noexcept {
    if (!importance) return quantize_row(x, y, n);
    const float sigma2 = detail::sum_of_squares(x, n) / static_cast<float>(n);
    float w[32];
    std::int8_t L[32];
    for (std::int64_t i = 0; i < n / 32; ++i) {
        const float* xb = x + 32 * i;
        detail::importance_weights(xb, importance + 32 * i, sigma2, w, 32);
        y[i].d = to_fp16(detail::ksym::make_qx_quants(32, 8, xb, L, w));
        for (int j = 0; j < 16; ++j) y[i].qs[j] = static_cast<std::uint8_t>(L[j] | (L[j + 16] << 4));
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
QINFER_GCC105593_BEGIN
namespace detail::avx2 {

// One block: the weights q - 8 (signed) against the activations, as 8 int32 partial sums.
QINFER_TARGET_AVX2 inline __m256i block_sums(const block_q4_0& w, const block_q8_0& a) noexcept {
    const __m256i qw = _mm256_sub_epi8(x86::unpack_nibbles(w.qs), _mm256_set1_epi8(8));
    return x86::dot_s8s8(qw, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs)));
}

// One 8-lane accumulator, block after block; the scales of four blocks come from one F16C
// conversion of each side instead of eight scalar ones.
QINFER_TARGET_AVX2 inline float dot(const block_q4_0* w, const block_q8_0* a, std::int64_t n) noexcept {
    const std::int64_t nb = n / 32;
    __m256 acc = _mm256_setzero_ps();
    std::int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        const __m256 d = _mm256_castps128_ps256(
            _mm_mul_ps(x86f::h2f_x4(&w[i].d, sizeof(block_q4_0)), x86f::h2f_x4(&a[i].d, sizeof(block_q8_0))));
        for (int k = 0; k < 4; ++k)
            acc = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(d, _mm256_set1_epi32(k)),
                                  _mm256_cvtepi32_ps(block_sums(w[i + k], a[i + k])), acc);
    }
    for (; i < nb; ++i)
        acc = _mm256_fmadd_ps(_mm256_set1_ps(x86f::h2f(w[i].d) * x86f::h2f(a[i].d)), _mm256_cvtepi32_ps(block_sums(w[i], a[i])), acc);
    return x86::hsum(acc);
}

}  // namespace detail::avx2

namespace detail::avx512 {

// Q4_0 weights as unsigned bytes: the nibbles themselves, offset 8.
struct q4_0_unpack {
    static constexpr int offset = 8;
    QINFER_TARGET_AVX512 static __m512i pair(const block_q4_0* w) noexcept { return x86f::unpack_nibbles_x2(w[0].qs, w[1].qs); }
    QINFER_TARGET_AVX512 static int block_sum(const block_q4_0& w, const block_q8_0& a) noexcept {
        return x86::hsum(avx2::block_sums(w, a));
    }
};

// A 1 x 1 tile.
QINFER_TARGET_AVX512 inline float dot(const block_q4_0* w, const block_q8_0* a, std::int64_t n) noexcept {
    float y;
    dot_tile_u8<1, 1, q4_0_unpack>(w, 0, a, 0, n, &y, 0);
    return y;
}

}  // namespace detail::avx512
QINFER_GCC105593_END
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

// R weight rows against C activation rows, y[c * ldy + r]; see dot_tile in q8_0.hpp.
template <int R, int C>
inline void dot_tile(const block_q4_0* w, std::int64_t ldw, const block_q8_0* a, std::int64_t lda, std::int64_t n,
                     float* y, std::int64_t ldy) noexcept {
#if QINFER_X86_DISPATCH
    if (active_isa() == isa::avx512)
        return detail::avx512::dot_tile_u8<R, C, detail::avx512::q4_0_unpack>(w, ldw, a, lda, n, y, ldy);
#endif
    detail::dot_tile_by_dots<R, C>(w, ldw, a, lda, n, y, ldy);
}

QINFER_NAMESPACE_END
