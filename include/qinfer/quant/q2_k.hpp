// qinfer/quant/q2_k.hpp — Q2_K: 2-bit weights in super-blocks of 256, with a 4-bit scale
// and a 4-bit minimum per 16-weight sub-block.
//
// Layout (84 bytes, identical to ggml's block_q2_K):
//   scales[16] sub-block j: scale in the low nibble, min in the high nibble
//   qs[64]     2-bit quants: byte 32*c + l holds, in bits 2s..2s+1, weight 128*c + 32*s + l
//              (c = 0..1, s = 0..3, l = 0..31); weight e belongs to sub-block e / 16
//   d, dmin    fp16 super-block scales for the 4-bit scales and for the 4-bit mins
// Weight e of sub-block j: w = (d * (scales[j] & 15)) * q - (dmin * (scales[j] >> 4)), q in 0..3.
// Dot products take Q8_K activations; the mins fold into one multiply with Q8_K's bsums.
#pragma once

#include <cmath>
#include <cstdint>

#include "../core/cpu.hpp"
#include "../core/fp16.hpp"
#include "block_traits.hpp"
#include "detail/k_quants_min.hpp"
#include "detail/rounding.hpp"
#include "detail/simd.hpp"
#include "detail/x86.hpp"
#include "q8_k.hpp"

QINFER_NAMESPACE_BEGIN

struct block_q2_K {
    std::uint8_t scales[16];    // 4-bit scale (low) and min (high) per sub-block
    std::uint8_t qs[64];        // 2-bit quants, see above
    fp16 d;                     // scale of the sub-block scales
    fp16 dmin;                  // scale of the sub-block mins
};
static_assert(sizeof(block_q2_K) == 84);

template <> struct block_traits<block_q2_K> {
    static constexpr type_id id = type_id::q2_K;
    static constexpr int block_size = 256;
    using dot_operand = block_q8_K;
};

// Reference quantization (== ggml's quantize_row_q2_K_ref, i.e. ggml_quantize_chunk without
// an importance matrix): fit scale and min per 16 weights (weighted by |x|, absolute
// error), quantize both to 4 bits against the largest, requantize the weights with what
// will be decoded. n must be a multiple of 256.
inline void quantize_row(const float* QINFER_RESTRICT x, block_q2_K* QINFER_RESTRICT y, std::int64_t n) noexcept {
    using detail::nearest_int;
    std::uint8_t L[256], tmp[16];
    float w[16], scales[16], mins[16];
    for (std::int64_t i = 0; i < n / 256; ++i, x += 256) {
        block_q2_K& b = y[i];
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; ++j) {
            for (int l = 0; l < 16; ++l) w[l] = std::fabs(x[16 * j + l]);
            scales[j] = detail::kmin::make_qkx2_quants(16, x + 16 * j, w, L + 16 * j, &mins[j], tmp, detail::kmin::q2_fit);
            if (scales[j] > max_scale) max_scale = scales[j];
            if (mins[j] > max_min) max_min = mins[j];
        }
        if (max_scale > 0) {
            const float inv = 15.f / max_scale;
            for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<std::uint8_t>(nearest_int(inv * scales[j]));
            b.d = to_fp16(max_scale / 15.f);
        } else {
            for (int j = 0; j < 16; ++j) b.scales[j] = 0;
            b.d = to_fp16(0.f);
        }
        if (max_min > 0) {
            const float inv = 15.f / max_min;
            for (int j = 0; j < 16; ++j)
                b.scales[j] = static_cast<std::uint8_t>(b.scales[j] | (static_cast<unsigned>(nearest_int(inv * mins[j])) << 4));
            b.dmin = to_fp16(max_min / 15.f);
        } else {
            b.dmin = to_fp16(0.f);
        }
        const float fd = to_float(b.d), fm = to_float(b.dmin);
        for (int j = 0; j < 16; ++j) {
            const float dj = fd * (b.scales[j] & 0x0f);
            if (dj == 0.0f) continue;  // keep the fit's quants
            const float mj = fm * (b.scales[j] >> 4);
            for (int l = 0; l < 16; ++l) {
                const int q = nearest_int((x[16 * j + l] + mj) / dj);
                L[16 * j + l] = static_cast<std::uint8_t>(q < 0 ? 0 : q > 3 ? 3 : q);
            }
        }
        for (int c = 0; c < 2; ++c)
            for (int l = 0; l < 32; ++l) {
                const std::uint8_t* e = L + 128 * c + l;
                b.qs[32 * c + l] = static_cast<std::uint8_t>(e[0] | (e[32] << 2) | (e[64] << 4) | (e[96] << 6));
            }
    }
}

