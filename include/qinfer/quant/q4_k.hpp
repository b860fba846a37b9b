// qinfer/quant/q4_k.hpp — Q4_K: 4-bit weights in super-blocks of 256, with a 6-bit scale
// and a 6-bit minimum per 32-weight sub-block.
//
// Layout (144 bytes, identical to ggml's block_q4_K):
//   d, dmin    fp16 super-block scales for the sub-block scales and for the sub-block mins
//   scales[12] 8 scales + 8 mins of 6 bits, packed as in detail/k_quants_min.hpp
//              (sub-blocks 0..3 in bytes 0..7 low bits; 4..7 in bytes 8..11 plus the top
//              two bits of bytes 0..7)
//   qs[128]    nibbles: byte 32*k + l holds weight l of sub-block 2k in its low nibble and
//              weight l of sub-block 2k+1 in its high nibble (k = 0..3, l = 0..31)
// Weight l of sub-block j: w = (d * sc[j]) * q - (dmin * m[j]), q in 0..15.
// Dot products take Q8_K activations; the mins fold into one multiply with Q8_K's bsums.
#pragma once

#include <cstdint>

#include "../core/cpu.hpp"
#include "../core/fp16.hpp"
#include "block_traits.hpp"
#include "detail/float_formats.hpp"
#include "detail/k_quants_min.hpp"
#include "detail/simd.hpp"
#include "detail/x86.hpp"
#include "q8_k.hpp"

QINFER_NAMESPACE_BEGIN

struct block_q4_K {
    fp16 d;                     // scale of the sub-block scales
    fp16 dmin;                  // scale of the sub-block mins
    std::uint8_t scales[12];    // 6-bit scales and mins, packed
    std::uint8_t qs[128];       // nibbles, see above
};
static_assert(sizeof(block_q4_K) == 144);

template <> struct block_traits<block_q4_K> {
    static constexpr type_id id = type_id::q4_K;
    static constexpr int block_size = 256;
    using dot_operand = block_q8_K;
};

// Reference quantization (== ggml's quantize_row_q4_K_ref, i.e. ggml_quantize_chunk without
// an importance matrix). n must be a multiple of 256.
inline void quantize_row(const float* QINFER_RESTRICT x, block_q4_K* QINFER_RESTRICT y, std::int64_t n) noexcept {
    std::uint8_t L[256];
    for (std::int64_t i = 0; i < n / 256; ++i, x += 256) {
        detail::kmin::quantize_superblock_6bit(x, detail::kmin::q4_fit, y[i].d, y[i].dmin, y[i].scales, L);
        for (int k = 0; k < 4; ++k)
            for (int l = 0; l < 32; ++l)
                y[i].qs[32 * k + l] = std::uint8_t(L[64 * k + l] | (L[64 * k + 32 + l] << 4));
    }
}

// With an importance matrix (ggml's quantize_row_q4_K_impl): importance[j] is the
// importance of weight j (n values, one per column of the row).
inline void quantize_row(const float* QINFER_RESTRICT x, block_q4_K* QINFER_RESTRICT y, std::int64_t n,
                         const float* QINFER_RESTRICT importance) noexcept {
    if (!importance) return quantize_row(x, y, n);
    std::uint8_t L[256];
    for (std::int64_t i = 0; i < n / 256; ++i, x += 256) {
        detail::kmin::quantize_superblock_6bit_weighted(x, importance + 256 * i, 15, false, y[i].d, y[i].dmin,
                                                        y[i].scales, L);
        for (int k = 0; k < 4; ++k)
            for (int l = 0; l < 32; ++l)
                y[i].qs[32 * k + l] = std::uint8_t(L[64 * k + l] | (L[64 * k + 32 + l] << 4));
    }
}

