// qinfer/quant/bf16.hpp — BF16: bfloat16 weights.
//
// Layout (2 bytes per weight, ggml's GGML_TYPE_BF16 / ggml_bf16_t): the "block" is one
// `qinfer::bf16`, the top 16 bits of an IEEE float (1 sign, 8 exponent, 7 mantissa bits).
// The dot product takes BF16 activations.
//
// Conversions, bit-identical to ggml's:
//   quantize_row / quantize_activations == ggml_fp32_to_bf16_row_ref and ggml-cpu's
//       from_float (ggml_cpu_fp32_to_bf16): round to nearest even, subnormals kept, NaNs
//       quieted (bit 6 of the half set);
//   dequantize_row == ggml_bf16_to_fp32_row: a 16-bit shift, exact.
//
// ggml's vec_dot for BF16 (ggml_vec_dot_bf16) and the order each tier here reproduces. Every
// product of two bf16 values is exact in float, so only the summation order differs:
//   scalar  (x64 build): float products summed in double;
//   avx2    (AVX2 builds): 4 accumulators x 8 lanes over steps of 32, folded (0+2)+(1+3),
//           halves added, then movehl / movehdup adds; the tail summed in double;
//   avx512  on CPUs with AVX512-BF16 (ggml's zen4 / cooperlake / sapphirerapids builds): the same
//           vdpbf16ps instruction, but 4 accumulators over steps of 128 (ggml: 2 over 64),
//           so not ggml's order, only within the tolerance of it; tail in double (the
//           instruction flushes subnormal inputs and results to zero, as ggml does there);
//           without it (ggml's skylakex / icelake builds): 2 accumulators x 16 lanes over steps
//           of 32, same reductions.
#pragma once

#include <bit>
#include <cstdint>

#include "../core/cpu.hpp"
#include "../core/fp16.hpp"
#include "block_traits.hpp"
#include "detail/float_formats.hpp"
#include "detail/simd.hpp"
#include "detail/x86.hpp"

QINFER_NAMESPACE_BEGIN

template <> struct block_traits<bf16> {
    static constexpr type_id id = type_id::bf16;
    static constexpr int block_size = 1;
    using dot_operand = bf16;
};

namespace detail::scalar {

inline void quantize_row(const float* QINFER_RESTRICT x, bf16* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n; ++i) y[i] = to_bf16(x[i]);
}

inline void dequantize_row(const bf16* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n; ++i) y[i] = to_float(x[i]);
}

inline float dot(const bf16* w, const bf16* a, std::int64_t n) noexcept {
    double sum = 0.0;
    for (std::int64_t i = 0; i < n; ++i) sum += static_cast<double>(to_float(w[i]) * to_float(a[i]));
    return static_cast<float>(sum);
}

}  // namespace detail::scalar

namespace detail::simd {

template <class Arch = default_arch>
inline void dequantize_row(const bf16* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    using ib = xsimd::batch<std::int32_t, Arch>;
    using fb = xsimd::batch<float, Arch>;
    constexpr std::int64_t width = ib::size;
    alignas(64) std::int32_t h[width];
    const std::int64_t body = n - n % width;
    std::int64_t i = 0;
    for (; i < body; i += width) {
        for (std::int64_t j = 0; j < width; ++j) h[j] = x[i + j].bits;
        xsimd::bitwise_cast<fb>(ib::load_aligned(h) << 16).store_unaligned(y + i);
    }
    for (; i < n; ++i) y[i] = to_float(x[i]);
}

}  // namespace detail::simd

#if QINFER_X86_DISPATCH
QINFER_GCC105593_BEGIN
namespace detail::avx2 {

// 8 bf16 at p widened to floats.
QINFER_TARGET_AVX2 inline __m256 load_bf16x8(const bf16* p) noexcept {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

// 8 floats -> 8 bf16 (round to nearest even, NaNs quieted), in the low 128 bits.
QINFER_TARGET_AVX2 inline __m128i round_bf16x8(__m256 v) noexcept {
    const __m256i u = _mm256_castps_si256(v);
    const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i rounded = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(odd, _mm256_set1_epi32(0x7fff))), 16);
    const __m256i quiet = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(64));
    const __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff)), _mm256_set1_epi32(0x7f800000));
    const __m256i r = _mm256_blendv_epi8(rounded, quiet, nan);
    // results are < 2^16: pack the 32-bit lanes to 16 bits and put the halves in order
    const __m256i packed = _mm256_packus_epi32(r, r);
    return _mm256_castsi256_si128(_mm256_permute4x64_epi64(packed, 0x08));
}

