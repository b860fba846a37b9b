// qinfer/core/config.hpp — version, namespace and compiler macros shared by every header.
#pragma once

#define QINFER_VERSION_MAJOR 0
#define QINFER_VERSION_MINOR 1
#define QINFER_VERSION_PATCH 0
#define QINFER_VERSION_STRING "0.1.0"

// Everything lives in a versioned inline namespace (qinfer::v0) so that two vendored
// copies of different versions can be linked into one program without ODR clashes.
#define QINFER_NAMESPACE_BEGIN namespace qinfer { inline namespace v0 {
#define QINFER_NAMESPACE_END } }

#if defined(__GNUC__) || defined(__clang__)
#  define QINFER_ALWAYS_INLINE inline __attribute__((always_inline))
#  define QINFER_RESTRICT __restrict__
#else
#  define QINFER_ALWAYS_INLINE inline
#  define QINFER_RESTRICT
#endif

// x86 instruction-set targets for kernels chosen at run time. Functions marked with these
// compile to AVX2 / AVX-512 code even when the translation unit targets baseline x86-64;
// they are only ever called after a CPU feature check (see core/cpu.hpp).
#if (defined(__x86_64__) || defined(__i386__)) && (defined(__GNUC__) || defined(__clang__)) && !defined(QINFER_NO_RUNTIME_DISPATCH)
#  define QINFER_X86_DISPATCH 1
#  define QINFER_TARGET_AVX2 __attribute__((target("avx2,fma,f16c,bmi2")))
#  define QINFER_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma,f16c,bmi2")))
#else
#  define QINFER_X86_DISPATCH 0
#endif

// Fully unrolls the short fixed-count loops of the tile kernels: their accumulators must
// live in registers, which -O2 alone does not arrange.
#if defined(__GNUC__) || defined(__clang__)
#  define QINFER_UNROLL _Pragma("GCC unroll 16")
#else
#  define QINFER_UNROLL
#endif
