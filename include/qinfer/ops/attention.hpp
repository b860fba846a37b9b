// qinfer/ops/attention.hpp — causal grouped-query attention of new queries over a KV cache.
//
// Mirrors what llama.cpp computes without flash attention: with an fp16 cache the query is
// rounded to fp16 before q.k (ggml converts the activation to the cache's type), the
// softmax runs in float with its sum in double, and the probabilities are rounded to fp16
// before they weight V.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <type_traits>

#include "../core/cpu.hpp"
#include "../core/fp16.hpp"

#if QINFER_X86_DISPATCH
#include <immintrin.h>
#endif

QINFER_NAMESPACE_BEGIN

namespace detail {
inline float as_float(float v) noexcept { return v; }
inline float as_float(fp16 v) noexcept { return to_float(v); }
template <class T> inline float round_to(float v) noexcept {
    if constexpr (std::is_same_v<T, fp16>) return to_float(to_fp16(v));
    else return v;
}

#if QINFER_X86_DISPATCH
QINFER_TARGET_AVX2 inline __m256 load8(const float* p) noexcept { return _mm256_loadu_ps(p); }
QINFER_TARGET_AVX2 inline __m256 load8(const fp16* p) noexcept {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}

// sum_d k[d] * q[d], eight lanes and two chains at a time.
template <class T>
QINFER_TARGET_AVX2 inline float dot_avx2(const T* k, const float* q, int n) noexcept {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int d = 0;
    for (; d + 16 <= n; d += 16) {
        a0 = _mm256_fmadd_ps(load8(k + d), _mm256_loadu_ps(q + d), a0);
        a1 = _mm256_fmadd_ps(load8(k + d + 8), _mm256_loadu_ps(q + d + 8), a1);
    }
    __m256 a = _mm256_add_ps(a0, a1);
    __m128 r = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    float s = _mm_cvtss_f32(r);
    for (; d < n; ++d) s += as_float(k[d]) * q[d];
    return s;
}

// out[d] += v[d] * p: a multiply and an add per lane, as the scalar loop does, so every
// instruction set gives the same bits.
template <class T>
QINFER_TARGET_AVX2 inline void axpy_avx2(float* out, const T* v, float p, int n) noexcept {
    const __m256 pv = _mm256_set1_ps(p);
    int d = 0;
    for (; d + 8 <= n; d += 8) _mm256_storeu_ps(out + d, _mm256_add_ps(_mm256_loadu_ps(out + d), _mm256_mul_ps(load8(v + d), pv)));
    for (; d < n; ++d) out[d] += as_float(v[d]) * p;
}
#endif

template <class T> inline float dot_kq(const T* k, const float* q, int n) noexcept {
#if QINFER_X86_DISPATCH
    if (active_isa() >= isa::avx2) return dot_avx2(k, q, n);
#endif
    float s = 0.0f;
    for (int d = 0; d < n; ++d) s += as_float(k[d]) * q[d];
    return s;
}

template <class T> inline void add_scaled(float* out, const T* v, float p, int n) noexcept {
#if QINFER_X86_DISPATCH
    if (active_isa() >= isa::avx2) return axpy_avx2(out, v, p, n);
#endif
    for (int d = 0; d < n; ++d) out[d] += as_float(v[d]) * p;
}
}  // namespace detail

// Geometry of one layer's cache: element (pos, kv_head, d) is at pos*stride + kv_head*head_dim + d.
template <class T>
struct kv_layer_view {
    const T* k;
    const T* v;
    std::int64_t stride;  // elements per position (n_kv_heads * head_dim)
};

// What a layer's attention adds to plain scaled dot-product attention.
struct attention_params {
    float kq_scale = 1.0f;     // multiplies the scores inside the softmax
    float softcap = 0.0f;      // scores s -> cap * tanh(s / cap) before the scale (gemma2); 0 = off
    std::int64_t window = 0;   // sliding window: keys before pos - window + 1 are masked; 0 = none
};

// out (head_dim floats) = attention of query head `h` (head_dim floats) at absolute position
// `pos` over cache positions [pos - window + 1, pos] (all of [0, pos] without a window).
// `scores` must hold pos + 1 floats. A finite `sink` (gpt-oss) is one more logit in the
// softmax's max and sum that weights no value: it lets a head attend to nothing.
template <class T>
inline void attend_head(const kv_layer_view<T>& kv, const float* q, int kv_head, int head_dim, std::int64_t pos,
                        const attention_params& p, float* scores, float* out,
                        float sink = -std::numeric_limits<float>::infinity()) noexcept {
    const std::int64_t first = p.window > 0 ? std::max<std::int64_t>(0, pos - p.window + 1) : 0;
    const std::int64_t n = pos + 1 - first;
    const T* keys = kv.k + first * kv.stride + std::int64_t(kv_head) * head_dim;
    const T* values = kv.v + first * kv.stride + std::int64_t(kv_head) * head_dim;
    float qr[512];  // head_dim <= 512 is checked at load time
    for (int d = 0; d < head_dim; ++d) qr[d] = detail::round_to<T>(q[d]);
    const float inv_cap = p.softcap > 0.0f ? 1.0f / p.softcap : 0.0f;
    float max = -std::numeric_limits<float>::infinity();
    for (std::int64_t j = 0; j < n; ++j) {
        float s = detail::dot_kq(keys + j * kv.stride, qr, head_dim);
        if (p.softcap > 0.0f) s = std::tanh(s * inv_cap) * p.softcap;
        scores[j] = s * p.kq_scale;
        max = std::max(max, scores[j]);
    }
    max = std::max(max, sink);
    double sum = 0.0;
    for (std::int64_t j = 0; j < n; ++j) {
        const float e = std::exp(scores[j] - max);
        scores[j] = e;
        sum += e;
    }
    sum += std::exp(sink - max);  // 0 without a sink
    const float inv = float(1.0 / sum);
    for (std::int64_t j = 0; j < n; ++j) scores[j] = detail::round_to<T>(scores[j] * inv);
    for (int d = 0; d < head_dim; ++d) out[d] = 0.0f;
    for (std::int64_t j = 0; j < n; ++j) detail::add_scaled(out, values + j * kv.stride, scores[j], head_dim);
}

QINFER_NAMESPACE_END