QINFER_TARGET_AVX2 inline void quantize_row(const float* QINFER_RESTRICT x, bf16* QINFER_RESTRICT y, std::int64_t n) noexcept {
    std::int64_t i = 0;
    for (const std::int64_t end = n - n % 8; i < end; i += 8)
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i), round_bf16x8(_mm256_loadu_ps(x + i)));
    for (; i < n; ++i) y[i] = to_bf16(x[i]);
}

QINFER_TARGET_AVX2 inline void dequantize_row(const bf16* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    std::int64_t i = 0;
    for (const std::int64_t end = n - n % 8; i < end; i += 8) _mm256_storeu_ps(y + i, load_bf16x8(x + i));
    for (; i < n; ++i) y[i] = to_float(x[i]);
}

QINFER_TARGET_AVX2 inline float dot(const bf16* w, const bf16* a, std::int64_t n) noexcept {
    __m256 c0 = _mm256_setzero_ps(), c1 = _mm256_setzero_ps(), c2 = _mm256_setzero_ps(), c3 = _mm256_setzero_ps();
    std::int64_t i = 0;
    // products are exact, so a fused multiply-add rounds like ggml's multiply-then-add
    for (const std::int64_t end = n - n % 32; i < end; i += 32) {
        c0 = _mm256_fmadd_ps(load_bf16x8(w + i), load_bf16x8(a + i), c0);
        c1 = _mm256_fmadd_ps(load_bf16x8(w + i + 8), load_bf16x8(a + i + 8), c1);
        c2 = _mm256_fmadd_ps(load_bf16x8(w + i + 16), load_bf16x8(a + i + 16), c2);
        c3 = _mm256_fmadd_ps(load_bf16x8(w + i + 24), load_bf16x8(a + i + 24), c3);
    }
    double sum = x86::hsum(_mm256_add_ps(_mm256_add_ps(c0, c2), _mm256_add_ps(c1, c3)));
    for (; i < n; ++i) sum += static_cast<double>(to_float(w[i]) * to_float(a[i]));
    return static_cast<float>(sum);
}

}  // namespace detail::avx2

namespace detail::avx512 {

// 16 floats -> the rounded (or quieted) values whose high 16 bits are the bf16 results.
QINFER_TARGET_AVX512 inline __m512i round_bf16x16_high(__m512 v) noexcept {
    const __m512i u = _mm512_castps_si512(v);
    const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
    const __m512i rounded = _mm512_add_epi32(u, _mm512_add_epi32(odd, _mm512_set1_epi32(0x7fff)));
    const __mmask16 nan = _mm512_cmpgt_epi32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
    return _mm512_mask_or_epi32(rounded, nan, u, _mm512_set1_epi32(0x00400000));  // quiet: bit 6 of the half
}

QINFER_TARGET_AVX512 inline void quantize_row(const float* QINFER_RESTRICT x, bf16* QINFER_RESTRICT y, std::int64_t n) noexcept {
    // word 2k+1 of a then b: the high halves of 32 rounded floats, in order
    const __m512i high_words = _mm512_set_epi16(63, 61, 59, 57, 55, 53, 51, 49, 47, 45, 43, 41, 39, 37, 35, 33,
                                                31, 29, 27, 25, 23, 21, 19, 17, 15, 13, 11, 9, 7, 5, 3, 1);
    std::int64_t i = 0;
    for (const std::int64_t end = n - n % 32; i < end; i += 32) {
        const __m512i lo = round_bf16x16_high(_mm512_loadu_ps(x + i)), hi = round_bf16x16_high(_mm512_loadu_ps(x + i + 16));
        _mm512_storeu_si512(y + i, _mm512_permutex2var_epi16(lo, high_words, hi));
    }
    avx2::quantize_row(x + i, y + i, n - i);
}

QINFER_TARGET_AVX512 inline void dequantize_row(const bf16* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    std::int64_t i = 0;
    for (const std::int64_t end = n - n % 16; i < end; i += 16) {
        const __m512i w = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x + i)));
        _mm512_storeu_ps(y + i, _mm512_castsi512_ps(_mm512_slli_epi32(w, 16)));
    }
    avx2::dequantize_row(x + i, y + i, n - i);
}

QINFER_TARGET_AVX512 inline __m512 load_bf16x16(const bf16* p) noexcept {
    const __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
    return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16));
}

// ggml's AVX-512 order without BF16 instructions (its skylakex / icelake builds): two
// accumulators x 16 lanes over steps of 32; products are exact, so FMA rounds like ggml's
// multiply-then-add.

