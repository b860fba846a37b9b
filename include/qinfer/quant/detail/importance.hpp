// qinfer/quant/detail/importance.hpp — the weights ggml's quantizers fit under when an
// importance matrix (imatrix) is given: importance_j * sqrt(sigma2 + x_j^2), where sigma2
// is a multiple of the mean square of the row, block or super-block (the format decides).
#pragma once

#include <cmath>
#include <cstdint>

#include "../../core/config.hpp"

QINFER_NAMESPACE_BEGIN
namespace detail {

// x[0]^2 + ... + x[n-1]^2, summed in order in float, as ggml sums it.
inline float sum_of_squares(const float* x, std::int64_t n) noexcept {
    float s = 0;
    for (std::int64_t j = 0; j < n; ++j) s += x[j] * x[j];
    return s;
}

// w[j] = importance[j] * sqrt(sigma2 + x[j]^2) for j < n: each value's weight in the
// least-squares fit of its block's scale (and minimum).
inline void importance_weights(const float* x, const float* importance, float sigma2, float* w, int n) noexcept {
    for (int j = 0; j < n; ++j) w[j] = importance[j] * std::sqrt(sigma2 + x[j] * x[j]);
}

}  // namespace detail
QINFER_NAMESPACE_END
