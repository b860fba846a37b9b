// qinfer/ops/norm.hpp — RMSNorm with ggml's arithmetic (squares summed in double).
#pragma once

#include <cmath>
#include <cstdint>

#include "../core/config.hpp"

QINFER_NAMESPACE_BEGIN

// y = x / sqrt(mean(x^2) + eps) * w, or without the weight when w is null. In place is fine.
inline void rms_norm(const float* x, const float* w, float* y, std::int64_t n, float eps) noexcept {
    double sum = 0.0;
    for (std::int64_t i = 0; i < n; ++i) sum += double(x[i] * x[i]);
    const float mean = float(sum / double(n));
    const float scale = 1.0f / std::sqrt(mean + eps);
    if (w)
        for (std::int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
    else
        for (std::int64_t i = 0; i < n; ++i) y[i] = x[i] * scale;
}

QINFER_NAMESPACE_END
