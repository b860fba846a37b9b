// qinfer/ops/activation.hpp — the feed-forward non-linearities, and the logit soft-cap.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "../core/config.hpp"
#include "../core/fp16.hpp"

QINFER_NAMESPACE_BEGIN

inline float silu(float x) noexcept { return x / (1.0f + std::exp(-x)); }

// GELU, tanh approximation, as ggml's CPU backend computes it: the input rounded to fp16 and
// the result read from an fp16 table (so rounded to fp16 too), exact outside (-10, 10).
inline float gelu_tanh(float x) noexcept {
    if (x <= -10.0f) return 0.0f;
    if (x >= 10.0f) return x;
    const float h = to_float(to_fp16(x));
    constexpr float sqrt_2_over_pi = 0.79788456080286535587989211986876f, coef = 0.044715f;
    return to_float(to_fp16(0.5f * h * (1.0f + std::tanh(sqrt_2_over_pi * h * (1.0f + coef * h * h)))));
}

// gate[i] = silu(gate[i]) * up[i]: SwiGLU, in place over the gate.
inline void swiglu(float* gate, const float* up, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n; ++i) gate[i] = silu(gate[i]) * up[i];
}

// gate[i] = gelu(gate[i]) * up[i]: GeGLU (gemma), in place over the gate.
inline void geglu(float* gate, const float* up, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n; ++i) gate[i] = gelu_tanh(gate[i]) * up[i];
}

// gpt-oss's clamped SwiGLU, in place over the gate: g = min(gate, 7), u = clamp(up, -7, 7),
// gate = g * sigmoid(1.702 g) * (u + 1).
inline void swiglu_oai(float* gate, const float* up, std::int64_t n) noexcept {
    constexpr float alpha = 1.702f, limit = 7.0f;
    for (std::int64_t i = 0; i < n; ++i) {
        const float g = std::min(gate[i], limit);
        const float u = std::clamp(up[i], -limit, limit);
        gate[i] = g / (1.0f + std::exp(alpha * (-g))) * (u + 1.0f);
    }
}

// x -> cap * tanh(x / cap), in place (gemma2's final logits); cap 0 leaves x alone.
inline void softcap(float* x, std::int64_t n, float cap) noexcept {
    if (!(cap > 0.0f)) return;
    const float inv = 1.0f / cap;
    for (std::int64_t i = 0; i < n; ++i) x[i] = std::tanh(x[i] * inv) * cap;
}

QINFER_NAMESPACE_END
