// qinfer/ops/activation.hpp — the feed-forward non-linearities.
#pragma once

#include <cmath>
#include <cstdint>

#include "../core/config.hpp"

QINFER_NAMESPACE_BEGIN

inline float silu(float x) noexcept { return x / (1.0f + std::exp(-x)); }

// gate[i] = silu(gate[i]) * up[i]: SwiGLU, in place over the gate.
inline void swiglu(float* gate, const float* up, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n; ++i) gate[i] = silu(gate[i]) * up[i];
}

QINFER_NAMESPACE_END
