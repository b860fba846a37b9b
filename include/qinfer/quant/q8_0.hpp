// qinfer/quant/q8_0.hpp — Q8_0: 8-bit weights with one fp16 scale per 32.
//
// Layout (34 bytes, identical to ggml's block_q8_0): w[j] = d * qs[j], qs signed.
// Q8_0 is also the activation operand for Q4_0, Q5_0, Q8_0 and IQ4_NL dot products.
#pragma once

#include <cmath>
#include <cstdint>

#include "../core/cpu.hpp"
#include "../core/fp16.hpp"
#include "block_traits.hpp"
#include "detail/float_formats.hpp"
#include "detail/rounding.hpp"
#include "detail/simd.hpp"
#include "detail/x86.hpp"

QINFER_NAMESPACE_BEGIN

struct block_q8_0 {
    fp16 d;                 // scale
    std::int8_t qs[32];     // quants
};
static_assert(sizeof(block_q8_0) == 34);

template <> struct block_traits<block_q8_0> {
    static constexpr type_id id = type_id::q8_0;
    static constexpr int block_size = 32;
    using dot_operand = block_q8_0;
};

// Reference quantization (== ggml's quantize_row_q8_0_ref): d = amax/127, q = round(x/d)
// with halves away from zero. n must be a multiple of 32.
inline void quantize_row(const float* QINFER_RESTRICT x, block_q8_0* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 32; ++i, x += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
        const float d = amax / 127;
        const float id = d != 0.0f ? 1.0f / d : 0.0f;
        y[i].d = to_fp16(d);
        for (int j = 0; j < 32; ++j) y[i].qs[j] = detail::saturate_int8(std::round(x[j] * id));
    }
}

// Activation quantization as ggml's CPU backend does it before a dot product on x86
// (its from_float): scale by 127/amax and round halves to even. Differs from
// `quantize_row` in the last bit of some quants; matching it keeps logits identical.
inline void quantize_activations(const float* QINFER_RESTRICT x, block_q8_0* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 32; ++i, x += 32) {
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::fmax(amax, std::fabs(x[j]));
        y[i].d = to_fp16(amax / 127.f);
        const float id = amax != 0.0f ? 127.f / amax : 0.0f;
        for (int j = 0; j < 32; ++j) y[i].qs[j] = detail::saturate_int8(std::nearbyint(x[j] * id));
    }
}

namespace detail::scalar {

inline void dequantize_row(const block_q8_0* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 32; ++i) {
        const float d = to_float(x[i].d);
        for (int j = 0; j < 32; ++j) y[i * 32 + j] = x[i].qs[j] * d;
    }
}

// Same operation order as ggml's generic vec_dot_q8_0_q8_0: sumi * (dx * dy) per block.
inline float dot(const block_q8_0* w, const block_q8_0* a, std::int64_t n) noexcept {
    float sum = 0.0f;
    for (std::int64_t i = 0; i < n / 32; ++i) {
        int sumi = 0;
        for (int j = 0; j < 32; ++j) sumi += w[i].qs[j] * a[i].qs[j];
        sum += sumi * (to_float(w[i].d) * to_float(a[i].d));
    }
    return sum;
}

}  // namespace detail::scalar

namespace detail::simd {

template <class Arch = default_arch>
inline void dequantize_row(const block_q8_0* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    alignas(64) std::int32_t q[32];
    for (std::int64_t i = 0; i < n / 32; ++i) {
        for (int j = 0; j < 32; ++j) q[j] = x[i].qs[j];
        scale_ints<Arch, 32>(q, to_float(x[i].d), y + i * 32);
    }
}

}  // namespace detail::simd

#if QINFER_X86_DISPATCH
QINFER_GCC105593_BEGIN
namespace detail::avx2 {

QINFER_TARGET_AVX2 inline void dequantize_row(const block_q8_0* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n / 32; ++i)
        x86f::scale_bytes<true, false>(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs)), x86f::h2f(x[i].d), 0.0f, y + 32 * i);
}

QINFER_TARGET_AVX2 inline __m256i block_sums(const block_q8_0& w, const block_q8_0& a) noexcept {
    return x86::dot_s8s8(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w.qs)),
                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a.qs)));
}

