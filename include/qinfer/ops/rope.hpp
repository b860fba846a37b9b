// qinfer/ops/rope.hpp — rotary position embedding, "normal" (adjacent pairs, llama) and
// "neox" (pairs i, i + n_rot/2; qwen2/qwen3) layouts, with ggml's angle recurrence; linear and
// YaRN scaling, per-pair frequency factors.
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
    // YaRN (ext_factor 1): dimensions below corr_lo keep their extrapolated angle, those above
    // corr_hi the interpolated one, a linear ramp between; cos and sin grow by 1 + 0.1 ln(1/scale).
    float ext_factor = 0.0f;
    float corr_lo = 0.0f, corr_hi = 0.0f;
};

// YaRN's correction range for a RoPE base: the dimensions whose wavelength spans between
// beta_fast and beta_slow rotations over the original context (floored / ceiled, clamped).
inline void rope_yarn_corr_dims(int n_rot, std::int64_t n_ctx_orig, float base, float beta_fast, float beta_slow,
                                float& lo, float& hi) noexcept {
    constexpr float pi = 3.14159265358979323846f;
    auto dim = [&](float rotations) {
        return float(n_rot) * std::log(float(n_ctx_orig) / (rotations * 2.0f * pi)) / (2.0f * std::log(base));
    };
    lo = std::max(0.0f, std::floor(dim(beta_fast)));
    hi = std::min(float(n_rot - 1), std::ceil(dim(beta_slow)));
}

// Fills cache[2*i], cache[2*i+1] with cos, sin of the angle of pair i at `pos`. The angle is
// built by repeated multiplication, as ggml does, rather than pow() per pair: the float
// rounding of that recurrence is part of what llama.cpp computes.
inline void rope_angles(const rope_params& p, std::int64_t pos, float* cache) noexcept {
    const float theta_scale = std::pow(p.freq_base, -2.0f / float(p.n_rot));
    float mscale = p.attn_factor;
    if (p.ext_factor != 0.0f) mscale *= 1.0f + 0.1f * std::log(1.0f / p.freq_scale);
    float theta = float(pos);
    for (int i = 0; i < p.n_rot; i += 2) {
        const float ff = p.freq_factors ? p.freq_factors[i / 2] : 1.0f;
        const float extrap = theta / ff;
        float t = p.freq_scale * extrap;
        if (p.ext_factor != 0.0f) {
            const float y = (float(i / 2) - p.corr_lo) / std::max(0.001f, p.corr_hi - p.corr_lo);
            const float mix = (1.0f - std::min(1.0f, std::max(0.0f, y))) * p.ext_factor;
            t = t * (1.0f - mix) + extrap * mix;
        }
        cache[i] = std::cos(t) * mscale;
        cache[i + 1] = std::sin(t) * mscale;
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