// With an importance matrix (ggml's quantize_row_q2_K_impl): importance[j] is the importance
// of weight j (n values, one per column of the row). Scale and min of each group of 16 are
// fitted by make_qkx3_quants (squared error) under weights importance_j * sqrt(sigma2 + x_j^2),
// sigma2 the super-block's mean square; the 16 scales and 16 mins become 4-bit levels by
// make_qp_quants weighted by each group's total weight. A null importance is the plain path.
inline void quantize_row(const float* QINFER_RESTRICT x, block_q2_K* QINFER_RESTRICT y, std::int64_t n,
                         const float* QINFER_RESTRICT importance) noexcept {
    if (!importance) return quantize_row(x, y, n);
    using detail::nearest_int;
    std::uint8_t L[256], tmp[16], Ls[16], Lm[16];
    float w[16], sw[16], scales[16], mins[16];
    for (std::int64_t i = 0; i < n / 256; ++i, x += 256) {
        block_q2_K& b = y[i];
        const float sigma2 = detail::sum_of_squares(x, 256) / 256;
        for (int j = 0; j < 16; ++j) {
            detail::importance_weights(x + 16 * j, importance + 256 * i + 16 * j, sigma2, w, 16);
            float sumw = 0;
            for (int l = 0; l < 16; ++l) sumw += w[l];
            sw[j] = sumw;
            scales[j] = detail::kmin::make_qkx2_quants(16, x + 16 * j, w, L + 16 * j, &mins[j], tmp,
                                                       detail::kmin::weighted_fit(3));
        }
        b.d = to_fp16(detail::kmin::make_qp_quants(16, 15, scales, Ls, sw));
        b.dmin = to_fp16(detail::kmin::make_qp_quants(16, 15, mins, Lm, sw));
        for (int j = 0; j < 16; ++j) b.scales[j] = static_cast<std::uint8_t>(Ls[j] | (Lm[j] << 4));
        const float fd = to_float(b.d), fm = to_float(b.dmin);
        for (int j = 0; j < 16; ++j) {
            const float dj = fd * (b.scales[j] & 0x0f);
            if (dj == 0.0f) continue;  // keep the fit's quants
            const float mj = fm * (b.scales[j] >> 4);
            for (int l = 0; l < 16; ++l) {
                const int q = nearest_int((x[16 * j + l] + mj) / dj);
                L[16 * j + l] = static_cast<std::uint8_t>(q < 0 ? 0 : q > 3 ? 3 : q);
            }
        }
        for (int c = 0; c < 2; ++c)
            for (int l = 0; l < 32; ++l) {
                const std::uint8_t* e = L + 128 * c + l;
                b.qs[32 * c + l] = static_cast<std::uint8_t>(e[0] | (e[32] << 2) | (e[64] << 4) | (e[96] << 6));
            }
    }
}

namespace detail::scalar {

inline void dequantize_row(const block_q2_K* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 256; ++i) {
        const float d = to_float(x[i].d), dmin = to_float(x[i].dmin);
        for (int j = 0; j < 16; ++j) {  // sub-block j: elements 16j .. 16j+15
            const int c = j / 8, s = (j / 2) % 4, half = j % 2;
            const std::uint8_t* q = x[i].qs + 32 * c + 16 * half;
            const float dj = d * (x[i].scales[j] & 0x0f), mj = dmin * (x[i].scales[j] >> 4);
            for (int l = 0; l < 16; ++l) *y++ = dj * ((q[l] >> (2 * s)) & 3) - mj;
        }
    }
}

