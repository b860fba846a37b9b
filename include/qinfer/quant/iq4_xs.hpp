// qinfer/quant/iq4_xs.hpp — IQ4_XS: IQ4_NL's non-linear 4-bit levels in super-blocks of
// 256 with a 6-bit scale per 32.
//
// Layout (136 bytes, identical to ggml's block_iq4_xs):
//   d            fp16 super-block scale
//   scales_h     top two bits of the 6-bit scale of group g (32 weights) at bits 2g, 2g+1
//   scales_l[4]  low four bits of the scale of group g: byte g / 2, low nibble for even g
//   qs[128]      level indices; qs[16g + j] holds weight 32g + j (low nibble) and
//                weight 32g + 16 + j (high nibble)
// w = d * (s[g] - 32) * levels[q], levels = detail::iq4::levels, s[g] the 6-bit scale.
#pragma once

#include <cstdint>
#include <cstring>

#include "../core/cpu.hpp"
#include "../core/fp16.hpp"
#include "block_traits.hpp"
#include "detail/codebook4.hpp"
#include "detail/iq4.hpp"
#include "detail/simd.hpp"
#include "detail/x86.hpp"
#include "q8_k.hpp"

QINFER_NAMESPACE_BEGIN

struct block_iq4_xs {
    fp16 d;                     // super-block scale
    std::uint16_t scales_h;     // scale high bits, see above
    std::uint8_t scales_l[4];   // scale low nibbles, see above
    std::uint8_t qs[128];       // level indices, see above
};
static_assert(sizeof(block_iq4_xs) == 136);

template <> struct block_traits<block_iq4_xs> {
    static constexpr type_id id = type_id::iq4_xs;
    static constexpr int block_size = 256;
    using dot_operand = block_q8_K;
};

namespace detail::iq4 {

// Signed scale (-32..31) of group g.
inline int xs_scale(const block_iq4_xs& b, int g) noexcept {
    return (((b.scales_l[g / 2] >> (4 * (g % 2))) & 0x0f) | (((b.scales_h >> (2 * g)) & 3) << 4)) - 32;
}

}  // namespace detail::iq4

// Quantization as ggml_quantize_chunk does it without an importance matrix (ggml's
// quantize_iq4_xs with weights x^2; quantize_row_iq4_xs_ref is the same function): per group
// of 32 a weighted least-squares scale searched over 15 starting points, the 8 group scales
// quantized to 6 bits against the largest, each group requantized with its decoded scale.
inline void quantize_row(const float* QINFER_RESTRICT x, block_iq4_xs* QINFER_RESTRICT y, std::int64_t n) noexcept {
    std::uint8_t L[256];
    for (std::int64_t i = 0; i < n / 256; ++i)
        detail::iq4::quantize_groups(8, x + 256 * i, 7, y[i].d, y[i].qs, &y[i].scales_h, y[i].scales_l, L);
}

// With an importance matrix (ggml_quantize_chunk's imatrix): importance[j] is the
// importance of weight j (n values, one per column of the row); the scale search weighs
// weight j by importance_j * sqrt(sigma2 + x_j^2), sigma2 twice the super-block's mean square.
inline void quantize_row(const float* QINFER_RESTRICT x, block_iq4_xs* QINFER_RESTRICT y, std::int64_t n,
                         const float* QINFER_RESTRICT importance) noexcept {
    if (!importance) return quantize_row(x, y, n);
    std::uint8_t L[256];
    for (std::int64_t i = 0; i < n / 256; ++i)
        detail::iq4::quantize_groups(8, x + 256 * i, 7, y[i].d, y[i].qs, &y[i].scales_h, y[i].scales_l, L,
                                     importance + 256 * i);
}

namespace detail::scalar {

// w = (d * (s - 32)) * level, the two products rounded in ggml's order.
inline void dequantize_row(const block_iq4_xs* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 256; ++i) {
        const float d = to_float(x[i].d);
        for (int g = 0; g < 8; ++g) {
            const float dl = d * iq4::xs_scale(x[i], g);
            const std::uint8_t* q = x[i].qs + 16 * g;
            float* o = y + i * 256 + 32 * g;
            for (int j = 0; j < 16; ++j) {
                o[j] = dl * iq4::levels[q[j] & 0x0f];
                o[j + 16] = dl * iq4::levels[q[j] >> 4];
            }
        }
    }
}

