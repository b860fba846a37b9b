// qinfer/quant/iq4_nl.hpp — IQ4_NL: 4-bit indices into 16 non-linear levels, one fp16
// scale per 32.
//
// Layout (18 bytes, identical to ggml's block_iq4_nl): w = d * levels[q], q in 0..15,
// levels = detail::iq4::levels (-127 .. 113, denser near zero). qs[j] holds the index of
// weight j in its low nibble and of weight j+16 in its high nibble.
#pragma once

#include <cstdint>

#include "../core/cpu.hpp"
#include "../core/fp16.hpp"
#include "block_traits.hpp"
#include "detail/iq4.hpp"
#include "detail/simd.hpp"
#include "detail/x86.hpp"
#include "q8_0.hpp"

QINFER_NAMESPACE_BEGIN

struct block_iq4_nl {
    fp16 d;                 // scale
    std::uint8_t qs[16];    // level indices, see above
};
static_assert(sizeof(block_iq4_nl) == 18);

template <> struct block_traits<block_iq4_nl> {
    static constexpr type_id id = type_id::iq4_nl;
    static constexpr int block_size = 32;
    using dot_operand = block_q8_0;
};

// Quantization as ggml_quantize_chunk does it without an importance matrix (what
// llama-quantize writes into model files; ggml's quantize_iq4_nl with weights x^2): a
// weighted least-squares scale searched over 15 starting points, then every weight mapped
// to its nearest level under that scale.
inline void quantize_row(const float* QINFER_RESTRICT x, block_iq4_nl* QINFER_RESTRICT y, std::int64_t n) noexcept {
    std::uint8_t L[32];
    for (std::int64_t i = 0; i < n / 32; ++i)
        detail::iq4::quantize_groups(1, x + 32 * i, 7, y[i].d, y[i].qs, nullptr, nullptr, L);
}

// With an importance matrix (ggml_quantize_chunk's imatrix): importance[j] is the
// importance of weight j (n values, one per column of the row); the scale search weighs
// weight j by importance_j * sqrt(sigma2 + x_j^2), sigma2 twice the block's mean square.
inline void quantize_row(const float* QINFER_RESTRICT x, block_iq4_nl* QINFER_RESTRICT y, std::int64_t n,
                         const float* QINFER_RESTRICT importance) noexcept {
    if (!importance) return quantize_row(x, y, n);
    std::uint8_t L[32];
    for (std::int64_t i = 0; i < n / 32; ++i)
        detail::iq4::quantize_groups(1, x + 32 * i, 7, y[i].d, y[i].qs, nullptr, nullptr, L, importance + 32 * i);
}

// ggml's quantize_row_iq4_nl_ref, which is NOT what ggml_quantize_chunk produces: a single
// least-squares refinement of the scale, no search, no final requantization. ggml-cpu uses
// it as IQ4_NL's from_float (tensors converted to IQ4_NL at run time, e.g. a KV cache).
// Quirk kept: a block of zeros (largest magnitude < 1e-15, d = 0) repeats the previous
// block's indices, as ggml leaves its scratch buffer as it was (before the first non-zero
// block that buffer is uninitialized in ggml; zeros here). Decoded values are unaffected.
inline void quantize_row_ref(const float* QINFER_RESTRICT x, block_iq4_nl* QINFER_RESTRICT y, std::int64_t n) noexcept {
    std::uint8_t L[32] = {};
    for (std::int64_t i = 0; i < n / 32; ++i)
        detail::iq4::quantize_groups(1, x + 32 * i, -1, y[i].d, y[i].qs, nullptr, nullptr, L);
}

namespace detail::scalar {

inline void dequantize_row(const block_iq4_nl* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 32; ++i) {
        const float d = to_float(x[i].d);
        for (int j = 0; j < 16; ++j) {
            y[i * 32 + j] = d * iq4::levels[x[i].qs[j] & 0x0f];
            y[i * 32 + j + 16] = d * iq4::levels[x[i].qs[j] >> 4];
        }
    }
}

// Same operation order as ggml's generic vec_dot_iq4_nl_q8_0: (da * dw) * sumi per block.
inline float dot(const block_iq4_nl* w, const block_q8_0* a, std::int64_t n) noexcept {
    float sum = 0;
    for (std::int64_t i = 0; i < n / 32; ++i) {
        const float d = to_float(a[i].d) * to_float(w[i].d);
        int s0 = 0, s1 = 0;
        for (int j = 0; j < 16; ++j) {
            s0 += a[i].qs[j] * iq4::levels[w[i].qs[j] & 0x0f];
            s1 += a[i].qs[j + 16] * iq4::levels[w[i].qs[j] >> 4];
        }
        sum += d * static_cast<float>(s0 + s1);
    }
    return sum;
}

}  // namespace detail::scalar

namespace detail::simd {

// The 16 products d * level are computed once per block (the same roundings as per
// weight); decoding is then one table lookup per weight.
template <class Arch = default_arch>
inline void dequantize_row(const block_iq4_nl* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    alignas(64) float t[16];
    for (std::int64_t i = 0; i < n / 32; ++i) {
        scale_ints<Arch, 16>(iq4::levels32, to_float(x[i].d), t);
        float* o = y + i * 32;
        for (int j = 0; j < 16; ++j) {
            o[j] = t[x[i].qs[j] & 0x0f];
            o[j + 16] = t[x[i].qs[j] >> 4];
        }
    }
}

}  // namespace detail::simd