QINFER_TARGET_AVX512 inline float dot_f32_lanes(const bf16* w, const bf16* a, std::int64_t n) noexcept {
    __m512 c0 = _mm512_setzero_ps(), c1 = _mm512_setzero_ps();
    std::int64_t i = 0;
    for (const std::int64_t end = n - n % 32; i < end; i += 32) {
        c0 = _mm512_fmadd_ps(load_bf16x16(w + i), load_bf16x16(a + i), c0);
        c1 = _mm512_fmadd_ps(load_bf16x16(w + i + 16), load_bf16x16(a + i + 16), c1);
    }
    double sum = 0.0;
    sum += static_cast<double>(_mm512_reduce_add_ps(c0));
    sum += static_cast<double>(_mm512_reduce_add_ps(c1));
    for (; i < n; ++i) sum += static_cast<double>(to_float(w[i]) * to_float(a[i]));
    return static_cast<float>(sum);
}

#define QINFER_TARGET_AVX512BF16 \
    __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c,bmi2,avx512bf16")))

// The instruction ggml uses on CPUs with AVX512-BF16 (its zen4 / cooperlake /
// sapphirerapids builds), vdpbf16ps, with four accumulators over steps of 128 where ggml
// has two over 64, so the instruction's latency never limits the loop; a row is then bound
// by reading the weights from L2, hence the prefetch. Same products, a different but
// equally accurate summation order (within the tolerance).
QINFER_TARGET_AVX512BF16 inline float dot_dpbf16(const bf16* w, const bf16* a, std::int64_t n) noexcept {
    __m512 c0 = _mm512_setzero_ps(), c1 = _mm512_setzero_ps(), c2 = _mm512_setzero_ps(), c3 = _mm512_setzero_ps();
    auto dp = [&](__m512 c, std::int64_t k) QINFER_TARGET_AVX512BF16 {
        return _mm512_dpbf16_ps(c, (__m512bh)_mm512_loadu_si512(w + k), (__m512bh)_mm512_loadu_si512(a + k));
    };
    std::int64_t i = 0;
    for (const std::int64_t end = n - n % 128; i < end; i += 128) {
        // the weights stream from L2; asking for them 2 KiB ahead measured a few % faster
        for (int k = 0; k < 128; k += 32) _mm_prefetch(reinterpret_cast<const char*>(w + i + 1024 + k), _MM_HINT_T0);
        c0 = dp(c0, i);
        c1 = dp(c1, i + 32);
        c2 = dp(c2, i + 64);
        c3 = dp(c3, i + 96);
    }
    for (const std::int64_t end = n - n % 32; i < end; i += 32) c0 = dp(c0, i);
    double sum = static_cast<double>(_mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(c0, c2), _mm512_add_ps(c1, c3))));
    for (; i < n; ++i) sum += static_cast<double>(to_float(w[i]) * to_float(a[i]));
    return static_cast<float>(sum);
}
#undef QINFER_TARGET_AVX512BF16

inline bool has_avx512bf16() noexcept {
    return cpu().avx512bf16;
}

// vdpbf16ps where the CPU has it (it also flushes subnormal inputs and results to zero, as
// in ggml), else the F32-lane kernel.
QINFER_TARGET_AVX512 inline float dot(const bf16* w, const bf16* a, std::int64_t n) noexcept {
    return has_avx512bf16() ? dot_dpbf16(w, a, n) : dot_f32_lanes(w, a, n);
}

}  // namespace detail::avx512
QINFER_GCC105593_END
#endif

// Reference conversion (== ggml_fp32_to_bf16_row_ref, what ggml_quantize_chunk writes).
inline void quantize_row(const float* QINFER_RESTRICT x, bf16* QINFER_RESTRICT y, std::int64_t n) noexcept {
#if QINFER_X86_DISPATCH
    switch (active_isa()) {
    case isa::avx512: return detail::avx512::quantize_row(x, y, n);
    case isa::avx2: return detail::avx2::quantize_row(x, y, n);
    default: break;
    }
#endif
    detail::scalar::quantize_row(x, y, n);
}

// ggml-cpu converts BF16 activations with the same rounding as the reference.
inline void quantize_activations(const float* QINFER_RESTRICT x, bf16* QINFER_RESTRICT y, std::int64_t n) noexcept {
    quantize_row(x, y, n);
}

inline void dequantize_row(const bf16* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
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
inline void convert_row(const bf16* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept { dequantize_row(x, y, n); }
inline void convert_row(const float* QINFER_RESTRICT x, bf16* QINFER_RESTRICT y, std::int64_t n) noexcept { quantize_row(x, y, n); }

// Dot product of n BF16 weights with n BF16 activations.
inline float dot(const bf16* w, const bf16* a, std::int64_t n) noexcept {
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
