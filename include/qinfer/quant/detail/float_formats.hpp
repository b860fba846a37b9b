// qinfer/quant/detail/float_formats.hpp — helpers shared by the F16 / BF16 headers and the
// Q4_1 / Q5_0 / Q5_1 / Q8_1 kernels: half-precision conversions with ggml's exact NaN
// behaviour, and a few x86 building blocks (fp16 pairs, 32 bits -> 32 bytes).
#pragma once

#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "../../core/config.hpp"
#include "../../core/fp16.hpp"

#if QINFER_X86_DISPATCH
#include <immintrin.h>
#endif

// GCC 12's AVX-512 intrinsics read a self-initialized "undefined" vector, which -Wall then
// reports from the inlined code (GCC bug 105593). Kernel sections using them are wrapped in
// these; no kernel reads an undefined lane.
#if defined(__GNUC__) && !defined(__clang__)
#  define QINFER_GCC105593_BEGIN _Pragma("GCC diagnostic push") \
     _Pragma("GCC diagnostic ignored \"-Wuninitialized\"") _Pragma("GCC diagnostic ignored \"-Wmaybe-uninitialized\"")
#  define QINFER_GCC105593_END _Pragma("GCC diagnostic pop")
#else
#  define QINFER_GCC105593_BEGIN
#  define QINFER_GCC105593_END
#endif

QINFER_NAMESPACE_BEGIN
namespace detail {

// fp16 -> float exactly as ggml's software conversion and the x86 F16C instructions do it:
// like core's to_float, except that a signalling NaN comes back quiet (bit 22 set), since
// both ggml and the hardware route NaNs through a float operation that quiets them.
constexpr float half_to_float(fp16 h) noexcept {
    const float f = to_float(h);
    if ((h.bits & 0x7c00u) == 0x7c00u && (h.bits & 0x03ffu) != 0)
        return std::bit_cast<float>(std::bit_cast<std::uint32_t>(f) | 0x00400000u);
    return f;
}

// float -> fp16 as the F16C instruction vcvtps2ph rounds it (ggml-cpu's from_float for F16
// on x86): round to nearest even like to_fp16, but a NaN keeps the top 10 bits of its
// payload (quieted) where ggml's software conversion returns the canonical 0x7e00.
constexpr fp16 float_to_half_hw(float f) noexcept {
    const std::uint32_t u = std::bit_cast<std::uint32_t>(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)
        return {std::uint16_t(((u >> 16) & 0x8000u) | 0x7e00u | ((u >> 13) & 0x03ffu))};
    return to_fp16(f);
}

// The little-endian 32-bit word at p (the fifth bits of Q5_0 / Q5_1: bit j for weight j).
inline std::uint32_t load_u32(const std::uint8_t* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return v;
}

}  // namespace detail

#if QINFER_X86_DISPATCH
QINFER_GCC105593_BEGIN
// Forced inline: these sit in the kernels' inner loops, and a call would spill vectors.
#define QINFER_X86F_INLINE inline __attribute__((always_inline))
namespace detail::x86f {

// One fp16 -> float through F16C (exact, same bits as half_to_float).
QINFER_TARGET_AVX2 QINFER_X86F_INLINE float h2f(fp16 h) noexcept { return _cvtsh_ss(h.bits); }

// Two adjacent fp16 at p -> floats in lanes 0 and 1 (lanes 2, 3 are zero).
QINFER_TARGET_AVX2 QINFER_X86F_INLINE __m128 h2f_pair(const void* p) noexcept {
    std::uint32_t v;
    std::memcpy(&v, p, sizeof v);
    return _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(v)));
}

// The fp16 at `first` and at the next three `stride`-byte steps -> 4 floats. The halves are
// gathered in a general register, so the four cost one F16C conversion.
QINFER_TARGET_AVX2 QINFER_X86F_INLINE __m128 h2f_x4(const void* first, std::size_t stride) noexcept {
    const auto* p = static_cast<const unsigned char*>(first);
    std::uint16_t h[4];
    for (int k = 0; k < 4; ++k) std::memcpy(&h[k], p + k * stride, sizeof h[k]);
    std::uint64_t v = std::uint64_t(h[0]) | std::uint64_t(h[1]) << 16 | std::uint64_t(h[2]) << 32 | std::uint64_t(h[3]) << 48;
    __asm__("" : "+r"(v));  // keep the packing in a general register (compilers like to vectorize it)
    return _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<long long>(v)));
}

