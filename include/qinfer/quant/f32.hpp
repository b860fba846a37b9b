// qinfer/quant/f32.hpp — F32: plain IEEE single-precision weights.
//
// Layout (4 bytes per weight, ggml's GGML_TYPE_F32): the "block" is one `float`, so
// quantization and dequantization are copies. The dot product takes F32 activations.
//
// ggml's vec_dot for F32 (ggml_vec_dot_f32) and the order each tier here reproduces:
//   scalar  (ggml's x64 build, no SIMD): sum of float products accumulated in double;
//   avx2    (ggml's AVX2 builds): 4 accumulators x 8 lanes of FMA over steps of 32, folded
//           0+2, 1+3, 0+1, halves added, two horizontal adds; the tail (n % 32) is added
//           to that float one fused product at a time;
//   avx512  (ggml's AVX-512 builds): 4 accumulators x 16 lanes over steps of 64, folded the
//           same way and reduced 256 + 256, 128 + 128, (0+2)+(1+3); same tail.
#pragma once

#include <cmath>
#include <cstdint>
#include <cstring>

#include "../core/cpu.hpp"
#include "block_traits.hpp"
#include "detail/float_formats.hpp"
#include "detail/simd.hpp"
#include "detail/x86.hpp"

QINFER_NAMESPACE_BEGIN

template <> struct block_traits<float> {
    static constexpr type_id id = type_id::f32;
    static constexpr int block_size = 1;
    using dot_operand = float;
};

// "Quantization" to F32 is a copy (ggml_quantize_chunk memcpy's F32 rows).
inline void quantize_row(const float* x, float* y, std::int64_t n) noexcept {
    if (x != y) std::memmove(y, x, static_cast<std::size_t>(n) * sizeof(float));
}

// ggml-cpu's from_float for F32 is a copy as well.
inline void quantize_activations(const float* x, float* y, std::int64_t n) noexcept { quantize_row(x, y, n); }

namespace detail::scalar {

inline void dequantize_row(const float* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    std::memcpy(y, x, static_cast<std::size_t>(n) * sizeof(float));
}

// ggml's x64 (no SIMD) order: float products, summed in double.
inline float dot(const float* w, const float* a, std::int64_t n) noexcept {
    double sum = 0.0;
    for (std::int64_t i = 0; i < n; ++i) sum += static_cast<double>(w[i] * a[i]);
    return static_cast<float>(sum);
}

}  // namespace detail::scalar

namespace detail::simd {

template <class Arch = default_arch>
inline void dequantize_row(const float* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    using fb = xsimd::batch<float, Arch>;
    constexpr std::int64_t w = fb::size;
    std::int64_t i = 0;
    for (; i + w <= n; i += w) fb::load_unaligned(x + i).store_unaligned(y + i);
    for (; i < n; ++i) y[i] = x[i];
}

}  // namespace detail::simd

#if QINFER_X86_DISPATCH
QINFER_GCC105593_BEGIN
namespace detail::avx2 {

QINFER_TARGET_AVX2 inline float dot(const float* w, const float* a, std::int64_t n) noexcept {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    const std::int64_t body = n & ~std::int64_t(31);
    for (std::int64_t i = 0; i < body; i += 32) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i), _mm256_loadu_ps(a + i), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 8), _mm256_loadu_ps(a + i + 8), s1);
        s2 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 16), _mm256_loadu_ps(a + i + 16), s2);
        s3 = _mm256_fmadd_ps(_mm256_loadu_ps(w + i + 24), _mm256_loadu_ps(a + i + 24), s3);
    }
    s0 = _mm256_add_ps(_mm256_add_ps(s0, s2), _mm256_add_ps(s1, s3));
    __m128 h = _mm_add_ps(_mm256_castps256_ps128(s0), _mm256_extractf128_ps(s0, 1));
    h = _mm_hadd_ps(h, h);
    float sum = _mm_cvtss_f32(_mm_hadd_ps(h, h));
    for (std::int64_t i = body; i < n; ++i) sum = std::fma(w[i], a[i], sum);
    return sum;
}

}  // namespace detail::avx2

namespace detail::avx512 {

QINFER_TARGET_AVX512 inline float dot(const float* w, const float* a, std::int64_t n) noexcept {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    const std::int64_t body = n & ~std::int64_t(63);
    for (std::int64_t i = 0; i < body; i += 64) {
        s0 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i), _mm512_loadu_ps(a + i), s0);
        s1 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 16), _mm512_loadu_ps(a + i + 16), s1);
        s2 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 32), _mm512_loadu_ps(a + i + 32), s2);
        s3 = _mm512_fmadd_ps(_mm512_loadu_ps(w + i + 48), _mm512_loadu_ps(a + i + 48), s3);
    }
    float sum = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s2), _mm512_add_ps(s1, s3)));
    for (std::int64_t i = body; i < n; ++i) sum = std::fma(w[i], a[i], sum);
    return sum;
}

}  // namespace detail::avx512
QINFER_GCC105593_END
#endif

inline void dequantize_row(const float* x, float* y, std::int64_t n) noexcept { quantize_row(x, y, n); }

// Dot product of n F32 weights with n F32 activations.
inline float dot(const float* w, const float* a, std::int64_t n) noexcept {
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
