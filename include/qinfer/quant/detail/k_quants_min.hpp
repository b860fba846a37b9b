// qinfer/quant/detail/k_quants_min.hpp — what the K-quants with per-sub-block minimums
// (Q2_K, Q4_K, Q5_K) share: the weighted scale+minimum fit ggml calls make_qkx2_quants, the
// 6-bit scale/min packing of Q4_K and Q5_K, and its unpacking (scalar and SSE/AVX2).
//
// All of it reproduces ggml's reference arithmetic operation for operation (same float
// evaluation order, same rounding through detail::nearest_int); the quantized bytes depend
// on every one of those roundings.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "../../core/config.hpp"
#include "../../core/fp16.hpp"
#include "importance.hpp"
#include "rounding.hpp"

#if QINFER_X86_DISPATCH
#include <immintrin.h>
#endif

QINFER_NAMESPACE_BEGIN
namespace detail::kmin {

// Search parameters of the scale/min fit; each format uses its own set (they are part of
// the format's definition as far as bit-exactness goes).
struct fit_params {
    int nmax;       // largest quant (3, 15 or 31)
    float rmin;     // first candidate: iscale = (nmax + rmin) / range ...
    float rdelta;   // ... stepping rmin by rdelta ...
    int nstep;      // ... nstep + 1 times
    bool use_mad;   // error metric: weighted |err| (true) or weighted err^2 (false)
};

inline constexpr fit_params q2_fit{3, -0.5f, 0.1f, 15, true};
inline constexpr fit_params q4_fit{15, -1.0f, 0.1f, 20, false};
inline constexpr fit_params q5_fit{31, -0.5f, 0.1f, 15, false};

// Fits x[i] ~= scale * L[i] - neg_min with L[i] in 0..nmax under weights w, minimizing the
// weighted error over a small grid of starting scales, each refined by weighted least
// squares (== ggml's make_qkx2_quants). Returns the scale; *neg_min receives the (non-
// negative) amount subtracted. `tmp` is scratch of n bytes.
inline float make_qkx2_quants(int n, const float* QINFER_RESTRICT x, const float* QINFER_RESTRICT w,
                              std::uint8_t* QINFER_RESTRICT L, float* neg_min, std::uint8_t* QINFER_RESTRICT tmp,
                              const fit_params& p) noexcept {
    float lo = x[0], hi = x[0];
    float sw = w[0];
    float swx = sw * x[0];
    for (int i = 1; i < n; ++i) {
        lo = x[i] < lo ? x[i] : lo;
        hi = x[i] > hi ? x[i] : hi;
        sw += w[i];
        swx += w[i] * x[i];
    }
    if (lo > 0) lo = 0;  // the offset only ever subtracts
    if (hi == lo) {
        std::fill(L, L + n, std::uint8_t(0));
        *neg_min = -lo;
        return 0.0f;
    }
    auto err = [&](float e) { return p.use_mad ? std::fabs(e) : e * e; };
    auto quant = [&](float inv, float off, int i) {
        const int q = nearest_int(inv * (x[i] - off));
        return std::uint8_t(std::clamp(q, 0, p.nmax));
    };

    // Starting point: the plain min/max grid.
    float inv = float(p.nmax) / (hi - lo);
    float scale = 1 / inv;
    float best = 0;
    for (int i = 0; i < n; ++i) {
        L[i] = quant(inv, lo, i);
        best += w[i] * err(scale * L[i] + lo - x[i]);
    }
    if (p.nstep < 1) {
        *neg_min = -lo;
        return scale;
    }
    for (int step = 0; step <= p.nstep; ++step) {
        // Note: `lo` is the best offset found so far, not the data minimum (ggml's quirk:
        // once a refit wins, later candidates are gridded from the refit offset).
        inv = (p.rmin + p.rdelta * step + p.nmax) / (hi - lo);
        float sl = 0, sl2 = 0, sxl = 0;
        for (int i = 0; i < n; ++i) {
            const std::uint8_t q = quant(inv, lo, i);
            tmp[i] = q;
            sl += w[i] * q;
            sl2 += w[i] * q * q;
            sxl += w[i] * q * x[i];
        }
        const float det = sw * sl2 - sl * sl;
        if (!(det > 0)) continue;
        // Weighted least squares for (scale, offset) given these quants.
        float s = (sw * sxl - swx * sl) / det;
        float m = (sl2 * swx - sl * sxl) / det;
        if (m > 0) {  // a positive offset is not representable: refit the scale alone
            m = 0;
            s = sxl / sl2;
        }
        float e = 0;
        for (int i = 0; i < n; ++i) e += w[i] * err(s * tmp[i] + m - x[i]);
        if (e < best) {
            std::copy(tmp, tmp + n, L);
            best = e;
            scale = s;
            lo = m;
        }
    }
    *neg_min = -lo;
    return scale;
}

// Q4_K / Q5_K: 8 scales and 8 mins of 6 bits packed into 12 bytes. Sub-blocks 0..3 keep
// their scale in bytes 0..3 and their min in bytes 4..7 (low 6 bits); sub-blocks 4..7 keep
// the low nibbles of scale and min in bytes 8..11 (scale low, min high) and their top two
// bits in the spare bits 6..7 of bytes 0..3 (scale) and 4..7 (min).
inline void pack_scales_mins(const std::uint8_t sc[8], const std::uint8_t mn[8], std::uint8_t out[12]) noexcept {
    for (int j = 0; j < 4; ++j) {
        out[j] = std::uint8_t(sc[j] | ((sc[j + 4] >> 4) << 6));
        out[j + 4] = std::uint8_t(mn[j] | ((mn[j + 4] >> 4) << 6));
        out[j + 8] = std::uint8_t((sc[j + 4] & 0x0f) | ((mn[j + 4] & 0x0f) << 4));
    }
}

// Scale and min of sub-block j (0..7) from the 12 packed bytes (ggml's get_scale_min_k4).
inline void scale_min(int j, const std::uint8_t* q, std::uint8_t& sc, std::uint8_t& mn) noexcept {
    if (j < 4) {
        sc = q[j] & 63;
        mn = q[j + 4] & 63;
    } else {
        sc = std::uint8_t((q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4));
        mn = std::uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// Shared Q4_K / Q5_K super-block quantization: fit each 32-weight sub-block, quantize the
// 8 scales and 8 mins to 6 bits against the largest of each, then requantize every weight
// with the scale and min it will actually be decoded with. Writes d, dmin, the 12 packed
// bytes and L[256] (quants 0..nmax, in element order).
inline void quantize_superblock_6bit(const float* QINFER_RESTRICT x, const fit_params& p, fp16& d, fp16& dmin,
                                     std::uint8_t* QINFER_RESTRICT packed, std::uint8_t* QINFER_RESTRICT L) noexcept {
    float scales[8], mins[8], w[32];
    std::uint8_t tmp[32];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
        const float* xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += xs[l] * xs[l];
        const float av_x = std::sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) w[l] = av_x + std::fabs(xs[l]);
        scales[j] = make_qkx2_quants(32, xs, w, L + 32 * j, &mins[j], tmp, p);
        if (scales[j] > max_scale) max_scale = scales[j];
        if (mins[j] > max_min) max_min = mins[j];
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    std::uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; ++j) {
        // int -> uint8_t wraps like ggml's implicit conversion before the clamp to 63
        ls[j] = std::min<std::uint8_t>(63, static_cast<std::uint8_t>(nearest_int(inv_scale * scales[j])));
        lm[j] = std::min<std::uint8_t>(63, static_cast<std::uint8_t>(nearest_int(inv_min * mins[j])));
    }
    pack_scales_mins(ls, lm, packed);
    d = to_fp16(max_scale / 63.f);
    dmin = to_fp16(max_min / 63.f);

    const float fd = to_float(d), fm = to_float(dmin);
    for (int j = 0; j < 8; ++j) {
        std::uint8_t sc, mn;
        scale_min(j, packed, sc, mn);
        const float dj = fd * sc;
        if (dj == 0.0f) continue;  // keep the fit's quants
        const float mj = fm * mn;
        for (int l = 0; l < 32; ++l) {
            const int q = nearest_int((x[32 * j + l] + mj) / dj);
            L[32 * j + l] = std::uint8_t(std::clamp(q, 0, p.nmax));
        }
    }
}

// The fit ggml runs with an importance matrix (make_qkx3_quants): the same search as
// make_qkx2_quants over a finer grid, for every format of this family and Q4_1 / Q5_1.
inline constexpr fit_params weighted_fit(int nmax) noexcept { return {nmax, -0.9f, 0.05f, 36, false}; }

// Non-negative values x[0..n) (sub-block scales or mins) as levels L[i] = round(x[i] / s)
// <= nmax under importance weights qw (ggml's make_qp_quants): nine starting scales around
// nmax / max, the best by weighted squared error, then up to five sweeps that move single
// levels while the weighted least-squares fit improves. Returns the fitted s (0 when
// max < 1e-15). L is uint8_t as in ggml: a negative level wraps.
inline float make_qp_quants(int n, int nmax, const float* QINFER_RESTRICT x, std::uint8_t* QINFER_RESTRICT L,
                            const float* QINFER_RESTRICT qw) noexcept {
    float max = 0;
    for (int i = 0; i < n; ++i) max = max > x[i] ? max : x[i];  // ggml's MAX, signed zeros included
    if (max < 1e-15f) {
        std::fill(L, L + n, std::uint8_t(0));
        return 0.f;
    }
    float iscale = nmax / max;
    for (int i = 0; i < n; ++i) L[i] = static_cast<std::uint8_t>(nearest_int(iscale * x[i]));
    const float scale = 1 / iscale;
    float best_mse = 0;
    for (int i = 0; i < n; ++i) {
        const float diff = x[i] - scale * L[i];
        best_mse += qw[i] * diff * diff;
    }
    for (int is = -4; is <= 4; ++is) {
        if (is == 0) continue;
        const float iscale_is = (0.1f * is + nmax) / max;
        const float scale_is = 1 / iscale_is;
        float mse = 0;
        for (int i = 0; i < n; ++i) {
            const int l = std::min(nmax, nearest_int(iscale_is * x[i]));
            const float diff = x[i] - scale_is * l;
            mse += qw[i] * diff * diff;
        }
        if (mse < best_mse) {
            best_mse = mse;
            iscale = iscale_is;
        }
    }
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = std::min(nmax, nearest_int(iscale * x[i]));
        L[i] = static_cast<std::uint8_t>(l);
        sumlx += qw[i] * x[i] * l;
        suml2 += qw[i] * l * l;
    }
    for (int sweep = 0; sweep < 5; ++sweep) {
        int changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = qw[i];
            float slx = sumlx - w * x[i] * L[i];  // the fit without element i
            float sl2 = suml2 - w * L[i] * L[i];
            if (slx > 0 && sl2 > 0) {
                const int nl = std::min(nmax, nearest_int(x[i] * sl2 / slx));
                if (nl != L[i]) {
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = static_cast<std::uint8_t>(nl);
                        sumlx = slx;
                        suml2 = sl2;
                        ++changed;
                    }
                }
            }
        }
        if (!changed) break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// quantize_superblock_6bit with an importance matrix (ggml's quantize_row_q4_K_impl /