// The two adjacent fp16 at `first` and at the next three `stride`-byte steps -> 8 floats
// (pair k in lanes 2k, 2k+1): the [d, m] / [d, s] heads of four Q4_1 / Q5_1 / Q8_1 blocks.
QINFER_TARGET_AVX2 QINFER_X86F_INLINE __m256 h2f_pairs_x4(const void* first, std::size_t stride) noexcept {
    const auto* p = static_cast<const std::uint8_t*>(first);
    std::uint64_t lo = load_u32(p) | std::uint64_t(load_u32(p + stride)) << 32;
    std::uint64_t hi = load_u32(p + 2 * stride) | std::uint64_t(load_u32(p + 3 * stride)) << 32;
    __asm__("" : "+r"(lo), "+r"(hi));  // likewise
    return _mm256_cvtph_ps(_mm_insert_epi64(_mm_cvtsi64_si128(static_cast<long long>(lo)), static_cast<long long>(hi), 1));
}

// 32 bits at p -> 32 bytes, byte j = 0xff where bit j is set, else 0 (AVX2 has no masks):
// byte j picks source byte j/8, keeps bit j%8 and compares it with itself.
QINFER_TARGET_AVX2 QINFER_X86F_INLINE __m256i bits_to_bytes(const std::uint8_t* p) noexcept {
    const __m256i word = _mm256_set1_epi32(static_cast<int>(load_u32(p)));
    const __m256i pick = _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101,
                                            0x0202020202020202, 0x0303030303030303);
    const __m256i bit = _mm256_set1_epi64x(static_cast<long long>(0x8040201008040201ull));
    const __m256i bytes = _mm256_and_si256(_mm256_shuffle_epi8(word, pick), bit);
    return _mm256_cmpeq_epi8(bytes, bit);
}

// The 32 bytes of q (weights in order; unsigned or signed) -> y[j] = float(q[j]) * d + m,
// or * d alone: one rounding per operation, the same bits as the scalar code.
template <bool Signed, bool Offset>
QINFER_TARGET_AVX2 QINFER_X86F_INLINE void scale_bytes(__m256i q, float d, float m, float* y) noexcept {
    const __m256 vd = _mm256_set1_ps(d), vm = _mm256_set1_ps(m);
    const __m128i half[2] = {_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1)};
    for (int k = 0; k < 4; ++k) {
        const __m128i bytes = (k & 1) ? _mm_srli_si128(half[k >> 1], 8) : half[k >> 1];
        const __m256i ints = Signed ? _mm256_cvtepi8_epi32(bytes) : _mm256_cvtepu8_epi32(bytes);
        __m256 v = _mm256_mul_ps(_mm256_cvtepi32_ps(ints), vd);
        if (Offset) v = _mm256_add_ps(v, vm);
        _mm256_storeu_ps(y + 8 * k, v);
    }
}

// Nibbles of two 32-weight blocks in one register, in the order of their 32 weights:
// 128-bit lanes 0-1 = low / high nibbles of qs0, lanes 2-3 = those of qs1.
QINFER_TARGET_AVX512 QINFER_X86F_INLINE __m512i unpack_nibbles_x2(const std::uint8_t* qs0, const std::uint8_t* qs1) noexcept {
    __m512i q = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(qs0)));
    q = _mm512_mask_broadcast_i32x4(q, 0xff00, _mm_loadu_si128(reinterpret_cast<const __m128i*>(qs1)));
    q = _mm512_mask_srli_epi16(q, 0xff00ff00u, q, 4);
    return _mm512_and_si512(q, _mm512_set1_epi8(0x0f));
}

// The fifth bits (qh words) of two Q5 blocks as a 64-bit byte mask matching unpack_nibbles_x2.
QINFER_TARGET_AVX512 QINFER_X86F_INLINE __mmask64 fifth_bits_x2(const std::uint8_t* qh0, const std::uint8_t* qh1) noexcept {
    return _cvtu64_mask64(std::uint64_t(load_u32(qh0)) | (std::uint64_t(load_u32(qh1)) << 32));
}

// The 32 int8 quants of two activation blocks back to back.
QINFER_TARGET_AVX512 QINFER_X86F_INLINE __m512i load_q8_x2(const std::int8_t* qs0, const std::int8_t* qs1) noexcept {
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs0))),
                              _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs1)), 1);
}

// Lanes 1 + 3 + 5 + 7 of v (the m*s terms of h2f_pairs_x4 products).
QINFER_TARGET_AVX2 QINFER_X86F_INLINE float sum_odd_lanes(__m256 v) noexcept {
    const __m128 o = _mm_movehdup_ps(_mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)));
    return _mm_cvtss_f32(_mm_add_ss(o, _mm_movehl_ps(o, o)));
}

}  // namespace detail::x86f
#undef QINFER_X86F_INLINE
QINFER_GCC105593_END
#endif

QINFER_NAMESPACE_END
