// qinfer/quant/detail/simd.hpp — the xsimd side of the kernels: float work in
// batch<float, Arch> for the instruction set the including translation unit targets.
#pragma once

#include <cstdint>

#include <xsimd/xsimd.hpp>

#include "../../core/config.hpp"

QINFER_NAMESPACE_BEGIN
namespace detail::simd {

using default_arch = xsimd::default_arch;

// y[i] = float(q[i]) * d for i < N (N a multiple of the batch width): the scaling step every
// integer format's dequantization ends with. Exact: int -> float is exact for |q| < 2^24, and
// one multiply rounds the same in every lane as in scalar code.
template <class Arch, int N>
inline void scale_ints(const std::int32_t* q, float d, float* y) noexcept {
    using fb = xsimd::batch<float, Arch>;
    using ib = xsimd::batch<std::int32_t, Arch>;
    static_assert(N % fb::size == 0);
    const fb vd(d);
    for (int i = 0; i < N; i += int(fb::size))
        (xsimd::batch_cast<float>(ib::load_unaligned(q + i)) * vd).store_unaligned(y + i);
}

// y[i] = float(q[i]) * d + m: dequantization with an offset (Q4_1, Q5_1, K-quant mins).
// Two separately rounded operations, never fused, exactly like ggml's scalar code.
template <class Arch, int N>
inline void scale_ints_add(const std::int32_t* q, float d, float m, float* y) noexcept {
    using fb = xsimd::batch<float, Arch>;
    using ib = xsimd::batch<std::int32_t, Arch>;
    static_assert(N % fb::size == 0);
    const fb vd(d), vm(m);
    for (int i = 0; i < N; i += int(fb::size)) {
        const fb prod = xsimd::batch_cast<float>(ib::load_unaligned(q + i)) * vd;
        (prod + vm).store_unaligned(y + i);
    }
}

// One group of 32 weights stored as 4-bit codes into 16 integer levels (IQ4_NL, IQ4_XS,
// MXFP4): code j in the low nibble of qs[j] is weight j, in its high nibble weight j + 16.
// The 16 products level * d are computed once (the same roundings as per weight); each
// weight is then one table lookup.
template <class Arch>
inline void decode_codes32(const std::uint8_t* qs, const std::int32_t* levels, float d, float* y) noexcept {
    alignas(64) float t[16];
    scale_ints<Arch, 16>(levels, d, t);
    for (int j = 0; j < 16; ++j) {
        y[j] = t[qs[j] & 0x0f];
        y[j + 16] = t[qs[j] >> 4];
    }
}

}  // namespace detail::simd
QINFER_NAMESPACE_END