// Same operation order as ggml's generic vec_dot_q2_K_q8_K: exact integer sums for the
// scaled quants and for the mins, combined per block as d * isum - dmin * msum.
inline float dot(const block_q2_K* w, const block_q8_K* a, std::int64_t n) noexcept {
    float sumf = 0;
    for (std::int64_t i = 0; i < n / 256; ++i) {
        const std::uint8_t* sc = w[i].scales;
        int msum = 0;
        for (int j = 0; j < 16; ++j) msum += a[i].bsums[j] * (sc[j] >> 4);
        const float dall = a[i].d * to_float(w[i].d);
        const float dmin = a[i].d * to_float(w[i].dmin);
        int isum = 0;
        for (int j = 0; j < 16; ++j) {
            const int c = j / 8, s = (j / 2) % 4, half = j % 2;
            const std::uint8_t* q = w[i].qs + 32 * c + 16 * half;
            const std::int8_t* q8 = a[i].qs + 16 * j;
            int part = 0;
            for (int l = 0; l < 16; ++l) part += q8[l] * ((q[l] >> (2 * s)) & 3);
            isum += (sc[j] & 0x0f) * part;
        }
        sumf += dall * isum - dmin * msum;
    }
    return sumf;
}

}  // namespace detail::scalar

namespace detail::simd {

template <class Arch = default_arch>
inline void dequantize_row(const block_q2_K* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    alignas(64) std::int32_t q[16];
    for (std::int64_t i = 0; i < n / 256; ++i) {
        const float d = to_float(x[i].d), dmin = to_float(x[i].dmin);
        for (int j = 0; j < 16; ++j, y += 16) {
            const int c = j / 8, s = (j / 2) % 4, half = j % 2;
            const std::uint8_t* qs = x[i].qs + 32 * c + 16 * half;
            for (int l = 0; l < 16; ++l) q[l] = (qs[l] >> (2 * s)) & 3;
            // q*dj + (-mj) == q*dj - mj
            scale_ints_add<Arch, 16>(q, d * (x[i].scales[j] & 0x0f), -(dmin * (x[i].scales[j] >> 4)), y);
        }
    }
}

}  // namespace detail::simd

#if QINFER_X86_DISPATCH
namespace detail::avx2 {

// Per 32 weights (one 2-bit plane of 32 bytes = sub-blocks 2m, 2m+1 in the two 128-bit
// lanes): maddubs quants x activations into int16 pairs, madd by the lane's 4-bit scale.
// The mins are one madd of the 16 4-bit mins with Q8_K's 16 bsums.
QINFER_TARGET_AVX2 inline float dot(const block_q2_K* w, const block_q8_K* a, std::int64_t n) noexcept {
    const __m256i three = _mm256_set1_epi8(3);
    const __m128i low4 = _mm_set1_epi8(0x0f);
    // scale bytes of sub-blocks 8c + {0,0,2,2,4,4,6,6} then 8c + {1,1,3,3,5,5,7,7}: widened to
    // words, dword s of the low lane is sub-block 8c+2s and of the high lane 8c+2s+1
    const __m128i pick0 = _mm_set_epi8(7, 7, 5, 5, 3, 3, 1, 1, 6, 6, 4, 4, 2, 2, 0, 0);
    const __m128i pick1 = _mm_add_epi8(pick0, _mm_set1_epi8(8));
    __m256 acc = _mm256_setzero_ps(), acc_m = _mm256_setzero_ps();
    for (std::int64_t i = 0; i < n / 256; ++i) {
        const __m128 dd = kmin::d_dmin_times(&w[i].d, a[i].d);  // [d, dmin] * a.d
        const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[i].scales));
        const __m128i sc4 = _mm_and_si128(raw, low4);
        const __m128i mn4 = _mm_and_si128(_mm_srli_epi16(raw, 4), low4);
        const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].bsums));
        const __m256 vdmin = _mm256_broadcastss_ps(_mm_movehdup_ps(dd));
        acc_m = _mm256_fmadd_ps(vdmin, _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_cvtepu8_epi16(mn4), bs)), acc_m);

        const std::int8_t* q8 = a[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        for (int c = 0; c < 2; ++c) {
            const __m256i pairs = _mm256_cvtepu8_epi16(_mm_shuffle_epi8(sc4, c == 0 ? pick0 : pick1));
            const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].qs + 32 * c));
            auto plane = [&](int s, __m256i scale) QINFER_TARGET_AVX2 {
                const __m256i q = _mm256_and_si256(s == 0 ? bits : _mm256_srli_epi16(bits, 2 * s), three);
                const __m256i p = _mm256_maddubs_epi16(q, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 128 * c + 32 * s)));
                return _mm256_madd_epi16(p, scale);
            };
            const __m256i s01 = _mm256_add_epi32(plane(0, _mm256_shuffle_epi32(pairs, 0x00)), plane(1, _mm256_shuffle_epi32(pairs, 0x55)));
            const __m256i s23 = _mm256_add_epi32(plane(2, _mm256_shuffle_epi32(pairs, 0xaa)), plane(3, _mm256_shuffle_epi32(pairs, 0xff)));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(s01, s23));
        }
        acc = _mm256_fmadd_ps(_mm256_broadcastss_ps(dd), _mm256_cvtepi32_ps(sumi), acc);
    }
    return x86::hsum(acc) - x86::hsum(acc_m);
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

