// qinfer/quant/detail/k_quants_sym.hpp — what the symmetric K-quants (Q3_K, Q6_K) share:
// the scale searches ggml calls make_qx_quants and make_q3_quants, Q3_K's 12-byte packing
// of sixteen 6-bit scales, and a few AVX2 / AVX-512 helpers of their dot kernels.
//
// The searches reproduce ggml's reference arithmetic operation for operation: the same
// float evaluation order (this library is compiled without FMA contraction) and the same
// round-half-to-even through detail::nearest_int. Quantized bytes depend on every rounding.
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
namespace detail::ksym {

// A group whose largest magnitude is below this is all zeros (ggml's GROUP_MAX_EPS).
inline constexpr float group_eps = 1e-15f;

// Value of the element of largest magnitude (the first one on ties); amax receives its
// magnitude.
inline float signed_absmax(int n, const float* x, float& amax) noexcept {
    float max = 0;
    amax = 0;
    for (int i = 0; i < n; ++i) {
        const float ax = std::fabs(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    return max;
}

// Symmetric quantization of n values to levels -nmax..nmax-1 with a weighted least-squares
// scale, searched over 19 starting scales around nmax/max (ggml's make_qx_quants with
// rmse_type 1). The weights are qw, or x^2 when qw is null. L receives level + nmax.
// Returns the scale (0 for an all-zero group).
inline float make_qx_quants(int n, int nmax, const float* QINFER_RESTRICT x, std::int8_t* QINFER_RESTRICT L,
                            const float* QINFER_RESTRICT qw) noexcept {
    float amax;
    const float max = signed_absmax(n, x, amax);
    if (amax < group_eps) {
        std::fill(L, L + n, std::int8_t(0));
        return 0.f;
    }
    auto weight = [&](int i) { return qw ? qw[i] : x[i] * x[i]; };
    auto level = [&](float iscale, int i) { return std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1); };

    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = level(iscale, i);
        L[i] = static_cast<std::int8_t>(l + nmax);
        const float w = weight(i);
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            const int l = level(iscale, i);
            const float w = weight(i);
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        // compare sumlx^2 / suml2 against the best without dividing
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i) L[i] = static_cast<std::int8_t>(level(iscale, i) + nmax);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// Symmetric quantization to -nmax..nmax-1 refined by coordinate descent (ggml's
// make_q3_quants with do_rmse): start from the nearest levels of nmax/max, then up to five
// sweeps move single levels to their optimum under the current least-squares fit (weights
// x^2) whenever that improves it. L receives level + nmax; returns the fitted scale.
inline float make_q3_quants(int n, int nmax, const float* QINFER_RESTRICT x, std::int8_t* QINFER_RESTRICT L) noexcept {
    float amax;
    const float max = signed_absmax(n, x, amax);
    if (amax < group_eps) {
        std::fill(L, L + n, std::int8_t(0));
        return 0.f;
    }
    const float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = static_cast<std::int8_t>(l);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int sweep = 0; sweep < 5; ++sweep) {
        int changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];  // the fit without element i
            if (slx > 0) {
                float sl2 = suml2 - w * L[i] * L[i];
                const int nl = std::clamp(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (nl != L[i]) {
                    slx += w * x[i] * nl;
                    sl2 += w * nl * nl;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = static_cast<std::int8_t>(nl);
                        sumlx = slx;
                        suml2 = sl2;
                        ++changed;
                    }
                }
            }
        }
        if (!changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = static_cast<std::int8_t>(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

// Q3_K scale packing: sixteen 6-bit values s[j] (0..63) in 12 bytes. The low nibble of
// s[j] is the low (j < 8) or high (j >= 8) nibble of byte j % 8; its top two bits sit in
// byte 8 + j % 4 at bit 2 * (j / 4).
inline void pack_q3_scales(const std::uint8_t s[16], std::uint8_t out[12]) noexcept {
    std::memset(out, 0, 12);
    for (int j = 0; j < 16; ++j) {
        out[j % 8] = static_cast<std::uint8_t>(out[j % 8] | ((s[j] & 0x0f) << (j < 8 ? 0 : 4)));
        out[8 + j % 4] = static_cast<std::uint8_t>(out[8 + j % 4] | ((s[j] >> 4) << (2 * (j / 4))));
    }
}

// The sixteen 6-bit values of `pack_q3_scales` minus 32 (the signed scales), in order.
inline void unpack_q3_scales(const std::uint8_t in[12], std::int8_t s[16]) noexcept {
    std::uint32_t w[3];
    std::memcpy(w, in, 12);
    // byte b of each word: word 0 -> scales 0..3, 1 -> 4..7 (low nibbles of w0 / w1),
    // 2 -> 8..11, 3 -> 12..15 (high nibbles); top bits from w2, two per scale.
    const std::uint32_t lo4 = 0x0f0f0f0fu, lo2 = 0x03030303u;
    const std::uint32_t u[4] = {
        (w[0] & lo4) | (((w[2] >> 0) & lo2) << 4),
        (w[1] & lo4) | (((w[2] >> 2) & lo2) << 4),
        ((w[0] >> 4) & lo4) | (((w[2] >> 4) & lo2) << 4),
        ((w[1] >> 4) & lo4) | (((w[2] >> 6) & lo2) << 4),
    };
    std::uint8_t b[16];
    std::memcpy(b, u, 16);
    for (int j = 0; j < 16; ++j) s[j] = static_cast<std::int8_t>(b[j] - 32);
}

#if QINFER_X86_DISPATCH
// Q3_K's 12 scale bytes -> the 16 signed scales (-32..31) as bytes of an SSE register.
QINFER_TARGET_AVX2 inline __m128i unpack_q3_scales_sse(const std::uint8_t* in) noexcept {
    std::uint32_t w[3];
    std::memcpy(w, in, 12);
    const std::uint32_t lo4 = 0x0f0f0f0fu, lo2 = 0x03030303u;
    const __m128i u = _mm_set_epi32(static_cast<int>(((w[1] >> 4) & lo4) | (((w[2] >> 6) & lo2) << 4)),
                                    static_cast<int>(((w[0] >> 4) & lo4) | (((w[2] >> 4) & lo2) << 4)),
                                    static_cast<int>((w[1] & lo4) | (((w[2] >> 2) & lo2) << 4)),
                                    static_cast<int>((w[0] & lo4) | ((w[2] & lo2) << 4)));
    return _mm_sub_epi8(u, _mm_set1_epi8(32));
}

// The 16 signed byte scales of a super-block as words, ordered for per-chunk selection in
// 256-bit kernels: the low 128-bit lane holds the scales of even 16-weight groups
// (0, 2, .., 14), the high lane those of odd groups. The 32 weights 32c..32c+31 then take
// their scales (groups 2c, 2c+1) with one in-lane byte shuffle by `pair_selector(c)`.
QINFER_TARGET_AVX2 inline __m256i scales_even_odd(__m128i s8) noexcept {
    const __m128i even_odd = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
    return _mm256_cvtepi8_epi16(_mm_shuffle_epi8(s8, even_odd));
}

QINFER_TARGET_AVX2 inline __m256i pair_selector(int c) noexcept {
    return _mm256_set1_epi16(static_cast<short>(((2 * c + 1) << 8) | (2 * c)));
}

// AVX-512 counterpart: the 16 scales as words, lane i of the zmm holding the scales of
// groups i, 4 + i, 8 + i, 12 + i. The 64 weights 64k..64k+63 (groups 4k..4k+3, one per
// 128-bit lane of a maddubs result) take their scales with one byte shuffle by
// `quad_selector(k)`.
QINFER_TARGET_AVX512 inline __m512i scales_by_lane(__m128i s8) noexcept {
    const __m512i words = _mm512_castsi256_si512(_mm256_cvtepi8_epi16(s8));
    const __m512i idx = _mm512_set_epi16(0, 0, 0, 0, 15, 11, 7, 3, 0, 0, 0, 0, 14, 10, 6, 2,
                                         0, 0, 0, 0, 13, 9, 5, 1, 0, 0, 0, 0, 12, 8, 4, 0);
    return _mm512_permutexvar_epi16(idx, words);
}

QINFER_TARGET_AVX512 inline __m512i quad_selector(int k) noexcept {
    return _mm512_set1_epi16(static_cast<short>(((2 * k + 1) << 8) | (2 * k)));
}

// A zmm of words (bytes) `lo` in its low 256-bit half and `hi` in its high half: per-half
// shift counts and masks.
QINFER_TARGET_AVX512 inline __m512i halves16(short lo, short hi) noexcept {
    return _mm512_inserti64x4(_mm512_set1_epi16(lo), _mm256_set1_epi16(hi), 1);
}

QINFER_TARGET_AVX512 inline __m512i halves8(int lo, int hi) noexcept {
    return _mm512_inserti64x4(_mm512_set1_epi8(static_cast<char>(lo)), _mm256_set1_epi8(static_cast<char>(hi)), 1);
}

// Truth table of (x & m) | y for _mm512_ternarylogic_epi32(x, y, m): the operands' own
// tables are 0xF0, 0xCC and 0xAA.
inline constexpr int ternary_or_masked = (0xF0 & 0xAA) | 0xCC;
#endif

}  // namespace detail::ksym
QINFER_NAMESPACE_END
