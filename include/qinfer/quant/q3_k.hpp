// qinfer/quant/q3_k.hpp — Q3_K: 3-bit weights, 16 six-bit scales per 256.
//
// Layout (110 bytes, identical to ggml's block_q3_K):
//   hmask[32]   high bits of the quants
//   qs[64]      low 2 bits of the quants
//   scales[12]  sixteen 6-bit scales, packed (see detail::ksym::pack_q3_scales)
//   d           fp16 super-block scale
// w[e] = d * (s[e / 16] - 32) * q[e] with q = lo + 4 * hi - 4 in -4..3, i.e. the stored high
// bit is *set* for the non-negative half (the level is lowered by 4 when it is clear).
// In half h of the super-block (128 weights), weight 128h + 32k + l (k = 0..3, l = 0..31)
// has its low bits at bits 2k..2k+1 of qs[32h + l] and its high bit at bit 4h + k of
// hmask[l].
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "../core/cpu.hpp"
#include "../core/fp16.hpp"
#include "block_traits.hpp"
#include "detail/k_quants_sym.hpp"
#include "detail/rounding.hpp"
#include "detail/simd.hpp"
#include "detail/x86.hpp"
#include "q8_k.hpp"

QINFER_NAMESPACE_BEGIN

struct block_q3_K {
    std::uint8_t hmask[32];     // high bits, see above
    std::uint8_t qs[64];        // low bit pairs, see above
    std::uint8_t scales[12];    // packed 6-bit scales
    fp16 d;                     // super-block scale
};
static_assert(sizeof(block_q3_K) == 110);

template <> struct block_traits<block_q3_K> {
    static constexpr type_id id = type_id::q3_K;
    static constexpr int block_size = 256;
    using dot_operand = block_q8_K;
};

namespace detail::q3k {

// The 256 signed levels (-4..3) of a block, in weight order.
inline void levels(const block_q3_K& b, std::int8_t* out) noexcept {
    for (int h = 0; h < 2; ++h) {
        for (int k = 0; k < 4; ++k) {
            const int shift = 2 * k, bit = 4 * h + k;
            std::int8_t* o = out + 128 * h + 32 * k;
            for (int l = 0; l < 32; ++l)
                o[l] = static_cast<std::int8_t>(((b.qs[32 * h + l] >> shift) & 3) - 4 + 4 * ((b.hmask[l] >> bit) & 1));
        }
    }
}

// The end of both quantization paths: requantize every weight with the group scale it will
// be decoded with (d * (s6 - 32); a zero scale keeps the fit's levels), then store the
// levels (L: level + 4) as high-bit mask and bit pairs.
inline void finish_block(const float* QINFER_RESTRICT x, const std::uint8_t s6[16], block_q3_K& b,
                         std::int8_t* QINFER_RESTRICT L) noexcept {
    const float d = to_float(b.d);
    for (int g = 0; g < 16; ++g) {
        const float dg = d * (s6[g] - 32);
        if (!dg) continue;  // keep the fit's levels
        for (int j = 0; j < 16; ++j) {
            const int l = std::clamp(detail::nearest_int(x[16 * g + j] / dg), -4, 3);
            L[16 * g + j] = static_cast<std::int8_t>(l + 4);
        }
    }

    std::memset(b.hmask, 0, sizeof(b.hmask));
    for (int e = 0; e < 256; ++e) {
        if (L[e] > 3) {
            b.hmask[e % 32] = static_cast<std::uint8_t>(b.hmask[e % 32] | (1u << (e / 32)));
            L[e] = static_cast<std::int8_t>(L[e] - 4);
        }
    }
    for (int h = 0; h < 2; ++h) {
        const std::int8_t* Lh = L + 128 * h;
        for (int l = 0; l < 32; ++l)
            b.qs[32 * h + l] = static_cast<std::uint8_t>(Lh[l] | (Lh[l + 32] << 2) | (Lh[l + 64] << 4) | (Lh[l + 96] << 6));
    }
}

}  // namespace detail::q3k