// 64 weights per step: one 32-byte plane group broadcast to both zmm halves and shifted
// by a different amount per half gives two 2-bit planes = 64 contiguous weights, i.e. four
// 16-weight sub-blocks, one per 128-bit lane. maddubs + VNNI dpwssd with a scale vector
// holding each lane's 4-bit scale (one byte shuffle per step).
QINFER_TARGET_AVX512 inline float dot(const block_q2_K* w, const block_q8_K* a, std::int64_t n) noexcept {
    const __m512i three = _mm512_set1_epi8(3);
    const __m128i low4 = _mm_set1_epi8(0x0f);
    const __m512i shift01 = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(2), 1);
    const __m512i shift23 = _mm512_inserti64x4(_mm512_set1_epi16(4), _mm256_set1_epi16(6), 1);
    // scale byte 4t + lane as a zero-extended word in each word of 128-bit lane `lane`
    auto selector = [&](int t) QINFER_TARGET_AVX512 {
        auto lane = [&](int b) QINFER_TARGET_AVX512 { return _mm_set1_epi16(short(0x8000 | b)); };
        const __m256i lo = _mm256_set_m128i(lane(4 * t + 1), lane(4 * t));
        const __m256i hi = _mm256_set_m128i(lane(4 * t + 3), lane(4 * t + 2));
        return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
    };
    __m512 acc = _mm512_setzero_ps();
    __m256 acc_m = _mm256_setzero_ps();
    for (std::int64_t i = 0; i < n / 256; ++i) {
        const __m128 dd = kmin::d_dmin_times(&w[i].d, a[i].d);  // [d, dmin] * a.d
        const __m128i raw = _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[i].scales));
        const __m128i mn4 = _mm_and_si128(_mm_srli_epi16(raw, 4), low4);
        const __m256i bs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].bsums));
        const __m256 vdmin = _mm256_permutexvar_ps(_mm256_set1_epi32(1), _mm256_castps128_ps256(dd));
        acc_m = _mm256_fmadd_ps(vdmin, _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_cvtepu8_epi16(mn4), bs)), acc_m);

        const __m512i sc = _mm512_broadcast_i32x4(_mm_and_si128(raw, low4));
        const std::int8_t* q8 = a[i].qs;
        __m512i sumi = _mm512_setzero_si512();
        for (int c = 0; c < 2; ++c) {
            const __m512i bits = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].qs + 32 * c)));
            const __m512i q01 = _mm512_and_si512(_mm512_srlv_epi16(bits, shift01), three);
            const __m512i q23 = _mm512_and_si512(_mm512_srlv_epi16(bits, shift23), three);
            const __m512i p01 = _mm512_maddubs_epi16(q01, _mm512_loadu_si512(q8 + 128 * c));
            const __m512i p23 = _mm512_maddubs_epi16(q23, _mm512_loadu_si512(q8 + 128 * c + 64));
            sumi = _mm512_dpwssd_epi32(sumi, p01, _mm512_shuffle_epi8(sc, selector(2 * c)));
            sumi = _mm512_dpwssd_epi32(sumi, p23, _mm512_shuffle_epi8(sc, selector(2 * c + 1)));
        }
        acc = _mm512_fmadd_ps(_mm512_broadcastss_ps(dd), _mm512_cvtepi32_ps(sumi), acc);
    }
    return x86::hsum(acc) - x86::hsum(acc_m);
}

}  // namespace detail::avx512
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

inline void dequantize_row(const block_q2_K* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    detail::simd::dequantize_row(x, y, n);
}

// Dot product of n weights with n activations quantized by `quantize_activations` (Q8_K).
inline float dot(const block_q2_K* w, const block_q8_K* a, std::int64_t n) noexcept {
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