namespace detail::scalar {

inline void dequantize_row(const block_q4_K* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 256; ++i) {
        const float d = to_float(x[i].d), dmin = to_float(x[i].dmin);
        for (int k = 0; k < 4; ++k) {
            std::uint8_t sc, mn;
            kmin::scale_min(2 * k, x[i].scales, sc, mn);
            const float d0 = d * sc, m0 = dmin * mn;
            kmin::scale_min(2 * k + 1, x[i].scales, sc, mn);
            const float d1 = d * sc, m1 = dmin * mn;
            const std::uint8_t* q = x[i].qs + 32 * k;
            for (int l = 0; l < 32; ++l) *y++ = d0 * (q[l] & 0x0f) - m0;
            for (int l = 0; l < 32; ++l) *y++ = d1 * (q[l] >> 4) - m1;
        }
    }
}

// Same operation order as ggml's generic vec_dot_q4_K_q8_K: per block, 8 integer lanes
// (lane l sums positions = l mod 8) scaled by d into 8 running float sums, the mins term
// subtracted from a separate float sum, the 8 lanes added at the very end.
inline float dot(const block_q4_K* w, const block_q8_K* a, std::int64_t n) noexcept {
    float lanes[8] = {};
    float sumf = 0;
    for (std::int64_t i = 0; i < n / 256; ++i) {
        std::uint8_t sc[8], mn[8];
        for (int j = 0; j < 8; ++j) kmin::scale_min(j, w[i].scales, sc[j], mn[j]);
        int summ = 0;
        for (int g = 0; g < 16; ++g) summ += a[i].bsums[g] * mn[g / 2];
        std::int32_t acc[8] = {};
        for (int j = 0; j < 8; ++j) {
            const std::uint8_t* q = w[i].qs + 32 * (j / 2);
            const int shift = 4 * (j % 2);
            const std::int8_t* q8 = a[i].qs + 32 * j;
            for (int l = 0; l < 32; ++l) acc[l % 8] += sc[j] * (((q[l] >> shift) & 0x0f) * q8[l]);
        }
        const float d = to_float(w[i].d) * a[i].d;
        for (int l = 0; l < 8; ++l) lanes[l] += d * acc[l];
        const float dm = to_float(w[i].dmin) * a[i].d;
        sumf -= dm * summ;
    }
    for (int l = 0; l < 8; ++l) sumf += lanes[l];
    return sumf;
}

}  // namespace detail::scalar

namespace detail::simd {

template <class Arch = default_arch>
inline void dequantize_row(const block_q4_K* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    alignas(64) std::int32_t q[64];
    for (std::int64_t i = 0; i < n / 256; ++i) {
        const float d = to_float(x[i].d), dmin = to_float(x[i].dmin);
        for (int k = 0; k < 4; ++k, y += 64) {
            const std::uint8_t* qs = x[i].qs + 32 * k;
            for (int l = 0; l < 32; ++l) {
                q[l] = qs[l] & 0x0f;
                q[l + 32] = qs[l] >> 4;
            }
            std::uint8_t sc, mn;
            kmin::scale_min(2 * k, x[i].scales, sc, mn);
            scale_ints_add<Arch, 32>(q, d * sc, -(dmin * mn), y);  // q*d0 + (-m0) == q*d0 - m0
            kmin::scale_min(2 * k + 1, x[i].scales, sc, mn);
            scale_ints_add<Arch, 32>(q + 32, d * sc, -(dmin * mn), y + 32);
        }
    }
}

}  // namespace detail::simd

