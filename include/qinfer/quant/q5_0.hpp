// qinfer/quant/q5_0.hpp — Q5_0: 5-bit weights with one fp16 scale per 32.
//
// Layout (22 bytes, identical to ggml's block_q5_0): w = d * (q - 16), q in 0..31.
// qs[j] holds the low 4 bits of weight j (low nibble) and of weight j+16 (high nibble);
// bit j of the little-endian 32-bit word qh is the fifth bit of weight j (j = 0..31).
// Dot products take Q8_0 activations.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "../core/cpu.hpp"
#include "../core/fp16.hpp"
#include "block_traits.hpp"
#include "detail/float_formats.hpp"
#include "detail/k_quants_sym.hpp"
#include "detail/simd.hpp"
#include "detail/x86.hpp"
#include "q8_0.hpp"

QINFER_NAMESPACE_BEGIN

struct block_q5_0 {
    fp16 d;                 // scale
    std::uint8_t qh[4];     // fifth bits, see above
    std::uint8_t qs[16];    // low nibbles
};
static_assert(sizeof(block_q5_0) == 22);

template <> struct block_traits<block_q5_0> {
    static constexpr type_id id = type_id::q5_0;
    static constexpr int block_size = 32;
    using dot_operand = block_q8_0;
};

// Reference quantization (== ggml's quantize_row_q5_0_ref): the weight of largest magnitude
// maps to -16 exactly, so its sign picks the sign of d; q = trunc(x/d + 16.5) capped at 31.
inline void quantize_row(const float* QINFER_RESTRICT x, block_q5_0* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 32; ++i, x += 32) {
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; ++j) {
            if (amax < std::fabs(x[j])) {
                amax = std::fabs(x[j]);
                max = x[j];
            }
        }
        const float d = max / -16;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = to_fp16(d);
        std::uint32_t qh = 0;
        for (int j = 0; j < 16; ++j) {
            // ggml converts to int8 (through int on x86) before capping at 31
            const int q0 = std::min(31, int(static_cast<std::int8_t>(static_cast<int>(x[j] * id + 16.5f))));
            const int q1 = std::min(31, int(static_cast<std::int8_t>(static_cast<int>(x[j + 16] * id + 16.5f))));
            const std::uint32_t u0 = std::uint8_t(q0), u1 = std::uint8_t(q1);
            y[i].qs[j] = static_cast<std::uint8_t>((u0 & 0x0f) | ((u1 & 0x0f) << 4));
            qh |= ((u0 >> 4) & 1u) << j;
            qh |= ((u1 >> 4) & 1u) << (j + 16);
        }
        std::memcpy(y[i].qh, &qh, sizeof qh);
    }
}

// With an importance matrix (ggml's quantize_row_q5_0_impl): x is one row of n weights,
// importance[j] the importance of column j. Each block's scale is a weighted least-squares
// fit (make_qx_quants) under weights importance_j * sqrt(sigma2 + x_j^2), sigma2 the row's
// mean square. A null importance is the plain quantize_row above.
inline void quantize_row(const float* QINFER_RESTRICT x, block_q5_0* QINFER_RESTRICT y, std::int64_t n,
                         const float* QINFER_RESTRICT importance) noexcept {
    if (!importance) return quantize_row(x, y, n);
    const float sigma2 = detail::sum_of_squares(x, n) / static_cast<float>(n);
    float w[32];
    std::int8_t L[32];
    for (std::int64_t i = 0; i < n / 32; ++i) {
        const float* xb = x + 32 * i;
        detail::importance_weights(xb, importance + 32 * i, sigma2, w, 32);
        y[i].d = to_fp16(detail::ksym::make_qx_quants(32, 16, xb, L, w));
        std::uint32_t qh = 0;
        for (int j = 0; j < 16; ++j) {
            const std::uint32_t u0 = std::uint8_t(L[j]), u1 = std::uint8_t(L[j + 16]);
            y[i].qs[j] = static_cast<std::uint8_t>((u0 & 0x0f) | ((u1 & 0x0f) << 4));
            qh |= ((u0 & 0x10u) >> 4) << j;
            qh |= ((u1 & 0x10u) >> 4) << (j + 16);
        }
        std::memcpy(y[i].qh, &qh, sizeof qh);
    }
}

