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

}  // namespace detail::simd
QINFER_NAMESPACE_END
