// qinfer/model/arch.hpp — what distinguishes the supported architectures, as types.
//
// The forward pass is templated on one of these; a new llama-like architecture is a new
// traits struct, not a set of `if (arch == ...)` branches.
#pragma once

#include <string_view>

#include "../ops/rope.hpp"

QINFER_NAMESPACE_BEGIN

struct arch_llama {  // Llama 1/2/3.x, Mistral, TinyLlama, SmolLM
    static constexpr std::string_view name = "llama";
    static constexpr rope_layout rope = rope_layout::normal;
    static constexpr bool qkv_bias = false;
    static constexpr bool qk_norm = false;
};

struct arch_qwen2 {  // Qwen2 / Qwen2.5: biases on q, k, v
    static constexpr std::string_view name = "qwen2";
    static constexpr rope_layout rope = rope_layout::neox;
    static constexpr bool qkv_bias = true;
    static constexpr bool qk_norm = false;
};

struct arch_qwen3 {  // Qwen3: RMSNorm over each q and k head before RoPE
    static constexpr std::string_view name = "qwen3";
    static constexpr rope_layout rope = rope_layout::neox;
    static constexpr bool qkv_bias = false;
    static constexpr bool qk_norm = true;
};

// Calls f.template operator()<Arch>() for the architecture named in the file; false if
// the name is not supported.
template <class F>
bool visit_arch(std::string_view name, F&& f) {
    if (name == arch_llama::name) { f.template operator()<arch_llama>(); return true; }
    if (name == arch_qwen2::name) { f.template operator()<arch_qwen2>(); return true; }
    if (name == arch_qwen3::name) { f.template operator()<arch_qwen3>(); return true; }
    return false;
}

QINFER_NAMESPACE_END