#if QINFER_X86_DISPATCH
namespace detail::avx2 {

// Sub-block pairs as 32 nibble bytes each, widened and scaled 8 lanes at a time with a
// separate multiply and add: the same bits as the scalar and xsimd loops.
QINFER_TARGET_AVX2 inline void dequantize_row(const block_q4_K* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    const __m256i low = _mm256_set1_epi8(0x0f);
    for (std::int64_t i = 0; i < n / 256; ++i) {
        const float d = x86f::h2f(x[i].d), dmin = x86f::h2f(x[i].dmin);
        for (int k = 0; k < 4; ++k, y += 64) {
            const __m256i qs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs + 32 * k));
            std::uint8_t sc, mn;
            kmin::scale_min(2 * k, x[i].scales, sc, mn);
            x86f::scale_bytes<false, true>(_mm256_and_si256(qs, low), d * sc, -(dmin * mn), y);
            kmin::scale_min(2 * k + 1, x[i].scales, sc, mn);
            x86f::scale_bytes<false, true>(_mm256_and_si256(_mm256_srli_epi16(qs, 4), low), d * sc, -(dmin * mn), y + 32);
        }
    }
}

// Per block: maddubs multiplies the unsigned nibbles by the signed activations (pair sums
// fit int16: 2 * 15 * 127), madd weights them by the sub-block's 6-bit scale into int32
// lanes, one FMA per block scales those by d. The mins meet Q8_K's bsums in one more madd.
QINFER_TARGET_AVX2 inline float dot(const block_q4_K* w, const block_q8_K* a, std::int64_t n) noexcept {
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    __m256 acc = _mm256_setzero_ps(), acc_m = _mm256_setzero_ps();
    for (std::int64_t i = 0; i < n / 256; ++i) {
        const __m128 dd = kmin::d_dmin_times(&w[i].d, a[i].d);  // [d, dmin] * a.d
        const __m128i sm = kmin::unpack_scales_mins(w[i].scales);
        const __m256i sc = _mm256_broadcastsi128_si256(sm);  // [scale0..7, min0..7] x 2
        const __m256 vdmin = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(dd), _mm256_set1_epi32(1));
        acc_m = _mm256_fmadd_ps(vdmin, _mm256_cvtepi32_ps(kmin::mins_times_bsums(sc, a[i].bsums)), acc_m);

        const std::uint8_t* q4 = w[i].qs;
        const std::int8_t* q8 = a[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        for (int k = 0; k < 4; ++k) {
            const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q4 + 32 * k));
            const __m256i lo = _mm256_and_si256(bits, low4);
            const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(bits, 4), low4);
            const __m256i plo = _mm256_maddubs_epi16(lo, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 64 * k)));
            const __m256i phi = _mm256_maddubs_epi16(hi, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q8 + 64 * k + 32)));
            const __m256i slo = _mm256_madd_epi16(plo, _mm256_shuffle_epi8(sc, kmin::byte_to_words(2 * k)));
            const __m256i shi = _mm256_madd_epi16(phi, _mm256_shuffle_epi8(sc, kmin::byte_to_words(2 * k + 1)));
            sumi = _mm256_add_epi32(sumi, _mm256_add_epi32(slo, shi));
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

