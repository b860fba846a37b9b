// qinfer/quant/f16.hpp — F16: IEEE half-precision weights.
//
// Layout (2 bytes per weight, ggml's GGML_TYPE_F16 / ggml_fp16_t): the "block" is one
// `qinfer::fp16`: 1 sign bit, 5 exponent bits (bias 15), 10 mantissa bits. The dot product
// takes F16 activations (ggml converts the float activations to F16 first).
//
// Conversions, all round-to-nearest-even and bit-identical to ggml's:
//   quantize_row          == ggml_fp32_to_fp16_row (ggml_quantize_chunk): NaN -> 0x7e00|sign;
//   quantize_activations  == ggml-cpu's from_float on x86 (F16C vcvtps2ph): same, except a
//                            NaN keeps its top payload bits;
//   dequantize_row        == ggml_fp16_to_fp32_row: exact (signalling NaNs come back quiet).
//
// ggml's vec_dot for F16 (ggml_vec_dot_f16) and the order each tier here reproduces:
//   scalar  (x64 build): products of the widened halves (exact in float) summed in double;
//   avx2    (AVX2 builds): 4 accumulators x 8 lanes of FMA over steps of 32, folded 0+2, 1+3,
//           0+1, halves added, two horizontal adds, then the tail summed in double;
//   avx512  (AVX-512 builds): 4 x 16 lanes over steps of 64, folded the same way, reduced
//           256+256, 128+128, (0+2)+(1+3); tail in double.
#pragma once

#include <cstdint>

#include "../core/cpu.hpp"
#include "../core/fp16.hpp"
#include "block_traits.hpp"
#include "detail/float_formats.hpp"
#include "detail/simd.hpp"
#include "detail/x86.hpp"

QINFER_NAMESPACE_BEGIN

template <> struct block_traits<fp16> {
    static constexpr type_id id = type_id::f16;
    static constexpr int block_size = 1;
    using dot_operand = fp16;
};

namespace detail::scalar {

inline void quantize_row(const float* QINFER_RESTRICT x, fp16* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n; ++i) y[i] = to_fp16(x[i]);
}

inline void quantize_activations(const float* QINFER_RESTRICT x, fp16* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n; ++i) y[i] = float_to_half_hw(x[i]);
}

inline void dequantize_row(const fp16* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n; ++i) y[i] = half_to_float(x[i]);
}

inline float dot(const fp16* w, const fp16* a, std::int64_t n) noexcept {
    double sum = 0.0;
    for (std::int64_t i = 0; i < n; ++i) sum += static_cast<double>(half_to_float(w[i]) * half_to_float(a[i]));
    return static_cast<float>(sum);
}

}  // namespace detail::scalar

namespace detail::simd {

// Branch-free widening in integer lanes: normal numbers rebias the exponent, inf/NaN keep
// an all-ones exponent (NaNs forced quiet), subnormals are their integer mantissa * 2^-24.
template <class Arch = default_arch>
inline void dequantize_row(const fp16* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    using ib = xsimd::batch<std::int32_t, Arch>;
    using fb = xsimd::batch<float, Arch>;
    constexpr std::int64_t width = ib::size;
    alignas(64) std::int32_t h[width];
    const std::int64_t body = n - n % width;
    std::int64_t i = 0;
    for (; i < body; i += width) {
        for (std::int64_t j = 0; j < width; ++j) h[j] = x[i + j].bits;
        const ib v = ib::load_aligned(h);
        const ib em = v & ib(0x7fff);
        const ib sign = (v & ib(0x8000)) << 16;
        const ib normal = (em << 13) + ib(0x38000000);
        const ib special = ((em << 13) + ib(0x70000000)) | xsimd::select(em > ib(0x7c00), ib(0x00400000), ib(0));
        const ib tiny = xsimd::bitwise_cast<ib>(xsimd::batch_cast<float>(em) * fb(0x1p-24f));
        ib bits = xsimd::select(em >= ib(0x7c00), special, normal);
        bits = xsimd::select(em < ib(0x0400), tiny, bits);
        xsimd::bitwise_cast<fb>(bits | sign).store_unaligned(y + i);
    }
    for (; i < n; ++i) y[i] = half_to_float(x[i]);
}

}  // namespace detail::simd

#if QINFER_X86_DISPATCH
QINFER_GCC105593_BEGIN
namespace detail::avx2 {

// F16C conversion; `canonical_nan` maps NaNs to 0x7e00|sign like ggml's software rounding
// (the instruction keeps the payload's top bits, which is ggml-cpu's from_float).
QINFER_TARGET_AVX2 inline void fp32_to_fp16(const float* x, fp16* y, std::int64_t n, bool canonical_nan) noexcept {
    std::int64_t i = 0;
    const __m128i payload = _mm_set1_epi16(0x01ff), abs_mask = _mm_set1_epi16(0x7fff), inf = _mm_set1_epi16(0x7c00);
    for (const std::int64_t end = n - n % 8; i < end; i += 8) {
        __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        if (canonical_nan) {
            const __m128i nan = _mm_cmpgt_epi16(_mm_and_si128(h, abs_mask), inf);
            h = _mm_andnot_si128(_mm_and_si128(nan, payload), h);
        }
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), h);
    }
    for (; i < n; ++i) y[i] = canonical_nan ? to_fp16(x[i]) : float_to_half_hw(x[i]);
}