// Same operation order as ggml's generic vec_dot_iq4_xs_q8_K: per group of 32,
// sum += ((dw * da) * (s - 32)) * sumi, groups in order.
inline float dot(const block_iq4_xs* w, const block_q8_K* a, std::int64_t n) noexcept {
    float sum = 0;
    for (std::int64_t i = 0; i < n / 256; ++i) {
        const float d = to_float(w[i].d) * a[i].d;
        for (int g = 0; g < 8; ++g) {
            const float dg = d * iq4::xs_scale(w[i], g);
            sum += dg * static_cast<float>(codebook4::codes_dot32(w[i].qs + 16 * g, a[i].qs + 32 * g, iq4::levels));
        }
    }
    return sum;
}

}  // namespace detail::scalar

namespace detail::simd {

// Each group through decode_codes32 with its scale d * dl.
template <class Arch = default_arch>
inline void dequantize_row(const block_iq4_xs* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 256; ++i) {
        const float d = to_float(x[i].d);
        for (int g = 0; g < 8; ++g)
            decode_codes32<Arch>(x[i].qs + 16 * g, iq4::levels32, d * iq4::xs_scale(x[i], g), y + i * 256 + 32 * g);
    }
}

}  // namespace detail::simd

#if QINFER_X86_DISPATCH
namespace detail::iq4 {

// The 8 signed group scales of a block as words of an SSE register.
QINFER_TARGET_AVX2 inline __m128i xs_scales_sse(const block_iq4_xs& b) noexcept {
    std::uint32_t lo;
    std::memcpy(&lo, b.scales_l, 4);
    const __m128i v = _mm_cvtsi32_si128(static_cast<int>(lo));
    const __m128i m4 = _mm_set1_epi8(0x0f);
    // nibbles in group order: byte g / 2, low nibble first
    const __m128i nib = _mm_unpacklo_epi8(_mm_and_si128(v, m4), _mm_and_si128(_mm_srli_epi16(v, 4), m4));
    // bits 2g, 2g+1 of scales_h to the top of word g (multiply = per-word left shift), then down
    const __m128i hs = _mm_mullo_epi16(_mm_set1_epi16(static_cast<short>(b.scales_h)),
                                       _mm_setr_epi16(1 << 14, 1 << 12, 1 << 10, 1 << 8, 1 << 6, 1 << 4, 1 << 2, 1));
    const __m128i hi = _mm_slli_epi16(_mm_srli_epi16(hs, 14), 4);
    return _mm_sub_epi16(_mm_or_si128(_mm_cvtepu8_epi16(nib), hi), _mm_set1_epi16(32));
}

}  // namespace detail::iq4

namespace detail::avx2 {

// Per group of 32: one byte shuffle gives the signed levels, maddubs their products with
// the activations (sign moved onto the activations; int16 pair sums <= 2 * 127 * 127), and
// madd weights them by the group scale into int32 lanes; one FMA per block applies d.
QINFER_TARGET_AVX2 inline float dot(const block_iq4_xs* w, const block_q8_K* a, std::int64_t n) noexcept {
    const __m256i table = iq4::levels_table();
    __m256 acc = _mm256_setzero_ps();
    for (std::int64_t i = 0; i < n / 256; ++i) {
        const float d = x86::half(w[i].d) * a[i].d;
        const __m256i sc = _mm256_broadcastsi128_si256(iq4::xs_scales_sse(w[i]));
        __m256i s0 = _mm256_setzero_si256(), s1 = _mm256_setzero_si256();
        for (int g = 0; g < 8; g += 2) {
            const __m256i k0 = iq4::lookup_levels(w[i].qs + 16 * g, table);
            const __m256i k1 = iq4::lookup_levels(w[i].qs + 16 * g + 16, table);
            const __m256i a0 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].qs + 32 * g));
            const __m256i a1 = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].qs + 32 * g + 32));
            const __m256i p0 = _mm256_maddubs_epi16(_mm256_sign_epi8(k0, k0), _mm256_sign_epi8(a0, k0));
            const __m256i p1 = _mm256_maddubs_epi16(_mm256_sign_epi8(k1, k1), _mm256_sign_epi8(a1, k1));
            const __m256i sel0 = _mm256_set1_epi16(static_cast<short>(((2 * g + 1) << 8) | (2 * g)));
            const __m256i sel1 = _mm256_set1_epi16(static_cast<short>(((2 * g + 3) << 8) | (2 * g + 2)));
            s0 = _mm256_add_epi32(s0, _mm256_madd_epi16(p0, _mm256_shuffle_epi8(sc, sel0)));
            s1 = _mm256_add_epi32(s1, _mm256_madd_epi16(p1, _mm256_shuffle_epi8(sc, sel1)));
        }
        acc = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(_mm256_add_epi32(s0, s1)), acc);
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