namespace detail::scalar {

inline void dequantize_row(const block_q5_0* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 32; ++i) {
        const float d = to_float(x[i].d);
        const std::uint32_t qh = load_u32(x[i].qh);
        for (int j = 0; j < 16; ++j) {
            const int q0 = int((x[i].qs[j] & 0x0f) | (((qh >> j) & 1u) << 4)) - 16;
            const int q1 = int((x[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - 16;
            y[i * 32 + j] = q0 * d;
            y[i * 32 + j + 16] = q1 * d;
        }
    }
}

// Same operation order as ggml's generic vec_dot_q5_0_q8_0: sumi * (dw*da) per block.
inline float dot(const block_q5_0* w, const block_q8_0* a, std::int64_t n) noexcept {
    float sum = 0.0f;
    for (std::int64_t i = 0; i < n / 32; ++i) {
        const std::uint32_t qh = load_u32(w[i].qh);
        int sumi0 = 0, sumi1 = 0;
        for (int j = 0; j < 16; ++j) {
            const int q0 = int((w[i].qs[j] & 0x0f) | (((qh >> j) & 1u) << 4)) - 16;
            const int q1 = int((w[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - 16;
            sumi0 += q0 * a[i].qs[j];
            sumi1 += q1 * a[i].qs[j + 16];
        }
        sum += (to_float(w[i].d) * to_float(a[i].d)) * static_cast<float>(sumi0 + sumi1);
    }
    return sum;
}

}  // namespace detail::scalar

namespace detail::simd {

template <class Arch = default_arch>
inline void dequantize_row(const block_q5_0* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    alignas(64) std::int32_t q[32];
    for (std::int64_t i = 0; i < n / 32; ++i) {
        const std::uint32_t qh = load_u32(x[i].qh);
        for (int j = 0; j < 16; ++j) {
            q[j] = int((x[i].qs[j] & 0x0f) | (((qh >> j) & 1u) << 4)) - 16;
            q[j + 16] = int((x[i].qs[j] >> 4) | (((qh >> (j + 16)) & 1u) << 4)) - 16;
        }
        scale_ints<Arch, 32>(q, to_float(x[i].d), y + i * 32);
    }
}

}  // namespace detail::simd

#if QINFER_X86_DISPATCH
QINFER_GCC105593_BEGIN
namespace detail::avx2 {

// The 32 weights q - 16 of a block as int8: the nibble with 0xf0 or-ed in where the fifth
// bit is clear.
QINFER_TARGET_AVX2 inline __m256i signed_weights(const block_q5_0& w) noexcept {
    const __m256i high = _mm256_andnot_si256(x86f::bits_to_bytes(w.qh), _mm256_set1_epi8(static_cast<char>(0xf0)));
    return _mm256_or_si256(x86::unpack_nibbles(w.qs), high);
}

QINFER_TARGET_AVX2 inline void dequantize_row(const block_q5_0* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 32; ++i) x86f::scale_bytes<true, false>(signed_weights(x[i]), x86f::h2f(x[i].d), 0.0f, y + 32 * i);
}

// One block: the signed weights against the activations, as 8 int32 partial sums.
QINFER_TARGET_AVX2 inline __m256i block_sums(const block_q5_0& w, const block_q8_0& a) noexcept {
    return x86::dot_s8s8(signed_weights(w), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs)));
}

// ggml's AVX2 order (same bits as its AVX2 builds): one 8-lane accumulator of
// (dw*da) * sum(q*qa), block after block. The scales of four blocks come from one F16C
// conversion of each side.
QINFER_TARGET_AVX2 inline float dot(const block_q5_0* w, const block_q8_0* a, std::int64_t n) noexcept {
    const std::int64_t nb = n / 32;
    __m256 acc = _mm256_setzero_ps();
    std::int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        const __m256 d = _mm256_castps128_ps256(
            _mm_mul_ps(x86f::h2f_x4(&w[i].d, sizeof(block_q5_0)), x86f::h2f_x4(&a[i].d, sizeof(block_q8_0))));
        for (int k = 0; k < 4; ++k)
            acc = _mm256_fmadd_ps(_mm256_permutevar8x32_ps(d, _mm256_set1_epi32(k)),
                                  _mm256_cvtepi32_ps(block_sums(w[i + k], a[i + k])), acc);
    }
    for (; i < nb; ++i)
        acc = _mm256_fmadd_ps(_mm256_set1_ps(x86f::h2f(w[i].d) * x86f::h2f(a[i].d)), _mm256_cvtepi32_ps(block_sums(w[i], a[i])), acc);
    return x86::hsum(acc);
}

}  // namespace detail::avx2

namespace detail::avx512 {

// Sums of two blocks (i, i+1) in 16 int32 lanes, 8 per block. The fifth bits become a byte
// mask that adds 16 to the nibbles, giving the unsigned q in 0..31; VNNI multiplies it by
// the activations and the -16 offset comes back as 16 * sum(a), one more dpbusd.
QINFER_TARGET_AVX512 inline __m512 pair_sums(const block_q5_0* w, const block_q8_0* a) noexcept {
    const __m512i sixteen = _mm512_set1_epi8(16), zero = _mm512_setzero_si512();
    __m512i qw = x86f::unpack_nibbles_x2(w[0].qs, w[1].qs);
    qw = _mm512_mask_add_epi8(qw, x86f::fifth_bits_x2(w[0].qh, w[1].qh), qw, sixteen);
    const __m512i qa = x86f::load_q8_x2(a[0].qs, a[1].qs);
    return _mm512_cvtepi32_ps(_mm512_sub_epi32(_mm512_dpbusd_epi32(zero, qw, qa), _mm512_dpbusd_epi32(zero, sixteen, qa)));
}

// Four blocks per step, two per 512-bit register, two accumulator chains.
QINFER_TARGET_AVX512 inline float dot(const block_q5_0* w, const block_q8_0* a, std::int64_t n) noexcept {
    const std::int64_t nb = n / 32;
    const __m512i first = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i second = _mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2);
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    std::int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        const __m512 d = _mm512_castps128_ps512(
            _mm_mul_ps(x86f::h2f_x4(&w[i].d, sizeof(block_q5_0)), x86f::h2f_x4(&a[i].d, sizeof(block_q8_0))));
        acc0 = _mm512_fmadd_ps(_mm512_permutexvar_ps(first, d), pair_sums(w + i, a + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_permutexvar_ps(second, d), pair_sums(w + i + 2, a + i + 2), acc1);
    }
    float tail = 0.0f;
    for (; i < nb; ++i)
        tail += (x86f::h2f(w[i].d) * x86f::h2f(a[i].d)) * static_cast<float>(x86::hsum(avx2::block_sums(w[i], a[i])));
    return x86::hsum(_mm512_add_ps(acc0, acc1)) + tail;
}

}  // namespace detail::avx512
QINFER_GCC105593_END
#endif

inline void dequantize_row(const block_q5_0* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
#if QINFER_X86_DISPATCH
    if (active_isa() >= isa::avx2) return detail::avx2::dequantize_row(x, y, n);
#endif
    detail::simd::dequantize_row(x, y, n);
}

// Dot product of n weights with n activations quantized by `quantize_activations` (Q8_0).
inline float dot(const block_q5_0* w, const block_q8_0* a, std::int64_t n) noexcept {
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
