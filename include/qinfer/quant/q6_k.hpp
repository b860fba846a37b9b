// qinfer/quant/q6_k.hpp — Q6_K: 6-bit weights, 16 signed 8-bit scales per 256.
//
// Layout (210 bytes, identical to ggml's block_q6_K):
//   ql[128]     low 4 bits of the quants
//   qh[64]      high 2 bits of the quants
//   scales[16]  signed scale of each group of 16 weights
//   d           fp16 super-block scale
// w[e] = d * scales[e / 16] * (q[e] - 32), q in 0..63. The super-block is two halves of
// 128 weights; in half h, weight 128h + 32k + l (k = 0..3, l = 0..31) takes its low nibble
// from ql[64h + l + 32 * (k & 1)] (low nibble for k < 2, high nibble for k >= 2) and its top
// two bits from bits 2k, 2k+1 of qh[32h + l].
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

struct block_q6_K {
    std::uint8_t ql[128];       // low nibbles, see above
    std::uint8_t qh[64];        // high bit pairs, see above
    std::int8_t scales[16];     // per-16 scales
    fp16 d;                     // super-block scale
};
static_assert(sizeof(block_q6_K) == 210);

template <> struct block_traits<block_q6_K> {
    static constexpr type_id id = type_id::q6_K;
    static constexpr int block_size = 256;
    using dot_operand = block_q8_K;
};

namespace detail::q6k {

// The 256 signed levels (q - 32) of a block, in weight order.
inline void levels(const block_q6_K& b, std::int8_t* out) noexcept {
    for (int h = 0; h < 2; ++h) {
        const std::uint8_t* ql = b.ql + 64 * h;
        const std::uint8_t* qh = b.qh + 32 * h;
        std::int8_t* o = out + 128 * h;
        for (int l = 0; l < 32; ++l) {
            o[l] = static_cast<std::int8_t>(((ql[l] & 0x0f) | ((qh[l] & 0x03) << 4)) - 32);
            o[l + 32] = static_cast<std::int8_t>(((ql[l + 32] & 0x0f) | ((qh[l] & 0x0c) << 2)) - 32);
            o[l + 64] = static_cast<std::int8_t>(((ql[l] >> 4) | (qh[l] & 0x30)) - 32);
            o[l + 96] = static_cast<std::int8_t>(((ql[l + 32] >> 4) | ((qh[l] & 0xc0) >> 2)) - 32);
        }
    }
}

}  // namespace detail::q6k

// Reference quantization (== ggml's quantize_row_q6_K_ref, which ggml_quantize_chunk runs
// without an importance matrix): fit each group of 16 with make_qx_quants (weights x^2),
// quantize the 16 group scales to int8 against the largest (which maps to -128), then
// requantize every weight with the scale it will be decoded with.
//
// With an importance matrix (ggml_quantize_chunk's imatrix, ggml's quantize_row_q6_K_impl):
// importance[j] is the importance of weight j (n values, one per column of the row) and
// the group fits use it as their weights instead of x^2; null is the plain path.
inline void quantize_row(const float* QINFER_RESTRICT x, block_q6_K* QINFER_RESTRICT y, std::int64_t n,
                         const float* QINFER_RESTRICT importance) noexcept {
    std::int8_t L[256];
    float scales[16];
    for (std::int64_t i = 0; i < n / 256; ++i, x += 256) {
        block_q6_K& b = y[i];
        float max_scale = 0, max_abs_scale = 0;
        for (int g = 0; g < 16; ++g) {
            scales[g] = detail::ksym::make_qx_quants(16, 32, x + 16 * g, L + 16 * g,
                                                      importance ? importance + 256 * i + 16 * g : nullptr);
            const float abs_scale = std::fabs(scales[g]);
            if (abs_scale > max_abs_scale) {
                max_abs_scale = abs_scale;
                max_scale = scales[g];
            }
        }
        if (max_abs_scale < detail::ksym::group_eps) {
            std::memset(&b, 0, sizeof(b));
            continue;
        }
        const float iscale = -128.f / max_scale;
        b.d = to_fp16(1 / iscale);
        for (int g = 0; g < 16; ++g)
            b.scales[g] = static_cast<std::int8_t>(std::min(127, detail::nearest_int(iscale * scales[g])));
        const float d = to_float(b.d);
        for (int g = 0; g < 16; ++g) {
            const float dg = d * b.scales[g];
            if (!dg) continue;  // keep the fit's levels
            for (int j = 0; j < 16; ++j) {
                const int l = std::clamp(detail::nearest_int(x[16 * g + j] / dg), -32, 31);
                L[16 * g + j] = static_cast<std::int8_t>(l + 32);
            }
        }
        for (int h = 0; h < 2; ++h) {
            const std::int8_t* Lh = L + 128 * h;
            for (int l = 0; l < 32; ++l) {
                b.ql[64 * h + l] = static_cast<std::uint8_t>((Lh[l] & 0x0f) | ((Lh[l + 64] & 0x0f) << 4));
                b.ql[64 * h + l + 32] = static_cast<std::uint8_t>((Lh[l + 32] & 0x0f) | ((Lh[l + 96] & 0x0f) << 4));
                b.qh[32 * h + l] = static_cast<std::uint8_t>((Lh[l] >> 4) | ((Lh[l + 32] >> 4) << 2) |
                                                             ((Lh[l + 64] >> 4) << 4) | ((Lh[l + 96] >> 4) << 6));
            }
        }
    }
}