// R weight rows against C activation rows, y[c * ldy + r]. Per 64 weights: the 32 packed
// bytes of sub-blocks 2k / 2k+1 are broadcast to both halves of a zmm and the high half
// shifted right by 4, so the nibbles line up with 64 contiguous activations; maddubs gives
// int16 pair sums and VNNI's dpwssd multiplies them by the sub-block scale (a different
// word per 256-bit half) and accumulates. Each row's nibbles and scales are unpacked once
// for all C activation rows. Per cell and block the float work is one FMA for d * sum and
// one for -dmin * (mins . bsums), in the low 8 lanes of the same accumulator; the order is
// the same for every tile shape, so a tile gives the bits of `dot` (its 1 x 1 case).
// Two activation rows at a time keep the 2 * R * C accumulators in registers.
template <int R, int C>
QINFER_TARGET_AVX512 inline void tile(const block_q4_K* w, std::int64_t ldw, const block_q8_K* a, std::int64_t lda,
                                          std::int64_t n, float* y, std::int64_t ldy) noexcept {
    if constexpr (C > 2) {
        tile<R, 2>(w, ldw, a, lda, n, y, ldy);
        tile<R, C - 2>(w, ldw, a + 2 * lda, lda, n, y + 2 * ldy, ldy);
    } else {
        const __m512i low4 = _mm512_set1_epi8(0x0f);
        __m512 acc[R][C];
        QINFER_UNROLL for (int r = 0; r < R; ++r)
            QINFER_UNROLL for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
        for (std::int64_t i = 0; i < n / 256; ++i) {
            __m512i sc[R];
            QINFER_UNROLL for (int r = 0; r < R; ++r) {
                const block_q4_K& b = w[r * ldw + i];
                sc[r] = _mm512_broadcast_i32x4(kmin::unpack_scales_mins(b.scales));  // [scale0..7, min0..7] x 4
                QINFER_UNROLL for (int c = 0; c < C; ++c) {
                    const block_q8_K& q = a[c * lda + i];
                    const __m128 dd = kmin::d_dmin_times(&b.d, q.d);  // [d, dmin] * a.d
                    const __m256 vdmin = _mm256_permutexvar_ps(_mm256_set1_epi32(1), _mm256_castps128_ps256(dd));
                    const __m256i prod_m = kmin::mins_times_bsums(_mm512_castsi512_si256(sc[r]), q.bsums);
                    acc[r][c] = _mm512_mask3_fnmadd_ps(_mm512_zextps256_ps512(vdmin),
                                                       _mm512_zextps256_ps512(_mm256_cvtepi32_ps(prod_m)), acc[r][c], 0x00ff);
                }
            }
            __m512i sumi[R][C];
            QINFER_UNROLL for (int k = 0; k < 4; ++k) {
                __m512i qa[C];
                QINFER_UNROLL for (int c = 0; c < C; ++c) qa[c] = _mm512_loadu_si512(a[c * lda + i].qs + 64 * k);
                QINFER_UNROLL for (int r = 0; r < R; ++r) {
                    const std::uint8_t* q4 = w[r * ldw + i].qs + 32 * k;
                    const __m512i bits = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q4)));
                    const __m512i q = _mm512_and_si512(_mm512_mask_srli_epi16(bits, 0xffff0000u, bits, 4), low4);
                    const __m512i s = _mm512_shuffle_epi8(sc[r], kmin::byte_to_words(2 * k, 2 * k + 1));
                    QINFER_UNROLL for (int c = 0; c < C; ++c) {
                        const __m512i p = _mm512_maddubs_epi16(q, qa[c]);
                        sumi[r][c] = k == 0 ? _mm512_madd_epi16(p, s) : _mm512_dpwssd_epi32(sumi[r][c], p, s);
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

QINFER_TARGET_AVX512 inline float dot(const block_q4_K* w, const block_q8_K* a, std::int64_t n) noexcept {
    float y;
    tile<1, 1>(w, 0, a, 0, n, &y, 0);
    return y;
}

}  // namespace detail::avx512
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

inline void dequantize_row(const block_q4_K* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
#if QINFER_X86_DISPATCH
    if (active_isa() >= isa::avx2) return detail::avx2::dequantize_row(x, y, n);
#endif
    detail::simd::dequantize_row(x, y, n);
}

// Dot product of n weights with n activations quantized by `quantize_activations` (Q8_K).
inline float dot(const block_q4_K* w, const block_q8_K* a, std::int64_t n) noexcept {
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
// bit for bit, with each row's nibbles and scales unpacked once for all C (prefill).
template <int R, int C>
inline void dot_tile(const block_q4_K* w, std::int64_t ldw, const block_q8_K* a, std::int64_t lda, std::int64_t n,
                     float* y, std::int64_t ldy) noexcept {
#if QINFER_X86_DISPATCH
    if (active_isa() == isa::avx512) return detail::avx512::tile<R, C>(w, ldw, a, lda, n, y, ldy);
#endif
    detail::dot_tile_by_dots<R, C>(w, ldw, a, lda, n, y, ldy);
}

QINFER_NAMESPACE_END
