// qinfer/quant/q5_1.hpp — Q5_1: 5-bit weights with an fp16 scale and an fp16 minimum per 32.
//
// Layout (24 bytes, identical to ggml's block_q5_1): w = d * q + m, q in 0..31.
// qs[j] holds the low 4 bits of weight j (low nibble) and of weight j+16 (high nibble);
// bit j of the little-endian 32-bit word qh is the fifth bit of weight j (j = 0..31).
// Dot products take Q8_1 activations: per block, sum(w * a) = d*da * sum(q * qa) + m * s.
#pragma once

#include <cfloat>
#include <cstdint>
#include <cstring>

#include "../core/cpu.hpp"
#include "../core/fp16.hpp"
#include "block_traits.hpp"
#include "detail/float_formats.hpp"
#include "detail/k_quants_min.hpp"
#include "detail/simd.hpp"
#include "detail/x86.hpp"
#include "q8_1.hpp"

QINFER_NAMESPACE_BEGIN

struct block_q5_1 {
    fp16 d;                 // scale
    fp16 m;                 // minimum (offset)
    std::uint8_t qh[4];     // fifth bits, see above
    std::uint8_t qs[16];    // low nibbles
};
static_assert(sizeof(block_q5_1) == 24);

template <> struct block_traits<block_q5_1> {
    static constexpr type_id id = type_id::q5_1;
    static constexpr int block_size = 32;
    using dot_operand = block_q8_1;
};

// Reference quantization (== ggml's quantize_row_q5_1_ref): the block's range [min, max] is
// cut into 31 steps; q = trunc((x - min) / d + 0.5) kept to its low 5 bits (no cap: the
// value cannot exceed 31 by more than rounding).
inline void quantize_row(const float* QINFER_RESTRICT x, block_q5_1* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 32; ++i, x += 32) {
        float lo = FLT_MAX, hi = -FLT_MAX;
        for (int j = 0; j < 32; ++j) {
            if (x[j] < lo) lo = x[j];
            if (x[j] > hi) hi = x[j];
        }
        const float d = (hi - lo) / 31;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = to_fp16(d);
        y[i].m = to_fp16(lo);
        std::uint32_t qh = 0;
        for (int j = 0; j < 16; ++j) {
            // ggml converts straight to uint8 (through int on x86)
            const std::uint32_t u0 = std::uint8_t(static_cast<int>((x[j] - lo) * id + 0.5f));
            const std::uint32_t u1 = std::uint8_t(static_cast<int>((x[j + 16] - lo) * id + 0.5f));
            y[i].qs[j] = static_cast<std::uint8_t>((u0 & 0x0f) | ((u1 & 0x0f) << 4));
            qh |= ((u0 >> 4) & 1u) << j;
            qh |= ((u1 >> 4) & 1u) << (j + 16);
        }
        std::memcpy(y[i].qh, &qh, sizeof qh);
    }
}

// With an importance matrix (ggml's quantize_row_q5_1_impl): x is one row of n weights,
// importance[j] the importance of column j. Each block's scale and minimum are fitted by
// make_qkx3_quants under weights importance_j * sqrt(sigma2 + x_j^2), sigma2 the row's mean
// square. A null importance is the plain quantize_row above.
inline void quantize_row(const float* QINFER_RESTRICT x, block_q5_1* QINFER_RESTRICT y, std::int64_t n,
                         const float* QINFER_RESTRICT importance) noexcept {
    if (!importance) return quantize_row(x, y, n);
    const float sigma2 = detail::sum_of_squares(x, n) / static_cast<float>(n);
    float w[32];
    std::uint8_t L[32], tmp[32];
    for (std::int64_t i = 0; i < n / 32; ++i) {
        const float* xb = x + 32 * i;
        detail::importance_weights(xb, importance + 32 * i, sigma2, w, 32);
        float neg_min;
        const float d = detail::kmin::make_qkx2_quants(32, xb, w, L, &neg_min, tmp, detail::kmin::weighted_fit(31));
        y[i].d = to_fp16(d);
        y[i].m = to_fp16(-neg_min);
        std::uint32_t qh = 0;
        for (int j = 0; j < 16; ++j) {
            const std::uint32_t u0 = L[j], u1 = L[j + 16];
            y[i].qs[j] = static_cast<std::uint8_t>((u0 & 0x0f) | ((u1 & 0x0f) << 4));
            qh |= ((u0 & 0x10u) >> 4) << j;
            qh |= ((u1 & 0x10u) >> 4) << (j + 16);
        }
        std::memcpy(y[i].qh, &qh, sizeof qh);
    }
}