// Reference quantization (== ggml's quantize_row_q3_K_ref, which ggml_quantize_chunk runs
// without an importance matrix): fit each group of 16 with make_q3_quants, quantize the 16
// group scales to 6 bits against the largest (which maps to -32), then requantize every
// weight with the scale it will be decoded with.
inline void quantize_row(const float* QINFER_RESTRICT x, block_q3_K* QINFER_RESTRICT y, std::int64_t n) noexcept {
    std::int8_t L[256];
    float scales[16];
    for (std::int64_t i = 0; i < n / 256; ++i, x += 256) {
        block_q3_K& b = y[i];
        float max_scale = 0, amax = 0;
        for (int g = 0; g < 16; ++g) {
            scales[g] = detail::ksym::make_q3_quants(16, 4, x + 16 * g, L + 16 * g);
            const float a = std::fabs(scales[g]);
            if (a > amax) {
                amax = a;
                max_scale = scales[g];
            }
        }
        std::uint8_t s6[16] = {};
        if (max_scale != 0.0f) {
            const float iscale = -32.f / max_scale;
            for (int g = 0; g < 16; ++g)
                s6[g] = static_cast<std::uint8_t>(std::clamp(detail::nearest_int(iscale * scales[g]), -32, 31) + 32);
            b.d = to_fp16(1 / iscale);
        } else {
            b.d = to_fp16(0.f);
        }
        detail::ksym::pack_q3_scales(s6, b.scales);

        detail::q3k::finish_block(x, s6, b, L);
    }
}

// With an importance matrix (ggml's quantize_row_q3_K_impl): importance[j] is the importance
// of weight j (n values, one per column of the row). Each group of 16 is fitted by
// make_qx_quants under weights importance_j * sqrt(sigma2 + x_j^2) (sigma2 twice the
// super-block's mean square), and the 16 group scales by make_qx_quants to signed 6 bits
// weighted by each group's total weight. A null importance is the plain path above.
inline void quantize_row(const float* QINFER_RESTRICT x, block_q3_K* QINFER_RESTRICT y, std::int64_t n,
                         const float* QINFER_RESTRICT importance) noexcept {
    if (!importance) return quantize_row(x, y, n);
    std::int8_t L[256], Ls[16];
    float scales[16], sw[16], w[16];
    for (std::int64_t i = 0; i < n / 256; ++i, x += 256) {
        block_q3_K& b = y[i];
        const float sigma2 = 2 * detail::sum_of_squares(x, 256) / 256;
        for (int g = 0; g < 16; ++g) {
            detail::importance_weights(x + 16 * g, importance + 256 * i + 16 * g, sigma2, w, 16);
            float sumw = 0;
            for (int l = 0; l < 16; ++l) sumw += w[l];
            sw[g] = sumw;
            scales[g] = detail::ksym::make_qx_quants(16, 4, x + 16 * g, L + 16 * g, w);
        }
        const float d_block = detail::ksym::make_qx_quants(16, 32, scales, Ls, sw);
        std::uint8_t s6[16];
        for (int g = 0; g < 16; ++g) s6[g] = static_cast<std::uint8_t>(Ls[g]);
        detail::ksym::pack_q3_scales(s6, b.scales);
        b.d = to_fp16(d_block);
        detail::q3k::finish_block(x, s6, b, L);
    }
}

namespace detail::scalar {

// w = (d * (s - 32)) * q, the two products rounded in ggml's order.
inline void dequantize_row(const block_q3_K* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    std::int8_t s[16], lv[256];
    for (std::int64_t i = 0; i < n / 256; ++i) {
        ksym::unpack_q3_scales(x[i].scales, s);
        q3k::levels(x[i], lv);
        const float d = to_float(x[i].d);
        for (int g = 0; g < 16; ++g) {
            const float dg = d * s[g];
            for (int j = 0; j < 16; ++j) y[i * 256 + 16 * g + j] = dg * lv[16 * g + j];
        }
    }
}

// Same operation order as ggml's generic vec_dot_q3_K_q8_K: exact integer sums in eight
// lanes (lane l collects the weights e with e % 8 == l), one float multiply-add per lane
// and block, the eight lane totals added in order at the end.
inline float dot(const block_q3_K* w, const block_q8_K* a, std::int64_t n) noexcept {
    float sums[8] = {};
    std::int8_t s[16], lv[256];
    for (std::int64_t i = 0; i < n / 256; ++i) {
        ksym::unpack_q3_scales(w[i].scales, s);
        q3k::levels(w[i], lv);
        const std::int8_t* q8 = a[i].qs;
        std::int32_t lanes[8] = {};
        for (int g = 0; g < 16; ++g) {
            for (int l = 0; l < 8; ++l) lanes[l] += s[g] * (lv[16 * g + l] * q8[16 * g + l]);
            for (int l = 0; l < 8; ++l) lanes[l] += s[g] * (lv[16 * g + 8 + l] * q8[16 * g + 8 + l]);
        }
        const float d = to_float(w[i].d) * a[i].d;
        for (int l = 0; l < 8; ++l) sums[l] += d * static_cast<float>(lanes[l]);
    }
    float sum = 0;
    for (int l = 0; l < 8; ++l) sum += sums[l];
    return sum;
}

}  // namespace detail::scalar

