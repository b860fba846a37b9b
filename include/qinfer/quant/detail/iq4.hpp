// qinfer/quant/detail/iq4.hpp — what IQ4_NL and IQ4_XS share: the 16 non-linear levels,
// the nearest-level search, and the weighted scale search ggml runs for both formats
// (quantize_row_iq4_nl_impl), reproduced operation for operation.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "../../core/config.hpp"
#include "../../core/fp16.hpp"
#include "codebook4.hpp"
#include "importance.hpp"
#include "rounding.hpp"

#if QINFER_X86_DISPATCH
#include <immintrin.h>
#endif

QINFER_NAMESPACE_BEGIN
namespace detail::iq4 {

// The levels a 4-bit index decodes to (ggml's kvalues_iq4nl): denser near zero.
inline constexpr std::int8_t levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                           1,    13,   25,  38,  53,  69,  89,  113};

// The levels as int32, for scaling them with detail::simd::scale_ints.
alignas(64) inline constexpr std::int32_t levels32[16] = {-127, -104, -83, -65, -49, -35, -22, -10,
                                                          1,    13,   25,  38,  53,  69,  89,  113};

// levels + 128 (1..241): the unsigned operand VNNI's dpbusd needs.
inline constexpr std::uint8_t levels_biased[16] = {1,   24,  45,  63,  79,  93,  106, 118,
                                                   129, 141, 153, 166, 181, 197, 217, 241};

// Index of the level nearest to v; exact ties go to the larger level, NaN to 15 (the same
// bisection and comparisons as ggml's best_index_int8, so identical on every input).
inline int nearest_level(float v) noexcept {
    if (v <= levels[0]) return 0;
    if (v >= levels[15]) return 15;
    int lo = 0, hi = 15;
    while (hi - lo > 1) {
        const int mid = (lo + hi) / 2;
        if (v < levels[mid]) hi = mid;
        else lo = mid;
    }
    return v - levels[hi - 1] < levels[hi] - v ? hi - 1 : hi;
}

// A group whose largest magnitude is below this is all zeros (ggml's GROUP_MAX_EPS).
inline constexpr float group_eps = 1e-15f;

// Quantizes `nsub` groups of 32 weights (nsub == 1: one IQ4_NL block, 8: one IQ4_XS
// super-block); without an importance matrix the weights are x^2.
//
// Each group: a first scale from its largest magnitude, refined by weighted least squares
// over its nearest levels; with ntry > 0, 2 * ntry + 1 further starting scales are tried.
// IQ4_XS then quantizes the 8 group scales to signed 6 bits against the largest and
// requantizes each group with its decoded scale (kept in float: not the fp16 of `dh`).
// IQ4_NL stores its group scale directly and, with ntry > 0, requantizes with it.
//
// `L` (32 * nsub bytes) holds the level indices. It is state, not scratch: ggml's
// reference IQ4_NL path (ntry <= 0) leaves an all-zero group's indices as they were, so a
// caller reproducing it must pass the same buffer block after block.
//
// With an importance matrix `importance` (32 * nsub values, one per weight of these groups)
// the weights are importance_j * sqrt(sigma2 + x_j^2), sigma2 = 2 * mean(x^2) over the
// groups (ggml's quant_weights path); everything else is the same.
inline void quantize_groups(int nsub, const float* QINFER_RESTRICT x, int ntry, fp16& dh, std::uint8_t* QINFER_RESTRICT qs,
                            std::uint16_t* scales_h, std::uint8_t* scales_l, std::uint8_t* QINFER_RESTRICT L,
                            const float* QINFER_RESTRICT importance = nullptr) noexcept {
    float scales[8] = {};
    float weight[32];
    const float sigma2 = sum_of_squares(x, 32 * nsub) * (2.f / float(32 * nsub));
    std::memset(qs, 0, static_cast<std::size_t>(16 * nsub));
    dh = to_fp16(0.f);

    float max_scale = 0, amax_scale = 0;
    for (int g = 0; g < nsub; ++g) {
        const float* xg = x + 32 * g;
        std::uint8_t* Lg = L + 32 * g;
        if (importance) {
            importance_weights(xg, importance + 32 * g, sigma2, weight, 32);
        } else {
            for (int j = 0; j < 32; ++j) weight[j] = xg[j] * xg[j];
        }
        float amax = 0, max = 0;
        for (int j = 0; j < 32; ++j) {
            const float ax = std::fabs(xg[j]);
            if (ax > amax) {
                amax = ax;
                max = xg[j];
            }
        }
        if (amax < group_eps) {
            scales[g] = 0;
            continue;
        }
        float d = ntry > 0 ? -max / levels[0] : max / levels[0];
        float id = 1 / d;
        float sumqx = 0, sumq2 = 0;
        for (int j = 0; j < 32; ++j) {
            const int l = nearest_level(id * xg[j]);
            Lg[j] = static_cast<std::uint8_t>(l);
            const float q = levels[l];
            const float w = weight[j];
            sumqx += w * q * xg[j];
            sumq2 += w * q * q;
        }
        d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
        float best = d * sumqx;
        for (int t = -ntry; t <= ntry; ++t) {
            id = (t + levels[0]) / max;
            sumqx = sumq2 = 0;
            for (int j = 0; j < 32; ++j) {
                const float q = levels[nearest_level(id * xg[j])];
                const float w = weight[j];
                sumqx += w * q * xg[j];
                sumq2 += w * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scales[g] = d;
        const float abs_d = std::fabs(d);
        if (abs_d > amax_scale) {
            amax_scale = abs_d;
            max_scale = d;
        }
    }

    if (nsub > 1) {
        *scales_h = 0;
        const float d = -max_scale / 32;
        dh = to_fp16(d);
        const float id = d ? 1 / d : 0.f;
        for (int g = 0; g < nsub; ++g) {
            const int l = std::clamp(nearest_int(id * scales[g]), -32, 31);
            const float dl = d * l;
            const float idl = dl ? 1 / dl : 0.f;
            for (int j = 0; j < 32; ++j) L[32 * g + j] = static_cast<std::uint8_t>(nearest_level(idl * x[32 * g + j]));
            const int u = l + 32;  // 0..63: low nibble in scales_l, top two bits in scales_h
            if (g % 2 == 0) scales_l[g / 2] = static_cast<std::uint8_t>(u & 0x0f);
            else scales_l[g / 2] = static_cast<std::uint8_t>(scales_l[g / 2] | ((u & 0x0f) << 4));
            *scales_h = static_cast<std::uint16_t>(*scales_h | ((u >> 4) << (2 * g)));
        }
    } else {
        dh = to_fp16(scales[0]);
        if (ntry > 0) {
            const float id = scales[0] ? 1 / scales[0] : 0;
            for (int j = 0; j < 32; ++j) L[j] = static_cast<std::uint8_t>(nearest_level(id * x[j]));
        }
    }

    for (int g = 0; g < nsub; ++g)
        for (int j = 0; j < 16; ++j)
            qs[16 * g + j] = static_cast<std::uint8_t>(L[32 * g + j] | (L[32 * g + 16 + j] << 4));
}

#if QINFER_X86_DISPATCH
// The 16 levels in both 128-bit lanes, for byte-shuffle lookups (codebook4::lookup_levels).
QINFER_TARGET_AVX2 inline __m256i levels_table() noexcept { return codebook4::table(levels); }
using codebook4::lookup_levels;
#endif

}  // namespace detail::iq4
QINFER_NAMESPACE_END
