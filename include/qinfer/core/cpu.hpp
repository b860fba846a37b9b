// qinfer/core/cpu.hpp — which instruction set the kernels use, decided once at run time.
#pragma once

#include <cstdlib>
#include <string_view>

#include "config.hpp"

QINFER_NAMESPACE_BEGIN

// Kernel tiers, lowest to highest. `scalar` is the portable reference every other tier is
// tested against; `avx2` needs AVX2+FMA+F16C; `avx512` needs AVX-512 F/BW/VL/DQ + VNNI.
enum class isa { scalar = 0, avx2 = 1, avx512 = 2 };

constexpr std::string_view isa_name(isa i) noexcept {
    switch (i) {
    case isa::avx512: return "avx512";
    case isa::avx2: return "avx2";
    default: return "scalar";
    }
}

// What the CPU (and the OS, which must save the wider registers) supports, from cpuid.
struct cpu_features {
    bool avx2 = false, fma = false, f16c = false, bmi2 = false;
    bool avx512f = false, avx512bw = false, avx512vl = false, avx512dq = false, avx512vnni = false;
    bool avx512bf16 = false, avx512vbmi = false;
};

namespace detail {

#if QINFER_X86_DISPATCH
inline void cpuid(unsigned leaf, unsigned sub, unsigned r[4]) noexcept {
    __asm__ __volatile__("cpuid" : "=a"(r[0]), "=b"(r[1]), "=c"(r[2]), "=d"(r[3]) : "a"(leaf), "c"(sub));
}
inline unsigned long long xgetbv0() noexcept {
    unsigned lo, hi;
    __asm__ __volatile__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return (static_cast<unsigned long long>(hi) << 32) | lo;
}
#endif

inline cpu_features read_cpu_features() noexcept {
    cpu_features f;
#if QINFER_X86_DISPATCH
    unsigned r[4];
    cpuid(0, 0, r);
    const unsigned max_leaf = r[0];
    if (max_leaf < 7) return f;
    cpuid(1, 0, r);
    const bool osxsave = (r[2] >> 27) & 1, avx = (r[2] >> 28) & 1;
    if (!osxsave || !avx) return f;
    const unsigned long long xcr0 = xgetbv0();
    if ((xcr0 & 0x6) != 0x6) return f;           // XMM and YMM state enabled by the OS
    const bool zmm_state = (xcr0 & 0xe6) == 0xe6;  // plus opmask and ZMM state
    f.fma = (r[2] >> 12) & 1;
    f.f16c = (r[2] >> 29) & 1;
    cpuid(7, 0, r);
    f.avx2 = (r[1] >> 5) & 1;
    f.bmi2 = (r[1] >> 8) & 1;
    if (zmm_state) {
        f.avx512f = (r[1] >> 16) & 1;
        f.avx512dq = (r[1] >> 17) & 1;
        f.avx512bw = (r[1] >> 30) & 1;
        f.avx512vl = (r[1] >> 31) & 1;
        f.avx512vbmi = (r[2] >> 1) & 1;
        f.avx512vnni = (r[2] >> 11) & 1;
        const unsigned sub_leaves = r[0];
        if (sub_leaves >= 1) {
            cpuid(7, 1, r);
            f.avx512bf16 = (r[0] >> 5) & 1;
        }
    }
#endif
    return f;
}

inline isa detect_isa() noexcept {
    const cpu_features f = read_cpu_features();
    isa best = isa::scalar;
    if (f.avx2 && f.fma && f.f16c && f.bmi2) best = isa::avx2;
    if (best == isa::avx2 && f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq && f.avx512vnni) best = isa::avx512;
    // QINFER_ISA=scalar|avx2|avx512 caps the tier (never raises it): lets tests and users
    // exercise the fallback paths on a machine that has the faster ones.
    if (const char* env = std::getenv("QINFER_ISA")) {
        const std::string_view want(env);
        isa cap = best;
        if (want == "scalar") cap = isa::scalar;
        else if (want == "avx2") cap = isa::avx2;
        else if (want == "avx512") cap = isa::avx512;
        if (static_cast<int>(cap) < static_cast<int>(best)) best = cap;
    }
    return best;
}

inline isa& active_isa_ref() noexcept {
    static isa current = detect_isa();
    return current;
}

}  // namespace detail

// The CPU's features, read once.
inline const cpu_features& cpu() noexcept {
    static const cpu_features f = detail::read_cpu_features();
    return f;
}

// The tier kernels dispatch to now.
inline isa active_isa() noexcept { return detail::active_isa_ref(); }

// Lower (never raise beyond what the CPU has) the tier; for tests and benchmarks.
inline void set_isa(isa want) noexcept {
    const isa best = detail::detect_isa();
    detail::active_isa_ref() = static_cast<int>(want) < static_cast<int>(best) ? want : best;
}

QINFER_NAMESPACE_END
