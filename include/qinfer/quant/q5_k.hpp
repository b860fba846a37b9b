// qinfer/quant/q5_k.hpp — Q5_K: 5-bit weights in super-blocks of 256, with a 6-bit scale
// and a 6-bit minimum per 32-weight sub-block.
//
// Layout (176 bytes, identical to ggml's block_q5_K):
//   d, dmin    fp16 super-block scales for the sub-block scales and for the sub-block mins
//   scales[12] 8 scales + 8 mins of 6 bits, packed exactly as in Q4_K
//              (detail/k_quants_min.hpp)
//   qh[32]     high bits: bit j of qh[l] is the fifth bit of weight l of sub-block j
//   qs[128]    low 4 bits: byte 32*k + l holds weight l of sub-block 2k in its low nibble
//              and weight l of sub-block 2k+1 in its high nibble (k = 0..3, l = 0..31)
// Weight l of sub-block j: w = (d * sc[j]) * q - (dmin * m[j]), q in 0..31.
// Dot products take Q8_K activations; the mins fold into one multiply with Q8_K's bsums.
#pragma once

#include <cstdint>
#include <cstring>

#include "../core/cpu.hpp"
#include "../core/fp16.hpp"
#include "block_traits.hpp"
#include "detail/float_formats.hpp"
#include "detail/k_quants_min.hpp"
#include "detail/simd.hpp"
#include "detail/x86.hpp"
#include "q8_k.hpp"

QINFER_NAMESPACE_BEGIN

struct block_q5_K {
    fp16 d;                     // scale of the sub-block scales
    fp16 dmin;                  // scale of the sub-block mins
    std::uint8_t scales[12];    // 6-bit scales and mins, packed
    std::uint8_t qh[32];        // fifth bits, one bit plane per sub-block
    std::uint8_t qs[128];       // low nibbles, see above
};
static_assert(sizeof(block_q5_K) == 176);

template <> struct block_traits<block_q5_K> {
    static constexpr type_id id = type_id::q5_K;
    static constexpr int block_size = 256;
    using dot_operand = block_q8_K;
};

// Reference quantization (== ggml's quantize_row_q5_K_ref, i.e. ggml_quantize_chunk without
// an importance matrix). n must be a multiple of 256.
inline void quantize_row(const float* QINFER_RESTRICT x, block_q5_K* QINFER_RESTRICT y, std::int64_t n) noexcept {
    std::uint8_t L[256];
    for (std::int64_t i = 0; i < n / 256; ++i, x += 256) {
        detail::kmin::quantize_superblock_6bit(x, detail::kmin::q5_fit, y[i].d, y[i].dmin, y[i].scales, L);
        std::memset(y[i].qh, 0, sizeof(y[i].qh));
        for (int k = 0; k < 4; ++k) {
            for (int l = 0; l < 32; ++l) {
                const int q0 = L[64 * k + l], q1 = L[64 * k + 32 + l];
                y[i].qh[l] = std::uint8_t(y[i].qh[l] | ((q0 >> 4) << (2 * k)) | ((q1 >> 4) << (2 * k + 1)));
                y[i].qs[32 * k + l] = std::uint8_t((q0 & 0x0f) | ((q1 & 0x0f) << 4));
            }
        }
    }
}

// With an importance matrix (ggml's quantize_row_q5_K_impl): importance[j] is the
// importance of weight j (n values, one per column of the row).
inline void quantize_row(const float* QINFER_RESTRICT x, block_q5_K* QINFER_RESTRICT y, std::int64_t n,
                         const float* QINFER_RESTRICT importance) noexcept {
    if (!importance) return quantize_row(x, y, n);
    std::uint8_t L[256];
    for (std::int64_t i = 0; i < n / 256; ++i, x += 256) {
        detail::kmin::quantize_superblock_6bit_weighted(x, importance + 256 * i, 31, true, y[i].d, y[i].dmin,
                                                        y[i].scales, L);
        std::memset(y[i].qh, 0, sizeof(y[i].qh));
        for (int k = 0; k < 4; ++k) {
            for (int l = 0; l < 32; ++l) {
                const int q0 = L[64 * k + l], q1 = L[64 * k + 32 + l];
                y[i].qh[l] = std::uint8_t(y[i].qh[l] | ((q0 >> 4) << (2 * k)) | ((q1 >> 4) << (2 * k + 1)));
                y[i].qs[32 * k + l] = std::uint8_t((q0 & 0x0f) | ((q1 & 0x0f) << 4));
            }
        }
    }
}

