// qinfer/quant/detail/codebook4.hpp — dot kernels for the formats whose 4-bit indices pick
// one of 16 signed 8-bit levels in groups of 32 (IQ4_NL, MXFP4; IQ4_XS for the scalar and
// lookup parts), against 8-bit activations.
//
// The formats keep the index of weight j in the low nibble of qs[j] and that of weight
// j + 16 in its high nibble; they differ only in their levels and in how a block stores its
// scale. For the x86 kernels a format describes itself with a Codebook type:
//   levels         16 x int8, the values an index decodes to (before the scale);
//   levels_biased  16 x uint8, levels + 128 (the unsigned operand of VNNI's dpbusd);
//   scale(w, a)    da * dw of one block, as ggml's kernels compute it;
//   scales2(w, a)  those of blocks w[0], w[1] in lanes 0 and 1 of an __m128;
//   scales8(w, a)  those of 8 consecutive blocks.
#pragma once

#include <cstdint>

#include "../../core/config.hpp"
#include "x86.hpp"

#if QINFER_X86_DISPATCH
#include <immintrin.h>
#endif

QINFER_NAMESPACE_BEGIN
namespace detail::codebook4 {

// Sum of q8[j] * levels[code of weight j] over a group of 32 (the code of weight j in the
// low nibble of qs[j], of weight j + 16 in its high nibble). Integer, so exact in any order.
inline int codes_dot32(const std::uint8_t* qs, const std::int8_t* q8, const std::int8_t* levels) noexcept {
    int lo = 0, hi = 0;
    for (int j = 0; j < 16; ++j) {
        lo += q8[j] * levels[qs[j] & 0x0f];
        hi += q8[j + 16] * levels[qs[j] >> 4];
    }
    return lo + hi;
}

#if QINFER_X86_DISPATCH

// The 16 levels in both 128-bit lanes, for byte-shuffle lookups.
QINFER_TARGET_AVX2 inline __m256i table(const std::int8_t* levels) noexcept {
    return _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(levels)));
}

// 16 packed bytes -> the levels of their 32 nibbles: low nibbles in bytes 0..15, high
// nibbles in bytes 16..31 (the order the formats store weights j and j + 16 in).
QINFER_TARGET_AVX2 inline __m256i lookup_levels(const std::uint8_t* p, __m256i table) noexcept {
    const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m256i nib = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(b, 4), b), _mm256_set1_epi8(0x0f));
    return _mm256_shuffle_epi8(table, nib);
}

// The levels of one block's 32 weights times its activations, as 8 int32 partial sums.
template <class Block, class Operand>
QINFER_TARGET_AVX2 inline __m256i block_dot(const Block& w, const Operand& a, __m256i table) noexcept {
    const __m256i qa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs));
    return x86::dot_s8s8(lookup_levels(w.qs, table), qa);
}

// Per block: one byte shuffle turns the 32 indices into signed levels, whose products with
// the activations go through maddubs with the sign moved onto the activations (|level| <=
// 127, no saturation). Blocks go in pairs, two accumulators, the pair's scales at once.
template <class Codebook, class Block, class Operand>
QINFER_TARGET_AVX2 inline float dot_avx2(const Block* w, const Operand* a, std::int64_t n) noexcept {
    const __m256i tab = table(Codebook::levels);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    const std::int64_t nb = n / 32;
    std::int64_t i = 0;
    for (; i + 1 < nb; i += 2) {
        const __m128 d = Codebook::scales2(w + i, a + i);
        const __m256 s0 = _mm256_cvtepi32_ps(block_dot(w[i], a[i], tab));
        const __m256 s1 = _mm256_cvtepi32_ps(block_dot(w[i + 1], a[i + 1], tab));
        acc0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), s0, acc0);
        acc1 = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(d)), s1, acc1);
    }
    if (i < nb)
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(Codebook::scale(w[i], a[i])), _mm256_cvtepi32_ps(block_dot(w[i], a[i], tab)), acc0);
    return x86::hsum(_mm256_add_ps(acc0, acc1));
}

// GCC 12 reports its own _mm512_undefined_* placeholders as uninitialized when AVX-512
// intrinsics are inlined into a target("avx512...") function; the warning is spurious.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// Two blocks per zmm: their 16 + 16 index bytes are spread to the 128-bit lanes
// [i low nibbles, i high, i+1 low, i+1 high], matching their 2 x 32 activations. The
// levels are looked up offset by +128 (unsigned) so VNNI's dpbusd takes them directly; a
// second dpbusd against 128s removes the offset. The scales of 8 blocks are computed at
// once and spread per pair with one permute.
template <class Codebook, class Block, class Operand>
QINFER_TARGET_AVX512 inline float dot_avx512(const Block* w, const Operand* a, std::int64_t n) noexcept {
    const __m512i tab = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(Codebook::levels_biased)));
    const __m512i spread = _mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3);
    const __m512i shifts = _mm512_setr_epi64(0, 0, 0x0004000400040004, 0x0004000400040004, 0, 0, 0x0004000400040004,
                                             0x0004000400040004);
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    const __m512i bias = _mm512_set1_epi8(static_cast<char>(0x80));
    auto pair = [&](std::int64_t i) QINFER_TARGET_AVX512 {
        const __m256i idx = _mm256_inserti128_si256(
            _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(w[i].qs))),
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(w[i + 1].qs)), 1);
        const __m512i nib = _mm512_and_si512(_mm512_srlv_epi16(_mm512_permutexvar_epi64(spread, _mm512_castsi256_si512(idx)), shifts), low4);
        const __m512i u = _mm512_shuffle_epi8(tab, nib);
        const __m512i q8 = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].qs))),
                                              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i + 1].qs)), 1);
        const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, q8);
        const __m512i c = _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, q8);
        return _mm512_cvtepi32_ps(_mm512_sub_epi32(p, c));
    };
    auto pair_scale = [&](__m512 d8, int b) QINFER_TARGET_AVX512 {  // [d_b x 8, d_b+1 x 8]
        return _mm512_permutexvar_ps(_mm512_inserti64x4(_mm512_set1_epi32(b), _mm256_set1_epi32(b + 1), 1), d8);
    };
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    const std::int64_t nb = n / 32, nb8 = nb / 8 * 8;
    for (std::int64_t i = 0; i < nb8; i += 8) {
        const __m512 d = _mm512_castps256_ps512(Codebook::scales8(w + i, a + i));
        acc0 = _mm512_fmadd_ps(pair_scale(d, 0), pair(i), acc0);
        acc1 = _mm512_fmadd_ps(pair_scale(d, 2), pair(i + 2), acc1);
        acc0 = _mm512_fmadd_ps(pair_scale(d, 4), pair(i + 4), acc0);
        acc1 = _mm512_fmadd_ps(pair_scale(d, 6), pair(i + 6), acc1);
    }
    const __m256i tab256 = table(Codebook::levels);
    __m256 tail = _mm256_setzero_ps();
    for (std::int64_t i = nb8; i < nb; ++i) {
        const __m256i qw = lookup_levels(w[i].qs, tab256);
        const __m256i qa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].qs));
        tail = _mm256_fmadd_ps(_mm256_set1_ps(Codebook::scale(w[i], a[i])), _mm256_cvtepi32_ps(x86::dot_s8s8_vnni(qw, qa)), tail);
    }
    return x86::hsum(_mm512_add_ps(acc0, acc1)) + x86::hsum(tail);
}

#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif  // QINFER_X86_DISPATCH

}  // namespace detail::codebook4
QINFER_NAMESPACE_END
