// qinfer/quant/mxfp4.hpp — MXFP4 (OCP microscaling): 4-bit E2M1 floats, one power-of-two
// E8M0 scale per 32.
//
// Layout (17 bytes, identical to ggml's block_mxfp4): e is a biased exponent, w = 2^(e-128)
// * levels[q] with levels = twice the E2M1 values (0, ±1, ±2, ±3, ±4, ±6, ±8, ±12; bit 3
// is the sign). qs[j] holds the code of weight j in its low nibble, of weight j+16 in its high.
#pragma once

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>

#include "../core/cpu.hpp"
#include "../core/fp16.hpp"
#include "block_traits.hpp"
#include "detail/codebook4.hpp"
#include "detail/float_formats.hpp"
#include "detail/simd.hpp"
#include "detail/x86.hpp"
#include "q8_0.hpp"

QINFER_NAMESPACE_BEGIN

struct block_mxfp4 {
    std::uint8_t e;         // E8M0 exponent (bias 127; the levels are doubled, hence 128 above)
    std::uint8_t qs[16];    // codes, see above
};
static_assert(sizeof(block_mxfp4) == 17);

template <> struct block_traits<block_mxfp4> {
    static constexpr type_id id = type_id::mxfp4;
    static constexpr int block_size = 32;
    using dot_operand = block_q8_0;
};

namespace detail::mxfp4 {

// What a 4-bit code decodes to before the scale: 2 x E2M1 (ggml's kvalues_mxfp4). Codes
// 0 and 8 are +0 and -0, both 0 here.
inline constexpr std::int8_t levels[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// The levels as int32, for scaling them with detail::simd::scale_ints.
alignas(64) inline constexpr std::int32_t levels32[16] = {0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12};

// levels + 128: the unsigned operand VNNI's dpbusd needs.
inline constexpr std::uint8_t levels_biased[16] = {128, 129, 130, 131, 132, 134, 136, 140,
                                                   128, 127, 126, 125, 124, 122, 120, 116};

constexpr bool biased_levels_ok() {
    for (int k = 0; k < 16; ++k)
        if (levels_biased[k] != levels[k] + 128 || levels32[k] != levels[k]) return false;
    return true;
}
static_assert(biased_levels_ok());

// The scale of exponent byte e: 2^(e - 128), half the E8M0 value 2^(e - 127) since the
// levels are doubled. e = 0 and 1 give the subnormals 2^-128 and 2^-127; e = 255 is 2^127
// (E8M0's NaN code is not treated specially, as in ggml).
constexpr float scale_of(std::uint8_t e) noexcept {
    const std::uint32_t bits = e >= 2 ? std::uint32_t(e - 1) << 23 : std::uint32_t(0x00200000) << e;
    return std::bit_cast<float>(bits);
}

// scale_of for every exponent byte: two loads per block pair in the AVX2 kernel.
alignas(64) inline constexpr std::array<float, 256> scale_table = [] {
    std::array<float, 256> t{};
    for (int e = 0; e < 256; ++e) t[std::size_t(e)] = scale_of(static_cast<std::uint8_t>(e));
    return t;
}();

// The exponent byte of a block whose largest magnitude is amax: 2^(e-127) is amax's power
// of two over 4, so amax / scale lies in [8, 16). As in ggml, the power of two is
// floor(log2f(amax)) (libm's log2f, so an amax just under a power of two may round up),
// a block of zeros (or NaNs) gets 0, and an exponent out of 0..255 (amax < 2^-125) wraps
// modulo 256 as ggml's float-to-byte conversion does on x86.
inline std::uint8_t exponent_for(float amax) noexcept {
    if (!(amax > 0.0f)) return 0;
    const int p = static_cast<int>(std::floor(std::log2(amax)));
    return static_cast<std::uint8_t>(p + 125);
}

// The code whose scaled level d * levels[code] is closest to v, measured in float as
// |d * level - v|; among equally close codes the lowest wins (so +0 over -0, and positive
// over negative for v == 0), and v = NaN gives code 0.
inline std::uint8_t nearest_code(float v, float d) noexcept {
    float err[16];
    for (int k = 0; k < 16; ++k) err[k] = std::fabs(float(levels[k]) * d - v);
    return static_cast<std::uint8_t>(std::min_element(err, err + 16) - err);
}

}  // namespace detail::mxfp4

// Quantization as ggml does it (ggml_quantize_chunk, quantize_row_mxfp4_ref and ggml-cpu's
// from_float are one function): the exponent from the block's largest magnitude, then
// every weight to its nearest scaled level. ggml's quantizer ignores an importance matrix,
// so there is no 4-argument overload (as for Q8_0): with an imatrix the bytes are these.
inline void quantize_row(const float* QINFER_RESTRICT x, block_mxfp4* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 32; ++i) {
        const float* xb = x + 32 * i;
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(xb[j]));  // NaNs are passed over
        y[i].e = detail::mxfp4::exponent_for(amax);
        const float d = detail::mxfp4::scale_of(y[i].e);
        for (int j = 0; j < 16; ++j)
            y[i].qs[j] = static_cast<std::uint8_t>(detail::mxfp4::nearest_code(xb[j], d) |
                                                   (detail::mxfp4::nearest_code(xb[j + 16], d) << 4));
    }
}