namespace detail::kmin {

// Quant l (0..31) of sub-block j.
inline int q5_value(const block_q5_K& b, int j, int l) noexcept {
    return ((b.qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 0x0f) | (((b.qh[l] >> j) & 1) << 4);
}

}  // namespace detail::kmin

namespace detail::scalar {

inline void dequantize_row(const block_q5_K* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 256; ++i) {
        const float d = to_float(x[i].d), dmin = to_float(x[i].dmin);
        for (int j = 0; j < 8; ++j) {
            std::uint8_t sc, mn;
            kmin::scale_min(j, x[i].scales, sc, mn);
            const float dj = d * sc, mj = dmin * mn;
            for (int l = 0; l < 32; ++l) *y++ = dj * kmin::q5_value(x[i], j, l) - mj;
        }
    }
}

// Same operation order as ggml's generic vec_dot_q5_K_q8_K: per block, 8 integer lanes
// (lane l sums positions = l mod 8) scaled by d into 8 running float sums, the mins term
// subtracted from a separate float sum, the 8 lanes added at the very end.
inline float dot(const block_q5_K* w, const block_q8_K* a, std::int64_t n) noexcept {
    float lanes[8] = {};
    float sumf = 0;
    for (std::int64_t i = 0; i < n / 256; ++i) {
        std::uint8_t sc[8], mn[8];
        for (int j = 0; j < 8; ++j) kmin::scale_min(j, w[i].scales, sc[j], mn[j]);
        int summ = 0;
        for (int g = 0; g < 16; ++g) summ += a[i].bsums[g] * mn[g / 2];
        std::int32_t acc[8] = {};
        for (int j = 0; j < 8; ++j) {
            const std::int8_t* q8 = a[i].qs + 32 * j;
            for (int l = 0; l < 32; ++l) acc[l % 8] += sc[j] * (kmin::q5_value(w[i], j, l) * q8[l]);
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
inline void dequantize_row(const block_q5_K* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    alignas(64) std::int32_t q[64];
    for (std::int64_t i = 0; i < n / 256; ++i) {
        const float d = to_float(x[i].d), dmin = to_float(x[i].dmin);
        for (int k = 0; k < 4; ++k, y += 64) {
            const std::uint8_t* qs = x[i].qs + 32 * k;
            for (int l = 0; l < 32; ++l) {
                const int h = x[i].qh[l] >> (2 * k);
                q[l] = (qs[l] & 0x0f) | ((h & 1) << 4);
                q[l + 32] = (qs[l] >> 4) | ((h & 2) << 3);
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

// As Q4_K's: the fifth bits of sub-blocks 2k and 2k+1 are bits 0 and 1 of each qh byte
// after k 16-bit shifts by 2 (bits shifted in from the neighbour byte land above bit 1).
QINFER_TARGET_AVX2 inline void dequantize_row(const block_q5_K* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    const __m256i low = _mm256_set1_epi8(0x0f), one = _mm256_set1_epi8(1), two = _mm256_set1_epi8(2);
    for (std::int64_t i = 0; i < n / 256; ++i) {
        const float d = x86f::h2f(x[i].d), dmin = x86f::h2f(x[i].dmin);
        __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qh));
        for (int k = 0; k < 4; ++k, y += 64, qh = _mm256_srli_epi16(qh, 2)) {
            const __m256i qs = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs + 32 * k));
            const __m256i q0 = _mm256_or_si256(_mm256_and_si256(qs, low), _mm256_slli_epi16(_mm256_and_si256(qh, one), 4));
            const __m256i q1 = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(qs, 4), low),
                                               _mm256_slli_epi16(_mm256_and_si256(qh, two), 3));
            std::uint8_t sc, mn;
            kmin::scale_min(2 * k, x[i].scales, sc, mn);
            x86f::scale_bytes<false, true>(q0, d * sc, -(dmin * mn), y);
            kmin::scale_min(2 * k + 1, x[i].scales, sc, mn);
            x86f::scale_bytes<false, true>(q1, d * sc, -(dmin * mn), y + 32);
        }
    }
}

// As Q4_K's kernel, with the fifth bit of each weight moved from its qh bit plane to bit 4
// of the byte (one shift and one mask per 32 weights) and or-ed onto the nibble.
// maddubs pair sums still fit int16: 2 * 31 * 127.
QINFER_TARGET_AVX2 inline float dot(const block_q5_K* w, const block_q8_K* a, std::int64_t n) noexcept {
    const __m256i low4 = _mm256_set1_epi8(0x0f);
    const __m256i bit4 = _mm256_set1_epi8(0x10);
    // bit plane b of qh moved to bit 4 of every byte (16-bit shifts: the bits that cross
    // into the neighbouring byte never land on bit 4)
    auto plane = [&](__m256i v, int b) QINFER_TARGET_AVX2 {
        return b <= 4 ? _mm256_slli_epi16(v, 4 - b) : _mm256_srli_epi16(v, b - 4);
    };
    __m256 acc = _mm256_setzero_ps(), acc_m = _mm256_setzero_ps();
    for (std::int64_t i = 0; i < n / 256; ++i) {
        const __m128 dd = kmin::d_dmin_times(&w[i].d, a[i].d);  // [d, dmin] * a.d
        const __m128i sm = kmin::unpack_scales_mins(w[i].scales);
        const __m256i sc = _mm256_broadcastsi128_si256(sm);  // [scale0..7, min0..7] x 2
        const __m256 vdmin = _mm256_permutevar8x32_ps(_mm256_castps128_ps256(dd), _mm256_set1_epi32(1));
        acc_m = _mm256_fmadd_ps(vdmin, _mm256_cvtepi32_ps(kmin::mins_times_bsums(sc, a[i].bsums)), acc_m);

        const __m256i qh = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].qh));
        const std::uint8_t* q4 = w[i].qs;
        const std::int8_t* q8 = a[i].qs;
        __m256i sumi = _mm256_setzero_si256();
        for (int k = 0; k < 4; ++k) {
            const __m256i bits = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q4 + 32 * k));
            const __m256i lo = _mm256_or_si256(_mm256_and_si256(bits, low4), _mm256_and_si256(plane(qh, 2 * k), bit4));
            const __m256i hi = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(bits, 4), low4),
                                               _mm256_and_si256(plane(qh, 2 * k + 1), bit4));
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

