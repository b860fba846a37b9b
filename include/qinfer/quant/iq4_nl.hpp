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
#include "detail/codebook4.hpp"
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
        sum += d * static_cast<float>(codebook4::codes_dot32(w[i].qs, a[i].qs, iq4::levels));
    }
    return sum;
}

}  // namespace detail::scalar

namespace detail::simd {

// One decode_codes32 per block.
template <class Arch = default_arch>
inline void dequantize_row(const block_iq4_nl* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 32; ++i) decode_codes32<Arch>(x[i].qs, iq4::levels32, to_float(x[i].d), y + i * 32);
}

}  // namespace detail::simd

#if QINFER_X86_DISPATCH
namespace detail::iq4 {

// Four fp16 scales packed into 64 bits (first block in the low bits), for one F16C
// conversion of several blocks' scales at once.
template <class Block>
inline std::uint64_t pack_scales4(const Block* b) noexcept {
    return std::uint64_t(b[0].d.bits) | (std::uint64_t(b[1].d.bits) << 16) | (std::uint64_t(b[2].d.bits) << 32) |
           (std::uint64_t(b[3].d.bits) << 48);
}

// IQ4_NL for the shared kernels of detail/codebook4.hpp: fp16 weight scales.
struct nl_codebook {
    static constexpr const std::int8_t* levels = iq4::levels;
    static constexpr const std::uint8_t* levels_biased = iq4::levels_biased;
    QINFER_TARGET_AVX2 static float scale(const block_iq4_nl& w, const block_q8_0& a) noexcept {
        return x86::half(a.d) * x86::half(w.d);
    }
    // One F16C conversion of [dw0 dw1 da0 da1], then a product with its upper half.
    QINFER_TARGET_AVX2 static __m128 scales2(const block_iq4_nl* w, const block_q8_0* a) noexcept {
        const std::uint64_t h = std::uint64_t(w[0].d.bits) | (std::uint64_t(w[1].d.bits) << 16) |
                                (std::uint64_t(a[0].d.bits) << 32) | (std::uint64_t(a[1].d.bits) << 48);
        const __m128 f = _mm_cvtph_ps(_mm_cvtsi64_si128(static_cast<long long>(h)));
        return _mm_mul_ps(f, _mm_movehl_ps(f, f));
    }
    QINFER_TARGET_AVX2 static __m256 scales8(const block_iq4_nl* w, const block_q8_0* a) noexcept {
        const __m128i hw = _mm_set_epi64x(static_cast<long long>(pack_scales4(w + 4)), static_cast<long long>(pack_scales4(w)));
        const __m128i ha = _mm_set_epi64x(static_cast<long long>(pack_scales4(a + 4)), static_cast<long long>(pack_scales4(a)));
        return _mm256_mul_ps(_mm256_cvtph_ps(ha), _mm256_cvtph_ps(hw));
    }
};

}  // namespace detail::iq4

namespace detail::avx2 {

// See codebook4::dot_avx2: a byte shuffle per block, blocks in pairs.
QINFER_TARGET_AVX2 inline float dot(const block_iq4_nl* w, const block_q8_0* a, std::int64_t n) noexcept {
    return codebook4::dot_avx2<iq4::nl_codebook>(w, a, n);
}

}  // namespace detail::avx2

namespace detail::avx512 {

// See codebook4::dot_avx512: two blocks per zmm, VNNI on levels biased by +128.
QINFER_TARGET_AVX512 inline float dot(const block_iq4_nl* w, const block_q8_0* a, std::int64_t n) noexcept {
    return codebook4::dot_avx512<iq4::nl_codebook>(w, a, n);
}

}  // namespace detail::avx512
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