namespace detail::scalar {

inline void dequantize_row(const block_q5_1* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 32; ++i) {
        const float d = to_float(x[i].d), m = to_float(x[i].m);
        const std::uint32_t qh = load_u32(x[i].qh);
        for (int j = 0; j < 16; ++j) {
            const int q0 = int((x[i].qs[j] & 0x0f) | (((qh >> j) & 1u) << 4));
            const int q1 = int((x[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4));
            y[i * 32 + j] = q0 * d + m;
            y[i * 32 + j + 16] = q1 * d + m;
        }
    }
}

// Same operation order as ggml's generic vec_dot_q5_1_q8_1: (dw*da)*sumi + m*s per block.
inline float dot(const block_q5_1* w, const block_q8_1* a, std::int64_t n) noexcept {
    float sum = 0.0f;
    for (std::int64_t i = 0; i < n / 32; ++i) {
        const std::uint32_t qh = load_u32(w[i].qh);
        int sumi0 = 0, sumi1 = 0;
        for (int j = 0; j < 16; ++j) {
            const int q0 = int((w[i].qs[j] & 0x0f) | (((qh >> j) & 1u) << 4));
            const int q1 = int((w[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4));
            sumi0 += q0 * a[i].qs[j];
            sumi1 += q1 * a[i].qs[j + 16];
        }
        sum += (to_float(w[i].d) * to_float(a[i].d)) * static_cast<float>(sumi0 + sumi1) +
               to_float(w[i].m) * to_float(a[i].s);
    }
    return sum;
}

}  // namespace detail::scalar

namespace detail::simd {

template <class Arch = default_arch>
inline void dequantize_row(const block_q5_1* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    alignas(64) std::int32_t q[32];
    for (std::int64_t i = 0; i < n / 32; ++i) {
        const std::uint32_t qh = load_u32(x[i].qh);
        for (int j = 0; j < 16; ++j) {
            q[j] = int((x[i].qs[j] & 0x0f) | (((qh >> j) & 1u) << 4));
            q[j + 16] = int((x[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4));
        }
        scale_ints_add<Arch, 32>(q, to_float(x[i].d), to_float(x[i].m), y + i * 32);
    }
}

}  // namespace detail::simd

#if QINFER_X86_DISPATCH
QINFER_GCC105593_BEGIN
namespace detail::avx2 {

// The 32 weights q of a block as bytes: nibble | fifth bit << 4.
QINFER_TARGET_AVX2 inline __m256i unsigned_weights(const block_q5_1& w) noexcept {
    const __m256i high = _mm256_and_si256(x86f::bits_to_bytes(w.qh), _mm256_set1_epi8(0x10));
    return _mm256_or_si256(x86::unpack_nibbles(w.qs), high);
}

QINFER_TARGET_AVX2 inline void dequantize_row(const block_q5_1* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 32; ++i)
        x86f::scale_bytes<false, true>(unsigned_weights(x[i]), x86f::h2f(x[i].d), x86f::h2f(x[i].m), y + 32 * i);
}

// One block: the unsigned weights against the activations, as 8 int32 partial sums.
QINFER_TARGET_AVX2 inline __m256i block_sums(const block_q5_1& w, const block_q8_1& a) noexcept {
    return x86::dot_u8s8(unsigned_weights(w), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs)));
}