QINFER_TARGET_AVX2 inline void dequantize_row(const fp16* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    std::int64_t i = 0;
    for (const std::int64_t end = n - n % 8; i < end; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
    for (; i < n; ++i) y[i] = x86f::h2f(x[i]);
}

QINFER_TARGET_AVX2 inline __m256 load_f16x8(const fp16* p) noexcept {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

QINFER_TARGET_AVX2 inline float dot(const fp16* w, const fp16* a, std::int64_t n) noexcept {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    const std::int64_t body = n & ~std::int64_t(31);
    for (std::int64_t i = 0; i < body; i += 32) {
        s0 = _mm256_fmadd_ps(load_f16x8(w + i), load_f16x8(a + i), s0);
        s1 = _mm256_fmadd_ps(load_f16x8(w + i + 8), load_f16x8(a + i + 8), s1);
        s2 = _mm256_fmadd_ps(load_f16x8(w + i + 16), load_f16x8(a + i + 16), s2);
        s3 = _mm256_fmadd_ps(load_f16x8(w + i + 24), load_f16x8(a + i + 24), s3);
    }
    s0 = _mm256_add_ps(_mm256_add_ps(s0, s2), _mm256_add_ps(s1, s3));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    h = _mm_hadd_ps(h, h);
    double sum = _mm_cvtss_f32(_mm_hadd_ps(h, h));
    for (std::int64_t i = body; i < n; ++i) sum += static_cast<double>(x86f::h2f(w[i]) * x86f::h2f(a[i]));
    return static_cast<float>(sum);
}

}  // namespace detail::avx2

namespace detail::avx512 {

QINFER_TARGET_AVX512 inline void fp32_to_fp16(const float* x, fp16* y, std::int64_t n, bool canonical_nan) noexcept {
    std::int64_t i = 0;
    const __m256i payload = _mm256_set1_epi16(0x01ff), abs_mask = _mm256_set1_epi16(0x7fff), inf = _mm256_set1_epi16(0x7c00);
    for (const std::int64_t end = n - n % 16; i < end; i += 16) {
        __m256i h = _mm512_cvtps_ph(_mm512_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        if (canonical_nan) {
            const __m256i nan = _mm256_cmpgt_epi16(_mm256_and_si256(h, abs_mask), inf);
            h = _mm256_andnot_si256(_mm256_and_si256(nan, payload), h);
        }
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), h);
    }
    avx2::fp32_to_fp16(x + i, y + i, n - i, canonical_nan);
}

QINFER_TARGET_AVX512 inline void dequantize_row(const fp16* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    std::int64_t i = 0;
    for (const std::int64_t end = n - n % 16; i < end; i += 16)
        _mm512_storeu_ps(y + i, _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i))));
    avx2::dequantize_row(x + i, y + i, n - i);
}

