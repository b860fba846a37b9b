// qinfer/ops/rope.hpp — rotary position embedding, "normal" (adjacent pairs, llama) and
// "neox" (pairs i, i + n_rot/2; qwen2/qwen3) layouts, with ggml's angle recurrence.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "../core/config.hpp"

QINFER_NAMESPACE_BEGIN

enum class rope_layout { normal, neox };

struct rope_params {
    rope_layout layout = rope_layout::normal;
    int n_rot = 0;                        // rotated dimensions per head (<= head_dim)
    float freq_base = 10000.0f;
    float freq_scale = 1.0f;              // 1 / linear scaling factor
    const float* freq_factors = nullptr;  // per-pair divisors (llama3 rope_freqs, phi3 long/short), or null
    float attn_factor = 1.0f;             // multiplies cos and sin (rope.scaling.attn_factor)
};

// Fills cache[2*i], cache[2*i+1] with cos, sin of the angle of pair i at `pos`. The angle is
// built by repeated multiplication, as ggml does, rather than pow() per pair: the float
// rounding of that recurrence is part of what llama.cpp computes.
inline void rope_angles(const rope_params& p, std::int64_t pos, float* cache) noexcept {
    const float theta_scale = std::pow(p.freq_base, -2.0f / float(p.n_rot));
    float theta = float(pos);
    for (int i = 0; i < p.n_rot; i += 2) {
        const float ff = p.freq_factors ? p.freq_factors[i / 2] : 1.0f;
        const float t = p.freq_scale * (theta / ff);
        cache[i] = std::cos(t) * p.attn_factor;
        cache[i + 1] = std::sin(t) * p.attn_factor;
        theta *= theta_scale;
    }
}

// Rotates n_heads heads of head_dim floats each (contiguous) in place, given the angles.
inline void rope_apply(const rope_params& p, const float* cache, float* x, int n_heads, int head_dim) noexcept {
    for (int h = 0; h < n_heads; ++h) {
        float* v = x + std::int64_t(h) * head_dim;
        for (int i = 0; i < p.n_rot; i += 2) {
            const float c = cache[i], s = cache[i + 1];
            float* a;
            float* b;
            if (p.layout == rope_layout::normal) { a = v + i; b = v + i + 1; }
            else { a = v + i / 2; b = v + i / 2 + p.n_rot / 2; }
            const float x0 = *a, x1 = *b;
            *a = x0 * c - x1 * s;
            *b = x0 * s + x1 * c;
        }
    }
}

QINFER_NAMESPACE_END