inline void quantize_row(const float* QINFER_RESTRICT x, block_q6_K* QINFER_RESTRICT y, std::int64_t n) noexcept {
    quantize_row(x, y, n, nullptr);
}

namespace detail::scalar {

// w = (d * scale) * (q - 32), the two products rounded in ggml's order.
inline void dequantize_row(const block_q6_K* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    std::int8_t lv[256];
    for (std::int64_t i = 0; i < n / 256; ++i) {
        q6k::levels(x[i], lv);
        const float d = to_float(x[i].d);
        for (int e = 0; e < 256; ++e) y[i * 256 + e] = d * x[i].scales[e / 16] * lv[e];
    }
}

// Same operation order as ggml's generic vec_dot_q6_K_q8_K: exact integer sums in eight
// lanes (lane l collects the weights e with e % 8 == l), one float multiply-add per lane
// and block, the eight lane totals added in order at the end.
inline float dot(const block_q6_K* w, const block_q8_K* a, std::int64_t n) noexcept {
    float sums[8] = {};
    std::int8_t lv[256];
    for (std::int64_t i = 0; i < n / 256; ++i) {
        q6k::levels(w[i], lv);
        const std::int8_t* q8 = a[i].qs;
        std::int32_t lanes[8] = {};
        for (int g = 0; g < 16; ++g) {
            const int sc = w[i].scales[g];
            for (int l = 0; l < 8; ++l) lanes[l] += sc * (lv[16 * g + l] * q8[16 * g + l]);
            for (int l = 0; l < 8; ++l) lanes[l] += sc * (lv[16 * g + 8 + l] * q8[16 * g + 8 + l]);
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
inline void dequantize_row(const block_q6_K* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    alignas(64) std::int32_t q[256];
    std::int8_t lv[256];
    for (std::int64_t i = 0; i < n / 256; ++i) {
        q6k::levels(x[i], lv);
        for (int e = 0; e < 256; ++e) q[e] = lv[e];
        const float d = to_float(x[i].d);
        for (int g = 0; g < 16; ++g) scale_ints<Arch, 16>(q + 16 * g, d * x[i].scales[g], y + i * 256 + 16 * g);
    }
}

}  // namespace detail::simd

#if QINFER_X86_DISPATCH
namespace detail::avx2 {

// Per 128 weights: the 6-bit quants (0..63) are assembled from nibbles and high bit pairs,
// maddubs multiplies them with the activations into int16 pair sums (<= 2 * 63 * 128, no
// saturation), madd weights each 16-group by its scale into int32 lanes. The -32 offset is
// taken out once per block as 32 * sum(scale * bsum) from Q8_K's group sums.
QINFER_TARGET_AVX2 inline float dot(const block_q6_K* w, const block_q8_K* a, std::int64_t n) noexcept {
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const __m256i bits45 = _mm256_set1_epi8(0x30);
    __m256 acc = _mm256_setzero_ps();
    for (std::int64_t i = 0; i < n / 256; ++i) {
        const float d = x86::half(w[i].d) * a[i].d;
        const __m128i s8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[i].scales));
        const __m256i sc = ksym::scales_even_odd(s8);
        const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].bsums));
        const __m256i offset = _mm256_madd_epi16(bsums, _mm256_cvtepi8_epi16(s8));
        const std::int8_t* q8 = a[i].qs;
        __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
        for (int h = 0; h < 2; ++h) {
            const __m256i l0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].ql + 64 * h));
            const __m256i l1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].ql + 64 * h + 32));
            const __m256i hb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].qh + 32 * h));
            const __m256i q0 = _mm256_or_si256(_mm256_and_si256(l0, low4), _mm256_and_si256(_mm256_slli_epi16(hb, 4), bits45));
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(l1, low4), _mm256_and_si256(_mm256_slli_epi16(hb, 2), bits45));
            const __m256i q2 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low4), _mm256_and_si256(hb, bits45));
            const __m256i q3 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low4),
                                               _mm256_and_si256(_mm256_srli_epi16(hb, 2), bits45));
            const __m256i p0 = _mm256_maddubs_epi16(q0, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 128 * h)));
            const __m256i p1 = _mm256_maddubs_epi16(q1, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 128 * h + 32)));
            const __m256i p2 = _mm256_maddubs_epi16(q2, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 128 * h + 64)));
            const __m256i p3 = _mm256_maddubs_epi16(q3, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 128 * h + 96)));
            s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(p0, _mm256_shuffle_epi8(sc, ksym::pair_selector(4 * h + 0))));
            s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(p1, _mm256_shuffle_epi8(sc, ksym::pair_selector(4 * h + 1))));
            s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(p2, _mm256_shuffle_epi8(sc, ksym::pair_selector(4 * h + 2))));
            s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(p3, _mm256_shuffle_epi8(sc, ksym::pair_selector(4 * h + 3))));
        }
        const __m256i sumi = _mm256_sub_epi32(_mm256_add_epi32(s0, s1), _mm256_slli_epi32(offset, 5));
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