QINFER_TARGET_AVX512 inline __m512 load_f16x16(const fp16* p) noexcept {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

// R weight rows against C activation rows, y[c * ldy + r], each cell in ggml's order (see
// the top of this file): four 16-lane accumulators over steps of 64, so a tile gives the
// bits of `dot` (its 1 x 1 case). Each converted weight vector serves C activation rows and
// each converted activation vector R rows: half the conversions of separate dots at 2 x 2,
// the largest tile whose 4 * R * C accumulators stay in registers.
template <int R, int C>
QINFER_TARGET_AVX512 inline void tile(const fp16* w, std::int64_t ldw, const fp16* a, std::int64_t lda, std::int64_t n,
                                      float* y, std::int64_t ldy) noexcept {
    if constexpr (R > 2) {
        tile<2, C>(w, ldw, a, lda, n, y, ldy);
        tile<R - 2, C>(w + 2 * ldw, ldw, a, lda, n, y + 2, ldy);
    } else if constexpr (C > 2) {
        tile<R, 2>(w, ldw, a, lda, n, y, ldy);
        tile<R, C - 2>(w, ldw, a + 2 * lda, lda, n, y + 2 * ldy, ldy);
    } else {
        __m512 s[4][R][C];
        QINFER_UNROLL for (int j = 0; j < 4; ++j)
            QINFER_UNROLL for (int r = 0; r < R; ++r)
                QINFER_UNROLL for (int c = 0; c < C; ++c) s[j][r][c] = _mm512_setzero_ps();
        const std::int64_t body = n & ~std::int64_t(63);
        for (std::int64_t i = 0; i < body; i += 64) {
            QINFER_UNROLL for (int j = 0; j < 4; ++j) {
                __m512 wv[R], av[C];
                QINFER_UNROLL for (int r = 0; r < R; ++r) wv[r] = load_f16x16(w + r * ldw + i + 16 * j);
                QINFER_UNROLL for (int c = 0; c < C; ++c) av[c] = load_f16x16(a + c * lda + i + 16 * j);
                QINFER_UNROLL for (int r = 0; r < R; ++r)
                    QINFER_UNROLL for (int c = 0; c < C; ++c) s[j][r][c] = _mm512_fmadd_ps(wv[r], av[c], s[j][r][c]);
            }
        }
        QINFER_UNROLL for (int r = 0; r < R; ++r)
            QINFER_UNROLL for (int c = 0; c < C; ++c) {
                const fp16* wr = w + r * ldw;
                const fp16* ac = a + c * lda;
                double sum = _mm512_reduce_add_ps(
                    _mm512_add_ps(_mm512_add_ps(s[0][r][c], s[2][r][c]), _mm512_add_ps(s[1][r][c], s[3][r][c])));
                for (std::int64_t i = body; i < n; ++i) sum += static_cast<double>(x86f::h2f(wr[i]) * x86f::h2f(ac[i]));
                y[c * ldy + r] = static_cast<float>(sum);
            }
    }
}

QINFER_TARGET_AVX512 inline float dot(const fp16* w, const fp16* a, std::int64_t n) noexcept {
    float y;
    tile<1, 1>(w, 0, a, 0, n, &y, 0);
    return y;
}

}  // namespace detail::avx512
QINFER_GCC105593_END
#endif

// Reference conversion (== ggml_fp32_to_fp16_row, what ggml_quantize_chunk writes).
inline void quantize_row(const float* QINFER_RESTRICT x, fp16* QINFER_RESTRICT y, std::int64_t n) noexcept {
#if QINFER_X86_DISPATCH
    switch (active_isa()) {
    case isa::avx512: return detail::avx512::fp32_to_fp16(x, y, n, true);
    case isa::avx2: return detail::avx2::fp32_to_fp16(x, y, n, true);
    default: break;
    }
#endif
    detail::scalar::quantize_row(x, y, n);
}

// Activation conversion as ggml-cpu does it on x86 before ggml_vec_dot_f16 (F16C).
inline void quantize_activations(const float* QINFER_RESTRICT x, fp16* QINFER_RESTRICT y, std::int64_t n) noexcept {
#if QINFER_X86_DISPATCH
    switch (active_isa()) {
    case isa::avx512: return detail::avx512::fp32_to_fp16(x, y, n, false);
    case isa::avx2: return detail::avx2::fp32_to_fp16(x, y, n, false);
    default: break;
    }
#endif
    detail::scalar::quantize_activations(x, y, n);
}

inline void dequantize_row(const fp16* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
#if QINFER_X86_DISPATCH
    switch (active_isa()) {
    case isa::avx512: return detail::avx512::dequantize_row(x, y, n);
    case isa::avx2: return detail::avx2::dequantize_row(x, y, n);
    default: break;
    }
#endif
    detail::simd::dequantize_row(x, y, n);
}

// Row conversions for model code (same functions under the obvious name).
inline void convert_row(const fp16* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept { dequantize_row(x, y, n); }
inline void convert_row(const float* QINFER_RESTRICT x, fp16* QINFER_RESTRICT y, std::int64_t n) noexcept { quantize_row(x, y, n); }

// Dot product of n F16 weights with n F16 activations.
inline float dot(const fp16* w, const fp16* a, std::int64_t n) noexcept {
#if QINFER_X86_DISPATCH
    switch (active_isa()) {
    case isa::avx512: return detail::avx512::dot(w, a, n);
    case isa::avx2: return detail::avx2::dot(w, a, n);
    default: break;
    }
#endif
    return detail::scalar::dot(w, a, n);
}

// R weight rows against C activation rows: y[c * ldy + r] = dot(w + r * ldw, a + c * lda, n),
// bit for bit, converting each weight vector once for all C (prefill).
template <int R, int C>
inline void dot_tile(const fp16* w, std::int64_t ldw, const fp16* a, std::int64_t lda, std::int64_t n, float* y,
                     std::int64_t ldy) noexcept {
#if QINFER_X86_DISPATCH
    if (active_isa() == isa::avx512) return detail::avx512::tile<R, C>(w, ldw, a, lda, n, y, ldy);
#endif
    detail::dot_tile_by_dots<R, C>(w, ldw, a, lda, n, y, ldy);
}

QINFER_NAMESPACE_END