// One 8-lane accumulator, block after block; the scales of four blocks come from one F16C
// conversion of each side instead of eight scalar ones.
QINFER_TARGET_AVX2 inline float dot(const block_q8_0* w, const block_q8_0* a, std::int64_t n) noexcept {
    const std::int64_t nb = n / 32;
    __m256 acc = _mm256_setzero_ps();
    std::int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        const __m256 d = _mm256_castps128_ps256(
            _mm_mul_ps(x86f::h2f_x4(&w[i].d, sizeof(block_q8_0)), x86f::h2f_x4(&a[i].d, sizeof(block_q8_0))));
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

// Tiles of weight rows against activation rows for every format whose 32-weight blocks read
// as unsigned bytes u with w = d * (u - Offset): Q4_0 (nibbles, 8), Q8_0 (q ^ 0x80, 128),
// and others. `Unpack` supplies the bytes of two blocks at once and the exact integer sum of
// one block against its activations (for the < 4 leftover blocks of a row).
//
// Per block pair, for each (row, activation) cell: one VNNI dpbusd that starts from
// -Offset * sum(a) (computed once per activation row, so the integer sum is exact), one
// conversion, one scale product, one FMA. Each unpacked weight pair serves C activation
// rows and each activation pair R weight rows. Every cell sees the same operations in the
// same order whatever R and C are, so a tile gives bit for bit the results of `dot`.
template <int R, int C, class Unpack, class Block>
QINFER_TARGET_AVX512 inline void dot_tile_u8(const Block* w, std::int64_t ldw, const block_q8_0* a, std::int64_t lda,
                                             std::int64_t n, float* y, std::int64_t ldy) noexcept {
    const std::int64_t nb = n / 32;
    const __m512i first = _mm512_set_epi32(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0);
    const __m512i second = _mm512_set_epi32(3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 2, 2);
    const __m512i offset = _mm512_set1_epi8(char(Unpack::offset)), zero = _mm512_setzero_si512();
    __m512 acc[R][C];
    QINFER_UNROLL for (int r = 0; r < R; ++r)
        QINFER_UNROLL for (int c = 0; c < C; ++c) acc[r][c] = _mm512_setzero_ps();
    std::int64_t i = 0;
    for (; i + 4 <= nb; i += 4) {
        __m512 dw4[R], da4[C];
        QINFER_UNROLL for (int r = 0; r < R; ++r) dw4[r] = _mm512_castps128_ps512(x86f::h2f_x4(&w[r * ldw + i].d, sizeof(Block)));
        QINFER_UNROLL for (int c = 0; c < C; ++c) da4[c] = _mm512_castps128_ps512(x86f::h2f_x4(&a[c * lda + i].d, sizeof(block_q8_0)));
        QINFER_UNROLL for (int h = 0; h < 4; h += 2) {
            const __m512i sel = h == 0 ? first : second;
            __m512i qa[C], start[C];
            __m512 da[C];
            QINFER_UNROLL for (int c = 0; c < C; ++c) {
                const block_q8_0* ac = a + c * lda + i + h;
                qa[c] = x86f::load_q8_x2(ac[0].qs, ac[1].qs);
                start[c] = _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, offset, qa[c]));
                da[c] = _mm512_permutexvar_ps(sel, da4[c]);
            }
            QINFER_UNROLL for (int r = 0; r < R; ++r) {
                const __m512i qw = Unpack::pair(w + r * ldw + i + h);
                const __m512 dw = _mm512_permutexvar_ps(sel, dw4[r]);
                QINFER_UNROLL for (int c = 0; c < C; ++c)
                    acc[r][c] = _mm512_fmadd_ps(_mm512_mul_ps(dw, da[c]),
                                                _mm512_cvtepi32_ps(_mm512_dpbusd_epi32(start[c], qw, qa[c])), acc[r][c]);
            }
        }
    }
    QINFER_UNROLL for (int r = 0; r < R; ++r)
        QINFER_UNROLL for (int c = 0; c < C; ++c) {
            const Block* wr = w + r * ldw;
            const block_q8_0* ac = a + c * lda;
            float tail = 0.0f;
            for (std::int64_t j = i; j < nb; ++j)
                tail += (x86f::h2f(wr[j].d) * x86f::h2f(ac[j].d)) * static_cast<float>(Unpack::block_sum(wr[j], ac[j]));
            y[c * ldy + r] = x86::hsum(acc[r][c]) + tail;
        }
}

// Q8_0 weights as unsigned bytes: flipping the sign bit adds 128.
struct q8_0_unpack {
    static constexpr int offset = 128;
    QINFER_TARGET_AVX512 static __m512i pair(const block_q8_0* w) noexcept {
        return _mm512_xor_si512(x86f::load_q8_x2(w[0].qs, w[1].qs), _mm512_set1_epi8(char(0x80)));
    }
    QINFER_TARGET_AVX512 static int block_sum(const block_q8_0& w, const block_q8_0& a) noexcept {
        return x86::hsum(avx2::block_sums(w, a));
    }
};

// A 1 x 1 tile.
QINFER_TARGET_AVX512 inline float dot(const block_q8_0* w, const block_q8_0* a, std::int64_t n) noexcept {
    float y;
    dot_tile_u8<1, 1, q8_0_unpack>(w, 0, a, 0, n, &y, 0);
    return y;
}

}  // namespace detail::avx512
QINFER_GCC105593_END
#endif

inline void dequantize_row(const block_q8_0* QINFER_RESTRICT x, float* QINFER_RESTRICT y, std::int64_t n) noexcept {
#if QINFER_X86_DISPATCH
    if (active_isa() >= isa::avx2) return detail::avx2::dequantize_row(x, y, n);
#endif
    detail::simd::dequantize_row(x, y, n);
}

// Dot product of n weights with n activations quantized by `quantize_activations`.
inline float dot(const block_q8_0* w, const block_q8_0* a, std::int64_t n) noexcept {
#if QINFER_X86_DISPATCH
    switch (active_isa()) {
    case isa::avx512: return detail::avx512::dot(w, a, n);
    case isa::avx2: return detail::avx2::dot(w, a, n);
    default: break;
    }
#endif
    return detail::scalar::dot(w, a, n);
}

// R weight rows (ldw blocks apart) against C activation rows (lda blocks apart):
// y[c * ldy + r] = dot(w + r * ldw, a + c * lda, n), the same bits as `dot` gives, but each
// weight block is unpacked once for all C activations (prefill) and each activation block
// loaded once for all R rows.
template <int R, int C>
inline void dot_tile(const block_q8_0* w, std::int64_t ldw, const block_q8_0* a, std::int64_t lda, std::int64_t n,
                     float* y, std::int64_t ldy) noexcept {
#if QINFER_X86_DISPATCH
    if (active_isa() == isa::avx512)
        return detail::avx512::dot_tile_u8<R, C, detail::avx512::q8_0_unpack>(w, ldw, a, lda, n, y, ldy);
#endif
    detail::dot_tile_by_dots<R, C>(w, ldw, a, lda, n, y, ldy);
}

QINFER_NAMESPACE_END