// R weight rows against C activation rows, y[c * ldy + r]. Per 128 weights, two zmm of 64
// quants: the 64 low-nibble bytes ql[64h..64h+63] give the nibbles of weights 0..63
// (masked) and 64..127 (shifted), in order. qh[32h..] is broadcast to both 256-bit halves;
// masking each half to its bit pair and shifting it by a per-half count (vpsllvw /
// vpsrlvw) puts the pair at bits 4..5, where one ternary-logic op merges it with the
// nibble. maddubs gives int16 pair sums, and VNNI's dpwssd weights each 16-group (a 128-bit
// lane) by its scale and accumulates. The -32 offset enters as the starting value
// -32 * (scales . bsums). Each row's quants are unpacked once for all C activation rows;
// the float work per cell is one FMA per block, so every tile shape gives the bits of `dot`.
template <int R, int C>
QINFER_TARGET_AVX512 inline void tile(const block_q6_K* w, std::int64_t ldw, const block_q8_K* a, std::int64_t lda,
                                      std::int64_t n, float* y, std::int64_t ldy) noexcept {
    if constexpr (C > 2) {
        tile<R, 2>(w, ldw, a, lda, n, y, ldy);
        tile<R, C - 2>(w, ldw, a + 2 * lda, lda, n, y + 2 * ldy, ldy);
    } else {
        const __m512i low4 = _mm512_set1_epi8(0x0f);
        // qh bits 0-1 (weights 0..31, low half) and 2-3 (weights 32..63, high half) -> bits 4-5
        const __m512i mask_a = ksym::halves8(0x03, 0x0c);
        const __m512i shl_a = ksym::halves16(4, 2);
        // qh bits 4-5 (weights 64..95) and 6-7 (weights 96..127) -> bits 4-5
        const __m512i mask_b = ksym::halves8(0x30, 0xc0);
        const __m512i shr_b = ksym::halves16(0, 2);
        constexpr int or_masked = ksym::ternary_or_masked;  // (x & m) | y
        __m512 acc[R][C];
        QINFER_UNROLL for (int r = 0; r < R; ++r)
            QINFER_UNROLL for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
        for (std::int64_t i = 0; i < n / 256; ++i) {
            __m512i sc[R], sumi[R][C];
            QINFER_UNROLL for (int r = 0; r < R; ++r) {
                const __m128i s8 = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[r * ldw + i].scales));
                sc[r] = ksym::scales_by_lane(s8);
                QINFER_UNROLL for (int c = 0; c < C; ++c) {
                    const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[c * lda + i].bsums));
                    const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(bsums, _mm256_cvtepi8_epi16(s8)), 5);
                    sumi[r][c] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_zextsi256_si512(offset));
                }
            }
            QINFER_UNROLL for (int h = 0; h < 2; ++h) {
                __m512i q8a[C], q8b[C];
                QINFER_UNROLL for (int c = 0; c < C; ++c) {
                    q8a[c] = _mm512_loadu_si512(a[c * lda + i].qs + 128 * h);
                    q8b[c] = _mm512_loadu_si512(a[c * lda + i].qs + 128 * h + 64);
                }
                QINFER_UNROLL for (int r = 0; r < R; ++r) {
                    const block_q6_K& b = w[r * ldw + i];
                    const __m512i lo = _mm512_loadu_si512(b.ql + 64 * h);
                    const __m512i hb = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h)));
                    const __m512i ha = _mm512_sllv_epi16(_mm512_and_si512(hb, mask_a), shl_a);
                    const __m512i hbb = _mm512_srlv_epi16(_mm512_and_si512(hb, mask_b), shr_b);
                    const __m512i qa = _mm512_ternarylogic_epi32(lo, ha, low4, or_masked);
                    const __m512i qb = _mm512_ternarylogic_epi32(_mm512_srli_epi16(lo, 4), hbb, low4, or_masked);
                    const __m512i sa = _mm512_shuffle_epi8(sc[r], ksym::quad_selector(2 * h));
                    const __m512i sb = _mm512_shuffle_epi8(sc[r], ksym::quad_selector(2 * h + 1));
                    QINFER_UNROLL for (int c = 0; c < C; ++c) {
                        sumi[r][c] = _mm512_dpwssd_epi32(sumi[r][c], _mm512_maddubs_epi16(qa, q8a[c]), sa);
                        sumi[r][c] = _mm512_dpwssd_epi32(sumi[r][c], _mm512_maddubs_epi16(qb, q8b[c]), sb);
                    }
                }
            }
            QINFER_UNROLL for (int r = 0; r < R; ++r)
                QINFER_UNROLL for (int c = 0; c < C; ++c) {
                    const float d = x86::half(w[r * ldw + i].d) * a[c * lda + i].d;
                    acc[r][c] = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(sumi[r][c]), acc[r][c]);
                }
        }
        QINFER_UNROLL for (int r = 0; r < R; ++r)
            QINFER_UNROLL for (int c = 0; c < C; ++c) y[c * ldy + r] = x86::hsum(acc[r][c]);
    }
}

