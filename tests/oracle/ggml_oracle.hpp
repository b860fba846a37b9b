// tests/oracle/ggml_oracle.hpp — llama.cpp's own ggml functions, loaded with dlopen from the
// npm package @node-llama-cpp/linux-x64@3.21.1 (installed by oracle/install.sh).
//
// Only the handful of declarations the tests need are written here, from the layouts in
// ggml.h / ggml-cpu.h of the matching llama.cpp source (v0.4.0 bundle).
#pragma once

#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>

#include <qinfer/core/cpu.hpp>

#include "../skip.hpp"

namespace oracle {

using to_float_fn = void (*)(const void* x, float* y, std::int64_t k);
using from_float_fn = void (*)(const float* x, void* y, std::int64_t k);
using vec_dot_fn = void (*)(int n, float* s, std::size_t bs, const void* x, std::size_t bx,
                            const void* y, std::size_t by, int nrc);

struct type_traits {  // struct ggml_type_traits
    const char* type_name;
    std::int64_t blck_size;
    std::int64_t blck_size_interleave;
    std::size_t type_size;
    bool is_quantized;
    to_float_fn to_float;
    from_float_fn from_float_ref;
};

struct type_traits_cpu {  // struct ggml_type_traits_cpu
    from_float_fn from_float;
    vec_dot_fn vec_dot;
    int vec_dot_type;  // enum ggml_type
    std::int64_t nrows;
};

struct ggml {
    void* base = nullptr;
    void* cpu = nullptr;
    void* cpu_baseline = nullptr;  // the x64 variant: plain C built without FMA contraction
    std::string cpu_variant;
    std::string why_missing;

    const type_traits* (*get_type_traits)(int) = nullptr;
    const type_traits_cpu* (*get_type_traits_cpu)(int) = nullptr;
    std::size_t (*quantize_chunk)(int type, const float* src, void* dst, std::int64_t start,
                                  std::int64_t nrows, std::int64_t n_per_row, const float* imatrix) = nullptr;
    void (*cpu_init)() = nullptr;

    bool loaded() const { return base && cpu && get_type_traits && get_type_traits_cpu && quantize_chunk; }

    // A symbol of the CPU library by name, or null.
    template <class F> F cpu_symbol(const char* name) const {
        return cpu ? reinterpret_cast<F>(dlsym(cpu, name)) : nullptr;
    }
    // A generic C kernel (e.g. "ggml_vec_dot_q4_0_q8_0_generic") from the baseline x64
    // build: the variant builds compile the same C with FMA contraction, which changes
    // rounding, so only the baseline build is an exact oracle for qinfer's scalar twins.
    template <class F> F generic_symbol(const char* name) const {
        return cpu_baseline ? reinterpret_cast<F>(dlsym(cpu_baseline, name)) : nullptr;
    }
    template <class F> F base_symbol(const char* name) const {
        return base ? reinterpret_cast<F>(dlsym(base, name)) : nullptr;
    }
};

inline std::string lib_dir() {
    if (const char* d = std::getenv("QINFER_ORACLE_DIR")) return d;
#ifdef QINFER_ORACLE_DIR
    return std::string(QINFER_ORACLE_DIR);
#else
    return "oracle";
#endif
}

// The best CPU variant this machine can run, as ggml's own loader would choose.
inline std::string pick_cpu_variant() {
    if (const char* v = std::getenv("QINFER_GGML_CPU_VARIANT")) return v;
    const qinfer::cpu_features& f = qinfer::cpu();
    const bool avx512 = f.avx512f && f.avx512bw && f.avx512vl && f.avx512dq;
    if (avx512 && f.avx512vnni && f.avx512bf16 && f.avx512vbmi) return "zen4";
    if (avx512) return "skylakex";
    if (f.avx2 && f.fma && f.f16c) return "haswell";
    return "x64";  // sse42 would need one more cpuid bit; the baseline build is always safe
}

inline const ggml& load() {
    static const ggml g = [] {
        ggml r;
        const std::string dir = lib_dir() + "/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64";
        const std::string base_path = dir + "/libggml-base.so";
        if (!std::filesystem::exists(base_path)) {
            r.why_missing = "llama.cpp libraries not found at " + dir +
                            " (the oracle-install test installs them with npm)";
            return r;
        }
        r.base = dlopen(base_path.c_str(), RTLD_NOW | RTLD_GLOBAL);
        if (!r.base) { r.why_missing = dlerror(); return r; }
        r.cpu_variant = pick_cpu_variant();
        const std::string cpu_path = dir + "/libggml-cpu-" + r.cpu_variant + ".so";
        r.cpu = dlopen(cpu_path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!r.cpu) { r.why_missing = dlerror(); return r; }
        r.cpu_baseline = dlopen((dir + "/libggml-cpu-x64.so").c_str(), RTLD_NOW | RTLD_LOCAL);
        if (r.cpu_baseline) {
            if (auto init = reinterpret_cast<void (*)()>(dlsym(r.cpu_baseline, "ggml_cpu_init"))) init();
        }
        r.get_type_traits = reinterpret_cast<decltype(r.get_type_traits)>(dlsym(r.base, "ggml_get_type_traits"));
        r.quantize_chunk = reinterpret_cast<decltype(r.quantize_chunk)>(dlsym(r.base, "ggml_quantize_chunk"));
        r.get_type_traits_cpu = reinterpret_cast<decltype(r.get_type_traits_cpu)>(dlsym(r.cpu, "ggml_get_type_traits_cpu"));
        r.cpu_init = reinterpret_cast<decltype(r.cpu_init)>(dlsym(r.cpu, "ggml_cpu_init"));
        if (r.cpu_init) r.cpu_init();  // fills the fp16 tables the CPU kernels read
        if (!r.loaded()) r.why_missing = "a ggml symbol is missing from " + dir;
        else std::printf("oracle: llama.cpp ggml from %s (cpu variant %s)\n", dir.c_str(), r.cpu_variant.c_str());
        return r;
    }();
    return g;
}

using qtest::required;  // tests/skip.hpp: CI or QINFER_REQUIRE_ORACLE=1

#ifndef QINFER_ORACLE_NO_DOCTEST
// The oracle, or null after a skip message (or a failure where it is required).
inline const ggml* get() {
    const ggml& g = load();
    if (g.loaded()) return &g;
    QTEST_UNAVAILABLE("llama.cpp oracle: " << g.why_missing);
    return nullptr;
}
#endif

}  // namespace oracle