namespace detail::scalar {

inline void dequantize_row(const block_mxfp4* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 32; ++i) {
        const float d = mxfp4::scale_of(x[i].e);
        for (int j = 0; j < 16; ++j) {
            y[i * 32 + j] = float(mxfp4::levels[x[i].qs[j] & 0x0f]) * d;
            y[i * 32 + j + 16] = float(mxfp4::levels[x[i].qs[j] >> 4]) * d;
        }
    }
}

// Same operation order as ggml's generic vec_dot_mxfp4_q8_0: (da * dw) * sumi per block.
inline float dot(const block_mxfp4* w, const block_q8_0* a, std::int64_t n) noexcept {
    float sum = 0;
    for (std::int64_t i = 0; i < n / 32; ++i) {
        const float d = to_float(a[i].d) * mxfp4::scale_of(w[i].e);
        sum += d * static_cast<float>(codebook4::codes_dot32(w[i].qs, a[i].qs, mxfp4::levels));
    }
    return sum;
}

}  // namespace detail::scalar

namespace detail::simd {

// One decode_codes32 per block.
template <class Arch = default_arch>
inline void dequantize_row(const block_mxfp4* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 32; ++i) decode_codes32<Arch>(x[i].qs, mxfp4::levels32, mxfp4::scale_of(x[i].e), y + i * 32);
}

}  // namespace detail::simd

#if QINFER_X86_DISPATCH
namespace detail::mxfp4 {

// scale_of for four blocks' exponent bytes (in int32 lanes): the normal case (e - 1) << 23
// and the subnormal one 2^21 << e, picked per lane.
QINFER_TARGET_AVX2 inline __m128 scales_of4(const block_mxfp4* w) noexcept {
    const __m128i e = _mm_setr_epi32(w[0].e, w[1].e, w[2].e, w[3].e);
    const __m128i normal = _mm_slli_epi32(_mm_sub_epi32(e, _mm_set1_epi32(1)), 23);
    const __m128i subnormal = _mm_sllv_epi32(_mm_set1_epi32(0x00200000), e);
    return _mm_castsi128_ps(_mm_blendv_epi8(normal, subnormal, _mm_cmplt_epi32(e, _mm_set1_epi32(2))));
}

// MXFP4 for the shared kernels of detail/codebook4.hpp: E8M0 weight scales.
struct codebook {
    static constexpr const std::int8_t* levels = mxfp4::levels;
    static constexpr const std::uint8_t* levels_biased = mxfp4::levels_biased;
    QINFER_TARGET_AVX2 static float scale(const block_mxfp4& w, const block_q8_0& a) noexcept {
        return x86::half(a.d) * scale_of(w.e);
    }
    // Lanes 2, 3 get 1: a subnormal scale there (times the zeros of da) would cost a
    // floating-point assist on every pair.
    QINFER_TARGET_AVX2 static __m128 scales2(const block_mxfp4* w, const block_q8_0* a) noexcept {
        const __m128 dw = _mm_setr_ps(scale_table[w[0].e], scale_table[w[1].e], 1.0f, 1.0f);
        const __m128 da = _mm_cvtph_ps(_mm_cvtsi32_si128(static_cast<int>(std::uint32_t(a[0].d.bits) | (std::uint32_t(a[1].d.bits) << 16))));
        return _mm_mul_ps(da, dw);
    }
    QINFER_TARGET_AVX2 static __m256 scales8(const block_mxfp4* w, const block_q8_0* a) noexcept {
        const __m256 da = _mm256_set_m128(x86f::h2f_x4(&a[4].d, sizeof(block_q8_0)), x86f::h2f_x4(&a[0].d, sizeof(block_q8_0)));
        return _mm256_mul_ps(da, _mm256_set_m128(scales_of4(w + 4), scales_of4(w)));
    }
};

}  // namespace detail::mxfp4

namespace detail::avx2 {

// See codebook4::dot_avx2: a byte shuffle per block, blocks in pairs.
QINFER_TARGET_AVX2 inline float dot(const block_mxfp4* w, const block_q8_0* a, std::int64_t n) noexcept {
    return codebook4::dot_avx2<mxfp4::codebook>(w, a, n);
}

}  // namespace detail::avx2

namespace detail::avx512 {

// See codebook4::dot_avx512: two blocks per zmm, VNNI on levels biased by +128.
QINFER_TARGET_AVX512 inline float dot(const block_mxfp4* w, const block_q8_0* a, std::int64_t n) noexcept {
    return codebook4::dot_avx512<mxfp4::codebook>(w, a, n);
}

}  // namespace detail::avx512
#endif

inline void dequantize_row(const block_mxfp4* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    detail::simd::dequantize_row(x, y, n);
}

// Dot product of n weights with n activations quantized by Q8_0's `quantize_activations`.
inline float dot(const block_mxfp4* w, const block_q8_0* a, std::int64_t n) noexcept {
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