// ggml's AVX2 order for the main sum (one 8-lane accumulator of sum(q*qa) * (dw*da), block
// after block). The [dw*da, m*s] pairs of four blocks come from one F16C conversion per
// side; the m*s terms collect in the odd lanes of `offsets` (ggml adds them one by one).
QINFER_TARGET_AVX2 inline float dot(const block_q5_1* w, const block_q8_1* a, std::int64_t n) noexcept {
    const std::int64_t nb = n / 32;
    __m256 acc = _mm256_setzero_ps(), offsets = _mm256_setzero_ps();
    std::int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        const __m256 s = _mm256_mul_ps(x86f::h2f_pairs_x4(&w[i].d, sizeof(block_q5_1)), x86f::h2f_pairs_x4(&a[i].d, sizeof(block_q8_1)));
        offsets = _mm256_add_ps(offsets, s);
        const __m256 even = _mm256_permute_ps(s, 0x00), odd = _mm256_permute_ps(s, 0xaa);  // [d0|d2], [d1|d3]
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(block_sums(w[i], a[i])), _mm256_permute2f128_ps(even, even, 0x00), acc);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(block_sums(w[i + 1], a[i + 1])), _mm256_permute2f128_ps(odd, odd, 0x00), acc);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(block_sums(w[i + 2], a[i + 2])), _mm256_permute2f128_ps(even, even, 0x11), acc);
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(block_sums(w[i + 3], a[i + 3])), _mm256_permute2f128_ps(odd, odd, 0x11), acc);
    }
    float tail = 0.0f;
    for (; i < nb; ++i) {
        const __m128 s = _mm_mul_ps(x86f::h2f_pair(&w[i].d), x86f::h2f_pair(&a[i].d));
        acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(block_sums(w[i], a[i])), _mm256_broadcastss_ps(s), acc);
        tail += _mm_cvtss_f32(_mm_movehdup_ps(s));
    }
    return x86::hsum(acc) + (x86f::sum_odd_lanes(offsets) + tail);
}

}  // namespace detail::avx2

namespace detail::avx512 {

// Sums of two blocks (i, i+1) in 16 int32 lanes, 8 per block: the fifth bits become a byte
// mask that adds 16 to the nibbles; VNNI takes the unsigned q directly.
QINFER_TARGET_AVX512 inline __m512 pair_sums(const block_q5_1* w, const block_q8_1* a) noexcept {
    __m512i qw = x86f::unpack_nibbles_x2(w[0].qs, w[1].qs);
    qw = _mm512_mask_add_epi8(qw, x86f::fifth_bits_x2(w[0].qh, w[1].qh), qw, _mm512_set1_epi8(16));
    return _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(_mm512_setzero_si512(), qw, x86f::load_q8_x2(a[0].qs, a[1].qs)));
}

// Four blocks per step, two per 512-bit register, two accumulator chains; scales and
// offsets as in the AVX2 kernel.
QINFER_TARGET_AVX512 inline float dot(const block_q5_1* w, const block_q8_1* a, std::int64_t n) noexcept {
    const std::int64_t nb = n / 32;
    const __m512i first = _mm512_set_epi32(2, 2, 2, 2, 2, 2, 2, 2, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i second = _mm512_set_epi32(6, 6, 6, 6, 6, 6, 6, 6, 4, 4, 4, 4, 4, 4, 4, 4);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    __m256 offsets = _mm256_setzero_ps();
    std::int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        const __m256 s = _mm256_mul_ps(x86f::h2f_pairs_x4(&w[i].d, sizeof(block_q5_1)), x86f::h2f_pairs_x4(&a[i].d, sizeof(block_q8_1)));
        offsets = _mm256_add_ps(offsets, s);
        const __m512 s512 = _mm512_castps256_ps512(s);
        acc0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(first, s512), pair_sums(w + i, a + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(second, s512), pair_sums(w + i + 2, a + i + 2), acc1);
    }
    float tail = 0.0f;
    for (; i < nb; ++i) {
        const __m128 s = _mm_mul_ps(x86f::h2f_pair(&w[i].d), x86f::h2f_pair(&a[i].d));
        tail += (_mm_cvtss_f32(s) * static_cast<float>(x86::hsum(avx2::block_sums(w[i], a[i]))) + _mm_cvtss_f32(_mm_movehdup_ps(s)));
    }
    return x86::hsum(_mm512_add_ps(acc0, acc1)) + tail + x86f::sum_odd_lanes(offsets);
}

}  // namespace detail::avx512
QINFER_GCC105593_END
#endif

inline void dequantize_row(const block_q5_1* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
#if QINFER_X86_DISPATCH
    if (active_isa() >= isa::avx2) return detail::avx2::dequantize_row(x, y, n);
#endif
    detail::simd::dequantize_row(x, y, n);
}

// Dot product of n weights with n activations quantized by `quantize_activations` (Q8_1).
inline float dot(const block_q5_1* w, const block_q8_1* a, std::int64_t n) noexcept {
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