// q5_K_impl with quant_weights): sub-block weights qw_j * sqrt(sigma2 + x_j^2), sigma2 =
// 2 * mean(x^2) over the super-block; the fit is make_qkx3_quants; the 6-bit scales and
// mins come from make_qp_quants weighted by each sub-block's total weight. `clamp63`: Q5_K
// clamps those levels to 63, Q4_K stores them as they are.
inline void quantize_superblock_6bit_weighted(const float* QINFER_RESTRICT x, const float* QINFER_RESTRICT qw, int nmax,
                                              bool clamp63, fp16& d, fp16& dmin, std::uint8_t* QINFER_RESTRICT packed,
                                              std::uint8_t* QINFER_RESTRICT L) noexcept {
    float scales[8], mins[8], sw[8], w[32];
    std::uint8_t tmp[32];
    const float sigma2 = 2 * sum_of_squares(x, 256) / 256;
    for (int j = 0; j < 8; ++j) {
        importance_weights(x + 32 * j, qw + 32 * j, sigma2, w, 32);
        float sumw = 0;
        for (int l = 0; l < 32; ++l) sumw += w[l];
        sw[j] = sumw;
        scales[j] = make_qkx2_quants(32, x + 32 * j, w, L + 32 * j, &mins[j], tmp, weighted_fit(nmax));
    }
    std::uint8_t ls[8], lm[8];
    const float d_block = make_qp_quants(8, 63, scales, ls, sw);
    const float m_block = make_qp_quants(8, 63, mins, lm, sw);
    if (clamp63) {
        for (int j = 0; j < 8; ++j) {
            ls[j] = std::min<std::uint8_t>(63, ls[j]);
            lm[j] = std::min<std::uint8_t>(63, lm[j]);
        }
    }
    pack_scales_mins(ls, lm, packed);
    d = to_fp16(d_block);
    dmin = to_fp16(m_block);

    const float fd = to_float(d), fm = to_float(dmin);
    for (int j = 0; j < 8; ++j) {
        std::uint8_t sc, mn;
        scale_min(j, packed, sc, mn);
        const float dj = fd * sc;
        if (dj == 0.0f) continue;  // keep the fit's quants
        const float mj = fm * mn;
        for (int l = 0; l < 32; ++l) {
            const int q = nearest_int((x[32 * j + l] + mj) / dj);
            L[32 * j + l] = std::uint8_t(std::clamp(q, 0, nmax));
        }
    }
}