// Q4_K's zmm kernel (sub-blocks 2k / 2k+1 in the two halves of a zmm, maddubs + dpwssd)
// plus the fifth bit. qh is broadcast to both halves with the high half shifted right by
// one, so bit 2k of every byte is the fifth bit for step k in either half; a 16-bit shift
// moves it to bit 4, and one ternary-logic op merges it with the masked nibble.
QINFER_TARGET_AVX512 inline float dot(const block_q5_K* w, const block_q8_K* a, std::int64_t n) noexcept {
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    const __m512i bit4 = _mm512_set1_epi8(0x10);
    __m512 acc = _mm512_setzero_ps();
    __m256 acc_m = _mm256_setzero_ps();
    for (std::int64_t i = 0; i < n / 256; ++i) {
        const __m128 dd = kmin::d_dmin_times(&w[i].d, a[i].d);  // [d, dmin] * a.d
        const __m128i sm = kmin::unpack_scales_mins(w[i].scales);
        const __m512i sc = _mm512_broadcast_i32x4(sm);  // [scale0..7, min0..7] x 4
        const __m256 vdmin = _mm256_permutexvar_ps(_mm256_set1_epi32(1), _mm256_castps128_ps256(dd));
        const __m256i prod_m = kmin::mins_times_bsums(_mm512_castsi512_si256(sc), a[i].bsums);
        acc_m = _mm256_fmadd_ps(vdmin, _mm256_cvtepi32_ps(prod_m), acc_m);

        const __m512i qh2 = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].qh)));
        const __m512i qh = _mm512_mask_srli_epi16(qh2, 0xffff0000u, qh2, 1);
        const std::uint8_t* q4 = w[i].qs;
        const std::int8_t* q8 = a[i].qs;
        auto prod = [&](int k) QINFER_TARGET_AVX512 {
            const __m512i bits = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(q4 + 32 * k)));
            const __m512i nib = _mm512_mask_srli_epi16(bits, 0xffff0000u, bits, 4);  // nibble in bits 0..3
            // bit 2k -> bit 4 (bits crossing into the neighbouring byte are masked away)
            const __m512i h = k == 0 ? _mm512_slli_epi16(qh, 4) : k == 1 ? _mm512_slli_epi16(qh, 2)
                            : k == 2 ? qh : _mm512_srli_epi16(qh, 2);
            // (nib & 0x0f) | (h & 0x10): the fifth bit merged with the nibble
            const __m512i q = _mm512_ternarylogic_epi32(nib, _mm512_and_si512(h, bit4), low4, 0xec);
            return _mm512_maddubs_epi16(q, _mm512_loadu_si512(q8 + 64 * k));
        };
        auto scale = [&](int k) QINFER_TARGET_AVX512 { return _mm512_shuffle_epi8(sc, kmin::byte_to_words(2 * k, 2 * k + 1)); };
        __m512i sumi = _mm512_madd_epi16(prod(0), scale(0));
        sumi = _mm512_dpwssd_epi32(sumi, prod(1), scale(1));
        sumi = _mm512_dpwssd_epi32(sumi, prod(2), scale(2));
        sumi = _mm512_dpwssd_epi32(sumi, prod(3), scale(3));
        acc = _mm512_fmadd_ps(_mm512_broadcastss_ps(dd), _mm512_cvtepi32_ps(sumi), acc);
    }
    return x86::hsum(acc) - x86::hsum(acc_m);
}

}  // namespace detail::avx512
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

inline void dequantize_row(const block_q5_K* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
#if QINFER_X86_DISPATCH
    if (active_isa() >= isa::avx2) return detail::avx2::dequantize_row(x, y, n);
#endif
    detail::simd::dequantize_row(x, y, n);
}

// Dot product of n weights with n activations quantized by `quantize_activations` (Q8_K).
inline float dot(const block_q5_K* w, const block_q8_K* a, std::int64_t n) noexcept {
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
