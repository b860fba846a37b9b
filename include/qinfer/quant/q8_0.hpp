// qinfer/quant/q8_0.hpp — Q8_0: 8-bit weights with one fp16 scale per 32.
//
// Layout (34 bytes, identical to ggml's block_q8_0): w[j] = d * qs[j], qs signed.
// Q8_0 is also the activation operand for Q4_0, Q5_0, Q8_0 and IQ4_NL dot products.
#pragma once

#include <cmath>
#include <cstdint>

#include "../core/cpu.hpp"
#include "../core/fp16.hpp"
#include "block_traits.hpp"
#include "detail/simd.hpp"
#include "detail/x86.hpp"

QINFER_NAMESPACE_BEGIN

struct block_q8_0 {
    fp16 d;                 // scale
    std::int8_t qs[32];     // quants
};
static_assert(sizeof(block_q8_0) == 34);

template <> struct block_traits<block_q8_0> {
    static constexpr type_id id = type_id::q8_0;
    static constexpr int block_size = 32;
    using dot_operand = block_q8_0;
};

// Reference quantization (== ggml's quantize_row_q8_0_ref): d = amax/127, q = round(x/d)
// with halves away from zero. n must be a multiple of 32.
inline void quantize_row(const float* QINFER_RESTRICT x, block_q8_0* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 32; ++i, x += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = to_fp16(d);
        for (int j = 0; j < 32; ++j) y[i].qs[j] = static_cast<std::int8_t>(std::round(x[j] * id));
    }
}

// Activation quantization as ggml's CPU backend does it before a dot product on x86
// (its from_float): scale by 127/amax and round halves to even. Differs from
// `quantize_row` in the last bit of some quants; matching it keeps logits identical.
inline void quantize_activations(const float* QINFER_RESTRICT x, block_q8_0* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 32; ++i, x += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
        y[i].d = to_fp16(amax / 127.f);
        const float id = amax != 0.0f ? 127.f / amax : 0.0f;
        for (int j = 0; j < 32; ++j) y[i].qs[j] = static_cast<std::int8_t>(std::nearbyint(x[j] * id));
    }
}

namespace detail::scalar {

inline void dequantize_row(const block_q8_0* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 32; ++i) {
        const float d = to_float(x[i].d);
        for (int j = 0; j < 32; ++j) y[i * 32 + j] = x[i].qs[j] * d;
    }
}

// Same operation order as ggml's generic vec_dot_q8_0_q8_0: sumi * (dx * dy) per block.
inline float dot(const block_q8_0* w, const block_q8_0* a, std::int64_t n) noexcept {
    float sum = 0.0f;
    for (std::int64_t i = 0; i < n / 32; ++i) {
        int sumi = 0;
        for (int j = 0; j < 32; ++j) sumi += w[i].qs[j] * a[i].qs[j];
        sum += sumi * (to_float(w[i].d) * to_float(a[i].d));
    }
    return sum;
}

}  // namespace detail::scalar

namespace detail::simd {

template <class Arch = default_arch>
inline void dequantize_row(const block_q8_0* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    alignas(64) std::int32_t q[32];
    for (std::int64_t i = 0; i < n / 32; ++i) {
        for (int j = 0; j < 32; ++j) q[j] = x[i].qs[j];
        scale_ints<Arch, 32>(q, to_float(x[i].d), y + i * 32);
    }
}

}  // namespace detail::simd

#if QINFER_X86_DISPATCH
namespace detail::avx2 {

QINFER_TARGET_AVX2 inline float dot(const block_q8_0* w, const block_q8_0* a, std::int64_t n) noexcept {
    __m256 acc = _mm256_setzero_ps();
    for (std::int64_t i = 0; i < n / 32; ++i) {
        const __m256i qw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].qs));
        const __m256i qa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].qs));
        const __m256 d = _mm256_set1_ps(x86::half(w[i].d) * x86::half(a[i].d));
        acc = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(x86::dot_s8s8(qw, qa)), acc);
    }
    return x86::hsum(acc);
}

}  // namespace detail::avx2

namespace detail::avx512 {

QINFER_TARGET_AVX512 inline float dot(const block_q8_0* w, const block_q8_0* a, std::int64_t n) noexcept {
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    std::int64_t i = 0;
    for (; i + 1 < n / 32; i += 2) {  // two independent chains hide the FMA latency
        const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].qs));
        const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].qs));
        const __m256i w1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i + 1].qs));
        const __m256i a1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i + 1].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(x86::half(w[i].d) * x86::half(a[i].d)),
                               _mm256_cvtepi32_ps(x86::dot_s8s8_vnni(w0, a0)), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_set1_ps(x86::half(w[i + 1].d) * x86::half(a[i + 1].d)),
                               _mm256_cvtepi32_ps(x86::dot_s8s8_vnni(w1, a1)), acc1);
    }
    for (; i < n / 32; ++i) {
        const __m256i w0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].qs));
        const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].qs));
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(x86::half(w[i].d) * x86::half(a[i].d)),
                               _mm256_cvtepi32_ps(x86::dot_s8s8_vnni(w0, a0)), acc0);
    }
    return x86::hsum(_mm256_add_ps(acc0, acc1));
}

}  // namespace detail::avx512
#endif

inline void dequantize_row(const block_q8_0* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    detail::simd::dequantize_row(x, y, n);
}

// Dot product of n weights with n activations quantized by `quantize_activations`.
inline float dot(const block_q8_0* w, const block_q8_0* a, std::int64_t n) noexcept {
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