#if QINFER_X86_DISPATCH
// GCC 12 flags its own _mm512_undefined_* placeholders as uninitialized once AVX-512
// intrinsics are inlined into target("avx512...") functions: spurious, silenced here.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
// The two fp16 super-block scales (d, dmin: adjacent in every block of this family) as
// floats times the activation scale, in lanes 0 and 1. F16C conversion is exact.
QINFER_TARGET_AVX2 inline __m128 d_dmin_times(const fp16* pair, float a_scale) noexcept {
    std::int32_t raw;
    std::memcpy(&raw, pair, 4);
    return _mm_mul_ps(_mm_cvtph_ps(_mm_cvtsi32_si128(raw)), _mm_set1_ps(a_scale));
}

// The 12 packed bytes -> 16 bytes [scale0..7, min0..7] in one SSE register. The bit
// shuffling runs in general registers (two 64-bit words: [sc0..3 | min0..3] and
// [sc4..7 | min4..7]), which keeps it off the vector ports the dot products saturate.
QINFER_TARGET_AVX2 inline __m128i unpack_scales_mins(const std::uint8_t* q) noexcept {
    std::uint64_t w01;  // packed bytes 0..7: low 6 bits of sc0..3, min0..3; top 2 bits for 4..7
    std::uint32_t w2;   // packed bytes 8..11: low nibbles of sc4..7 (low) and min4..7 (high)
    std::memcpy(&w01, q, 8);
    std::memcpy(&w2, q + 8, 4);
    const std::uint64_t first = w01 & 0x3f3f3f3f3f3f3f3full;
    const std::uint64_t top = (w01 >> 2) & 0x3030303030303030ull;  // bits 6..7 -> 4..5
    const std::uint64_t nib = (std::uint64_t(w2) | (std::uint64_t(w2) << 28)) & 0x0f0f0f0f0f0f0f0full;
    const std::uint64_t second = nib | top;  // [sc4..7 | min4..7]
    return _mm_unpacklo_epi32(_mm_cvtsi64_si128(static_cast<long long>(first)),
                              _mm_cvtsi64_si128(static_cast<long long>(second)));
}

