// qinfer/quant/detail/x86.hpp — small AVX2 / AVX-512 building blocks shared by the dot kernels.
//
// Each function carries its own target attribute, so this header compiles in a baseline
// x86-64 translation unit; callers run them only after core/cpu.hpp said the CPU can.
#pragma once

#include "../../core/config.hpp"

#if QINFER_X86_DISPATCH
#include <immintrin.h>

#include <cstdint>

#include "../../core/fp16.hpp"

QINFER_NAMESPACE_BEGIN
namespace detail::x86 {

// fp16 -> float with the F16C instruction (the software conversion in core/fp16.hpp gives
// the same bits but costs a dozen instructions in a dot product's inner loop).
QINFER_TARGET_AVX2 inline float half(fp16 h) noexcept { return _cvtsh_ss(h.bits); }

QINFER_TARGET_AVX2 inline float hsum(__m256 v) noexcept {
    __m128 r = _mm_add_ps(_mm256_extractf128_ps(v, 1), _mm256_castps256_ps128(v));
    r = _mm_add_ps(r, _mm_movehl_ps(r, r));
    r = _mm_add_ss(r, _mm_movehdup_ps(r));
    return _mm_cvtss_f32(r);
}

QINFER_TARGET_AVX2 inline int hsum(__m256i v) noexcept {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

QINFER_TARGET_AVX512 inline float hsum(__m512 v) noexcept {
    return hsum(_mm256_add_ps(_mm512_castps512_ps256(v), _mm512_extractf32x8_ps(v, 1)));
}

// 16 packed bytes -> 32 nibbles: low nibbles in bytes 0..15, high nibbles in bytes 16..31
// (the order Q4_0 / Q4_1 / Q5_x / IQ4_NL store weights j and j+16 in).
QINFER_TARGET_AVX2 inline __m256i unpack_nibbles(const std::uint8_t* p) noexcept {
    const __m128i lo = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m256i both = _mm256_set_m128i(_mm_srli_epi16(lo, 4), lo);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

// Sum of u8 x s8 products in groups of 4 into 8 int32 lanes (AVX2: through 16-bit pairs,
// which cannot overflow for |u| <= 127 or for u <= 63 with any s).
QINFER_TARGET_AVX2 inline __m256i dot_u8s8(__m256i u, __m256i s) noexcept {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

QINFER_TARGET_AVX512 inline __m256i dot_u8s8_vnni(__m256i u, __m256i s) noexcept {
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
}

// s8 x s8 through the unsigned-by-signed instructions: |x| * (y with x's sign).
QINFER_TARGET_AVX2 inline __m256i dot_s8s8(__m256i x, __m256i y) noexcept {
    return dot_u8s8(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

QINFER_TARGET_AVX512 inline __m256i dot_s8s8_vnni(__m256i x, __m256i y) noexcept {
    return dot_u8s8_vnni(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
}

}  // namespace detail::x86
QINFER_NAMESPACE_END
#endif
