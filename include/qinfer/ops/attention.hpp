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

#include "../core/fp16.hpp"

QINFER_NAMESPACE_BEGIN

namespace detail {
inline float as_float(float v) noexcept { return v; }
inline float as_float(fp16 v) noexcept { return to_float(v); }
template <class T> inline float round_to(float v) noexcept {
    if constexpr (std::is_same_v<T, fp16>) return to_float(to_fp16(v));
    else return v;
}
}  // namespace detail

// Geometry of one layer's cache: element (pos, kv_head, d) is at pos*stride + kv_head*head_dim + d.
template <class T>
struct kv_layer_view {
    const T* k;
    const T* v;
    std::int64_t stride;  // elements per position (n_kv_heads * head_dim)
};

// out (head_dim floats) = attention of query head `h` (head_dim floats) at absolute position
// `pos` over cache positions [0, pos]. `scores` must hold pos + 1 floats.
template <class T>
inline void attend_head(const kv_layer_view<T>& kv, const float* q, int kv_head, int head_dim, std::int64_t pos,
                        float scale, float* scores, float* out) noexcept {
    const std::int64_t n = pos + 1;
    float qr[512];  // head_dim <= 512 is checked at load time
    for (int d = 0; d < head_dim; ++d) qr[d] = detail::round_to<T>(q[d]);
    float max = -std::numeric_limits<float>::infinity();
    for (std::int64_t j = 0; j < n; ++j) {
        const T* k = kv.k + j * kv.stride + std::int64_t(kv_head) * head_dim;
        float s = 0.0f;
        for (int d = 0; d < head_dim; ++d) s += detail::as_float(k[d]) * qr[d];
        scores[j] = s * scale;
        max = std::max(max, scores[j]);
    }
    double sum = 0.0;
    for (std::int64_t j = 0; j < n; ++j) {
        const float e = std::exp(scores[j] - max);
        scores[j] = e;
        sum += e;
    }
    const float inv = float(1.0 / sum);
    for (std::int64_t j = 0; j < n; ++j) scores[j] = detail::round_to<T>(scores[j] * inv);
    for (int d = 0; d < head_dim; ++d) out[d] = 0.0f;
    for (std::int64_t j = 0; j < n; ++j) {
        const T* v = kv.v + j * kv.stride + std::int64_t(kv_head) * head_dim;
        const float p = scores[j];
        for (int d = 0; d < head_dim; ++d) out[d] += detail::as_float(v[d]) * p;
    }
}

QINFER_NAMESPACE_END