// sum over sub-blocks j of min_j * (bsums[2j] + bsums[2j+1]), as 8 int32 lanes (lane j):
// the whole minimum term of a Q4_K / Q5_K block against Q8_K, before scaling by dmin.
// `sm` holds the unpacked [scale0..7, min0..7] in both 128-bit lanes.
QINFER_TARGET_AVX2 inline __m256i mins_times_bsums(__m256i sm, const std::int16_t* bsums) noexcept {
    // words min0 min0 min1 min1 ... min7 min7 (zero-extended by the 0x80 control bytes)
    const __m256i dup = _mm256_set_epi8(-128, 15, -128, 15, -128, 14, -128, 14, -128, 13, -128, 13, -128, 12, -128, 12,
                                        -128, 11, -128, 11, -128, 10, -128, 10, -128, 9, -128, 9, -128, 8, -128, 8);
    return _mm256_madd_epi16(_mm256_shuffle_epi8(sm, dup), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(bsums)));
}

// Byte-shuffle control that turns byte b of each 128-bit lane into a zero-extended 16-bit
// word in every word of the lane (picks a sub-block scale as the dpwssd / madd multiplier).
QINFER_TARGET_AVX2 inline __m256i byte_to_words(int b) noexcept { return _mm256_set1_epi16(short(0x8000 | b)); }

// Same with byte blo for the low 256 bits and byte bhi for the high 256 bits of a zmm.
QINFER_TARGET_AVX512 inline __m512i byte_to_words(int blo, int bhi) noexcept {
    return _mm512_inserti64x4(_mm512_castsi256_si512(byte_to_words(blo)), byte_to_words(bhi), 1);
}
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

}  // namespace detail::kmin
QINFER_NAMESPACE_END