namespace detail::simd {

template <class Arch = default_arch>
inline void dequantize_row(const block_q3_K* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    alignas(64) std::int32_t q[256];
    std::int8_t s[16], lv[256];
    for (std::int64_t i = 0; i < n / 256; ++i) {
        const block_q3_K& b = x[i];
        q3k::levels(b, lv);
        for (int e = 0; e < 256; ++e) q[e] = lv[e];
        ksym::unpack_q3_scales(b.scales, s);
        const float d = to_float(b.d);
        for (int g = 0; g < 16; ++g) scale_ints<Arch, 16>(q + 16 * g, d * s[g], y + i * 256 + 16 * g);
    }
}

}  // namespace detail::simd

#if QINFER_X86_DISPATCH
namespace detail::avx2 {

// The level is stored as u - 4 with u = lo | hi << 2 in 0..7: maddubs multiplies the
// unsigned u with the activations (int16 pair sums, no saturation), madd weights each
// 16-group by its scale into int32 lanes, and the -4 comes back once per block as
// 4 * sum(scale * bsum) from Q8_K's group sums.
QINFER_TARGET_AVX2 inline float dot(const block_q3_K* w, const block_q8_K* a, std::int64_t n) noexcept {
    const __m256i low2 = _mm256_set1_epi8(3);
    const __m256i bit2 = _mm256_set1_epi8(4);
    __m256 acc = _mm256_setzero_ps();
    for (std::int64_t i = 0; i < n / 256; ++i) {
        const float d = x86::half(w[i].d) * a[i].d;
        const __m128i s8 = ksym::unpack_q3_scales_sse(w[i].scales);
        const __m256i sc = ksym::scales_even_odd(s8);
        const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].bsums));
        const __m256i offset = _mm256_madd_epi16(bsums, _mm256_cvtepi8_epi16(s8));
        const __m256i hm = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].hmask));
        const std::int8_t* q8 = a[i].qs;
        // high bit c (chunk c = 32 weights) moved to bit 2
        const __m256i hbits[8] = {
            _mm256_and_si256(_mm256_slli_epi16(hm, 2), bit2), _mm256_and_si256(_mm256_slli_epi16(hm, 1), bit2),
            _mm256_and_si256(hm, bit2),                       _mm256_and_si256(_mm256_srli_epi16(hm, 1), bit2),
            _mm256_and_si256(_mm256_srli_epi16(hm, 2), bit2), _mm256_and_si256(_mm256_srli_epi16(hm, 3), bit2),
            _mm256_and_si256(_mm256_srli_epi16(hm, 4), bit2), _mm256_and_si256(_mm256_srli_epi16(hm, 5), bit2),
        };
        __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
            const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].qs + 32 * h));
            const __m256i u0 = _mm256_or_si256(_mm256_and_si256(lo, low2), hbits[4 * h + 0]);
            const __m256i u1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lo, 2), low2), hbits[4 * h + 1]);
            const __m256i u2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lo, 4), low2), hbits[4 * h + 2]);
            const __m256i u3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(lo, 6), low2), hbits[4 * h + 3]);
            const __m256i p0 = _mm256_maddubs_epi16(u0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 128 * h)));
            const __m256i p1 = _mm256_maddubs_epi16(u1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 128 * h + 32)));
            const __m256i p2 = _mm256_maddubs_epi16(u2, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 128 * h + 64)));
            const __m256i p3 = _mm256_maddubs_epi16(u3, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 128 * h + 96)));
            s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(p0, _mm256_shuffle_epi8(sc, ksym::pair_selector(4 * h + 0))));
            s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(p1, _mm256_shuffle_epi8(sc, ksym::pair_selector(4 * h + 1))));
            s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(p2, _mm256_shuffle_epi8(sc, ksym::pair_selector(4 * h + 2))));
            s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(p3, _mm256_shuffle_epi8(sc, ksym::pair_selector(4 * h + 3))));
        }
        const __m256i sumi = _mm256_sub_epi32(_mm256_add_epi32(s0, s1), _mm256_slli_epi32(offset, 2));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(sumi), acc);
    }
    return x86::hsum(acc);
}

}  // namespace detail::avx2