QINFER_TARGET_AVX512 inline float dot(const block_q6_K* w, const block_q8_K* a, std::int64_t n) noexcept {
    float y;
    tile<1, 1>(w, 0, a, 0, n, &y, 0);
    return y;
}

}  // namespace detail::avx512
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

inline void dequantize_row(const block_q6_K* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    detail::simd::dequantize_row(x, y, n);
}

// Dot product of n weights with n activations quantized by `quantize_activations` (Q8_K).
inline float dot(const block_q6_K* w, const block_q8_K* a, std::int64_t n) noexcept {
#if QINFER_X86_DISPATCH
    switch (active_isa()) {
    case isa::avx512: return detail::avx512::dot(w, a, n);
    case isa::avx2: return detail::avx2::dot(w, a, n);
    default: break;
    }
#endif
    return detail::scalar::dot(w, a, n);
}

// R weight rows against C activation rows: y[c * ldy + r] = dot(w + r * ldw, a + c * lda, n),
// bit for bit, with each row's quants unpacked once for all C (prefill).
template <int R, int C>
inline void dot_tile(const block_q6_K* w, std::int64_t ldw, const block_q8_K* a, std::int64_t lda, std::int64_t n,
                     float* y, std::int64_t ldy) noexcept {
#if QINFER_X86_DISPATCH
    if (active_isa() == isa::avx512) return detail::avx512::tile<R, C>(w, ldw, a, lda, n, y, ldy);
#endif
    detail::dot_tile_by_dots<R, C>(w, ldw, a, lda, n, y, ldy);
}

QINFER_NAMESPACE_END