#if QINFER_X86_DISPATCH
namespace detail::iq4 {

// The levels of block i's 32 weights times its activations, as 8 int32 partial sums.
QINFER_TARGET_AVX2 inline __m256i nl_block_dot(const block_iq4_nl& w, const block_q8_0& a, __m256i table) noexcept {
    const __m256i qw = lookup_levels(w.qs, table);
    const __m256i qa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs));
    return x86::dot_s8s8(qw, qa);
}

// Four fp16 scales packed into 64 bits (first block in the low bits), for one F16C
// conversion of several blocks' scales at once.
template <class Block>
inline std::uint64_t pack_scales4(const Block* b) noexcept {
    return std::uint64_t(b[0].d.bits) | (std::uint64_t(b[1].d.bits) << 16) | (std::uint64_t(b[2].d.bits) << 32) |
           (std::uint64_t(b[3].d.bits) << 48);
}

// da * dw of 8 consecutive blocks.
QINFER_TARGET_AVX2 inline __m256 nl_scales8(const block_iq4_nl* w, const block_q8_0* a) noexcept {
    const __m128i hw = _mm_set_epi64x(static_cast<long long>(pack_scales4(w + 4)), static_cast<long long>(pack_scales4(w)));
    const __m128i ha = _mm_set_epi64x(static_cast<long long>(pack_scales4(a + 4)), static_cast<long long>(pack_scales4(a)));
    return _mm256_mul_ps(_mm256_cvtph_ps(ha), _mm256_cvtph_ps(hw));
}

}  // namespace detail::iq4

namespace detail::avx2 {

// Per block: one byte shuffle turns the 32 indices into signed levels, whose products
// with the activations go through maddubs with the sign moved onto the activations
// (|level| <= 127, no saturation). Blocks go in pairs whose four fp16 scales are converted
// by one F16C instruction.
QINFER_TARGET_AVX2 inline float dot(const block_iq4_nl* w, const block_q8_0* a, std::int64_t n) noexcept {
    const __m256i table = iq4::levels_table();
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    const std::int64_t nb = n / 32;
    std::int64_t i = 0;
    for (; i + 1 < nb; i += 2) {
        const std::uint64_t h = std::uint64_t(w[i].d.bits) | (std::uint64_t(w[i + 1].d.bits) << 16) |
                                (std::uint64_t(a[i].d.bits) << 32) | (std::uint64_t(a[i + 1].d.bits) << 48);
        const __m128 f = _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<long long>(h)));  // dw0 dw1 da0 da1
        const __m128 d = _mm_mul_ps(f, _mm_movehl_ps(f, f));                         // d0 d1 . .
        const __m256 s0 = _mm256_cvtepi32_ps(iq4::nl_block_dot(w[i], a[i], table));
        const __m256 s1 = _mm256_cvtepi32_ps(iq4::nl_block_dot(w[i + 1], a[i + 1], table));
        acc0 = _mm256_fmadd_ps(_mm256_broadcastss_ps(d), s0, acc0);
        acc1 = _mm256_fmadd_ps(_mm256_broadcastss_ps(_mm_movehdup_ps(d)), s1, acc1);
    }
    if (i < nb) {
        const float d = x86::half(a[i].d) * x86::half(w[i].d);
        acc0 = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(iq4::nl_block_dot(w[i], a[i], table)), acc0);
    }
    return x86::hsum(_mm256_add_ps(acc0, acc1));
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

// Two blocks per zmm: their 16 + 16 index bytes are spread to the 128-bit lanes
// [i low nibbles, i high, i+1 low, i+1 high], matching their 2 x 32 activations. The
// levels are looked up offset by +128 (1..241, unsigned) so VNNI's dpbusd takes them
// directly; a second dpbusd against 128s removes the offset. The scales of 8 blocks are
// converted at once and spread per pair with one permute.
QINFER_TARGET_AVX512 inline float dot(const block_iq4_nl* w, const block_q8_0* a, std::int64_t n) noexcept {
    const __m512i table = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(iq4::levels_biased)));
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
        const __m512i u = _mm512_shuffle_epi8(table, nib);
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
        const __m512 d = _mm512_castps256_ps512(iq4::nl_scales8(w + i, a + i));
        acc0 = _mm512_fmadd_ps(pair_scale(d, 0), pair(i), acc0);
        acc1 = _mm512_fmadd_ps(pair_scale(d, 2), pair(i + 2), acc1);
        acc0 = _mm512_fmadd_ps(pair_scale(d, 4), pair(i + 4), acc0);
        acc1 = _mm512_fmadd_ps(pair_scale(d, 6), pair(i + 6), acc1);
    }
    const __m256i table256 = iq4::levels_table();
    __m256 tail = _mm256_setzero_ps();
    for (std::int64_t i = nb8; i < nb; ++i) {
        const __m256i qw = iq4::lookup_levels(w[i].qs, table256);
        const __m256i qa = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a[i].qs));
        const float d = x86::half(a[i].d) * x86::half(w[i].d);
        tail = _mm256_fmadd_ps(_mm256_set1_ps(d), _mm256_cvtepi32_ps(x86::dot_s8s8_vnni(qw, qa)), tail);
    }
    return x86::hsum(_mm512_add_ps(acc0, acc1)) + x86::hsum(tail);
}

}  // namespace detail::avx512
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif
#endif

inline void dequantize_row(const block_iq4_nl* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    detail::simd::dequantize_row(x, y, n);
}

// Dot product of n weights with n activations quantized by Q8_0's `quantize_activations`.
inline float dot(const block_iq4_nl* w, const block_q8_0* a, std::int64_t n) noexcept {
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