// GCC 12 reports its own _mm512_undefined_* placeholders as uninitialized when AVX-512
// intrinsics are inlined into a target("avx512...") function; the warning is spurious.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
namespace detail::avx512 {

// 64 weights (chunks c, c+1 of 32) per zmm: qs and hmask are broadcast to both 256-bit
// halves and shifted by a per-half count, so each half holds its chunk's low bit pair at
// bits 0..1 and its high bit at bit 2; one ternary-logic op assembles u = lo | hi << 2.
// maddubs + dpwssd apply the activations and the group scales as in the Q6_K kernel.
QINFER_TARGET_AVX512 inline float dot(const block_q3_K* w, const block_q8_K* a, std::int64_t n) noexcept {
    const __m512i low2 = _mm512_set1_epi8(3);
    constexpr int or_masked = ksym::ternary_or_masked;
    using ksym::halves16;
    using ksym::halves8;
    // low bit pairs of chunks (0,1) / (2,3) of a half: shift qs right by 2c
    const __m512i lo_shift01 = halves16(0, 2), lo_shift23 = halves16(4, 6);
    // high bit c: keep it alone in its byte, then move it to bit 2
    const __m512i hmask01 = halves8(1, 2), hmask23 = halves8(4, 8), hmask45 = halves8(16, 32),
                  hmask67 = halves8(64, 128);
    const __m512i hshl01 = halves16(2, 1), hshr23 = halves16(0, 1), hshr45 = halves16(2, 3), hshr67 = halves16(4, 5);
    __m512 acc = _mm512_setzero_ps();
    for (std::int64_t i = 0; i < n / 256; ++i) {
        const float d = x86::half(w[i].d) * a[i].d;
        const __m128i s8 = ksym::unpack_q3_scales_sse(w[i].scales);
        const __m512i sc = ksym::scales_by_lane(s8);
        const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].bsums));
        const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(bsums, _mm256_cvtepi8_epi16(s8)), 2);
        const __m512i hm = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].hmask)));
        const __m512i h01 = _mm512_sllv_epi16(_mm512_and_si512(hm, hmask01), hshl01);
        const __m512i h23 = _mm512_srlv_epi16(_mm512_and_si512(hm, hmask23), hshr23);
        const __m512i h45 = _mm512_srlv_epi16(_mm512_and_si512(hm, hmask45), hshr45);
        const __m512i h67 = _mm512_srlv_epi16(_mm512_and_si512(hm, hmask67), hshr67);
        const std::int8_t* q8 = a[i].qs;
        const __m512i q0 = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].qs)));
        const __m512i q1 = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].qs + 32)));
        const __m512i u0 = _mm512_ternarylogic_epi32(_mm512_srlv_epi16(q0, lo_shift01), h01, low2, or_masked);
        const __m512i u1 = _mm512_ternarylogic_epi32(_mm512_srlv_epi16(q0, lo_shift23), h23, low2, or_masked);
        const __m512i u2 = _mm512_ternarylogic_epi32(_mm512_srlv_epi16(q1, lo_shift01), h45, low2, or_masked);
        const __m512i u3 = _mm512_ternarylogic_epi32(_mm512_srlv_epi16(q1, lo_shift23), h67, low2, or_masked);
        const __m512i p0 = _mm512_maddubs_epi16(u0, _mm512_loadu_si512(q8));
        const __m512i p1 = _mm512_maddubs_epi16(u1, _mm512_loadu_si512(q8 + 64));
        const __m512i p2 = _mm512_maddubs_epi16(u2, _mm512_loadu_si512(q8 + 128));
        const __m512i p3 = _mm512_maddubs_epi16(u3, _mm512_loadu_si512(q8 + 192));
        __m512i s0 = _mm512_dpwssd_epi32(_mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), offset)), p0,
                                         _mm512_shuffle_epi8(sc, ksym::quad_selector(0)));
        __m512i s1 = _mm512_madd_epi16(p1, _mm512_shuffle_epi8(sc, ksym::quad_selector(1)));
        s0 = _mm512_dpwssd_epi32(s0, p2, _mm512_shuffle_epi8(sc, ksym::quad_selector(2)));
        s1 = _mm512_dpwssd_epi32(s1, p3, _mm512_shuffle_epi8(sc, ksym::quad_selector(3)));
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), acc);
    }
    return x86::hsum(acc);
}

}  // namespace detail::avx512
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

inline void dequantize_row(const block_q3_K* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    detail::simd::dequantize_row(x, y, n);
}

// Dot product of n weights with n activations quantized by `quantize_activations` (Q8_K).
inline float dot(const block_q3_K* w, const block_q8_K* a, std::int64_t n) noexcept {
#if QINFER_X86_DISPATCH
    switch (active_isa()) {
    case isa::avx512: return detail::avx512::dot(w, a, n);
    case isa::avx2: return detail::avx2::dot(w, a, n);
    default: break;
    }
#endif
    return detail::scalar::dot(w, a, n);
}

QINFER_NAMESPACE_END