// 64 weights (groups g, g+1) per zmm: the 32 index bytes are spread to the 128-bit lanes
// [g low nibbles, g high, g+1 low, g+1 high], matching 64 contiguous activations. The
// levels are looked up offset by +128 (1..241, unsigned) so VNNI's dpbusd takes them
// directly; each group's int32 sums are multiplied by its scale, and the offset returns once
// per block as 128 * sum(scale * bsum) from Q8_K's group sums.
QINFER_TARGET_AVX512 inline float dot(const block_iq4_xs* w, const block_q8_K* a, std::int64_t n) noexcept {
    const __m512i table = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(iq4::levels_biased)));
    const __m512i spread = _mm512_setr_epi64(0, 1, 0, 1, 2, 3, 2, 3);
    const __m512i shifts = _mm512_setr_epi64(0, 0, 0x0004000400040004, 0x0004000400040004, 0, 0, 0x0004000400040004,
                                             0x0004000400040004);
    const __m512i low4 = _mm512_set1_epi8(0x0f);
    // each group's scale repeated for its two 16-weight bsums
    const __m128i dup = _mm_setr_epi8(0, 1, 0, 1, 2, 3, 2, 3, 4, 5, 4, 5, 6, 7, 6, 7);
    __m512 acc = _mm512_setzero_ps();
    for (std::int64_t i = 0; i < n / 256; ++i) {
        const float d = x86::half(w[i].d) * a[i].d;
        const __m128i sc16 = iq4::xs_scales_sse(w[i]);
        const __m256i sc2 = _mm256_set_m128i(_mm_shuffle_epi8(sc16, _mm_add_epi8(dup, _mm_set1_epi8(8))), _mm_shuffle_epi8(sc16, dup));
        const __m256i bsums = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].bsums));
        const __m256i offset = _mm256_slli_epi32(_mm256_madd_epi16(bsums, sc2), 7);
        const __m512i sc32 = _mm512_castsi256_si512(_mm256_cvtepi16_epi32(sc16));
        __m512i s0 = _mm512_zextsi256_si512(_mm256_sub_epi32(_mm256_setzero_si256(), offset));
        __m512i s1 = _mm512_setzero_si512();
        for (int g = 0; g < 8; g += 2) {
            const __m512i bytes = _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w[i].qs + 16 * g)));
            const __m512i nib = _mm512_and_si512(_mm512_srlv_epi16(_mm512_permutexvar_epi64(spread, bytes), shifts), low4);
            const __m512i u = _mm512_shuffle_epi8(table, nib);
            const __m512i p = _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, _mm512_loadu_si512(a[i].qs + 32 * g));
            const __m512i scale = _mm512_permutexvar_epi32(
                _mm512_inserti64x4(_mm512_set1_epi32(g), _mm256_set1_epi32(g + 1), 1), sc32);
            if (g % 4 == 0) s0 = _mm512_add_epi32(s0, _mm512_mullo_epi32(p, scale));
            else s1 = _mm512_add_epi32(s1, _mm512_mullo_epi32(p, scale));
        }
        acc = _mm512_fmadd_ps(_mm512_set1_ps(d), _mm512_cvtepi32_ps(_mm512_add_epi32(s0, s1)), acc);
    }
    return x86::hsum(acc);
}

}  // namespace detail::avx512
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

inline void dequantize_row(const block_iq4_xs* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    detail::simd::dequantize_row(x, y, n);
}

// Dot product of n weights with n activations quantized by `quantize_activations` (Q8_K).
inline float dot(const block_iq4_xs* w, const block_q8_K* a, std::int64_t n) noexcept {
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
