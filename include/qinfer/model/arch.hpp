// qinfer/model/arch.hpp — what distinguishes the supported architectures, as traits types.
//
// The forward pass (model/transformer.hpp) is templated on one of these, and the generic
// loader (model/weights.hpp) reads the tensors they ask for. An architecture is its policies
// (RoPE layout, norm placement, feed-forward activation, experts, q/k norms, embedding scale)
// plus `configure`, which reads the hyper-parameters only it has into the model_config.
// Adding one: a struct here, a line in `visit_arch`, a conformance row in tests/model/.
#pragma once

#include <cmath>
#include <string_view>

#include "../ops/rope.hpp"
#include "config.hpp"

QINFER_NAMESPACE_BEGIN

// Where the RMSNorms sit around attention and the feed-forward block.
enum class norm_placement {
    pre,       // x += f(norm(x))                       (llama)
    sandwich,  // x += post_norm(f(norm(x)))            (gemma2, gemma3)
    post,      // x += post_norm(f(x))                  (olmo2)
};

// RMSNorm of the queries and keys before RoPE: none, over each head (qwen3, gemma3), or over
// the whole projection at once (olmo2).
enum class qk_norm_kind { none, per_head, whole };

// The gated feed-forward activation: act(gate) * up; swiglu_oai is gpt-oss's clamped form,
// min(g, 7) * sigmoid(1.702 min(g, 7)) * (clamp(u, -7, 7) + 1).
enum class ffn_activation { silu, gelu_tanh, swiglu_oai };

// Whether the feed-forward block is dense, a mixture of experts, or either as the file says.
enum class ffn_kind { dense, experts, either };

// The defaults: a llama block.
struct arch_defaults {
    static constexpr rope_layout rope = rope_layout::normal;
    static constexpr norm_placement norms = norm_placement::pre;
    static constexpr ffn_activation activation = ffn_activation::silu;
    static constexpr ffn_kind ffn = ffn_kind::dense;
    static constexpr qk_norm_kind qk_norm = qk_norm_kind::none;
    static constexpr bool embd_scale = false;   // embeddings times sqrt(n_embd)
    static constexpr bool attn_sinks = false;   // a learned per-head sink logit in the softmax
    static constexpr std::string_view ffn_norm_name = "ffn_norm";
    static void configure(model_config&, const gguf::reader&) {}
};

struct arch_llama : arch_defaults {  // Llama 1/2/3.x, Mistral, TinyLlama, SmolLM; Mixtral (experts)
    static constexpr std::string_view name = "llama";
    static constexpr ffn_kind ffn = ffn_kind::either;
};

struct arch_qwen2 : arch_defaults {  // Qwen2 / Qwen2.5: biases on q, k, v (read where present)
    static constexpr std::string_view name = "qwen2";
    static constexpr rope_layout rope = rope_layout::neox;
};

struct arch_qwen3 : arch_defaults {  // Qwen3: RMSNorm over each q and k head before RoPE
    static constexpr std::string_view name = "qwen3";
    static constexpr rope_layout rope = rope_layout::neox;
    static constexpr qk_norm_kind qk_norm = qk_norm_kind::per_head;
};

struct arch_qwen3moe : arch_qwen3 {  // Qwen3-30B-A3B, 235B-A22B: qwen3 attention, experts only
    static constexpr std::string_view name = "qwen3moe";
    static constexpr ffn_kind ffn = ffn_kind::experts;
};

namespace detail {
// Gemma's query scale: 1/sqrt(head_dim), except for the 27B models (recognised by their
// layer count, as llama.cpp does), whose query_pre_attn_scalar is n_embd / n_head.
inline float gemma_query_scale(const model_config& c, std::int64_t layers_of_27b) {
    return c.n_layer == layers_of_27b ? 1.0f / std::sqrt(float(c.n_embd / c.n_head)) : 1.0f / std::sqrt(float(c.head_dim));
}
}  // namespace detail

struct arch_gemma2 : arch_defaults {  // Gemma 2: soft-capped attention and logits, local/global layers
    static constexpr std::string_view name = "gemma2";
    static constexpr rope_layout rope = rope_layout::neox;
    static constexpr norm_placement norms = norm_placement::sandwich;
    static constexpr ffn_activation activation = ffn_activation::gelu_tanh;
    static constexpr bool embd_scale = true;
    static void configure(model_config& c, const gguf::reader& r) {
        const std::string p = c.arch + ".";
        const auto window = detail::get_int_in(r, p + "attention.sliding_window", 1, std::int64_t(1) << 31).value_or(4096);
        const auto period = detail::get_int_in(r, p + "attention.sliding_window_pattern", 0, std::int64_t(1) << 31).value_or(2);
        const float local_base = detail::get_positive_float(r, p + "rope.freq_base_swa").value_or(c.rope_freq_base);
        detail::set_window_pattern(c, window, period, local_base, c.rope_freq_scale);
        c.attn_softcap = detail::get_positive_float(r, p + "attn_logit_softcapping").value_or(50.0f);
        c.final_softcap = detail::get_positive_float(r, p + "final_logit_softcapping").value_or(30.0f);
        c.q_scale = detail::gemma_query_scale(c, 46);
        c.kq_scale = 1.0f;
    }
};

struct arch_gemma3 : arch_defaults {  // Gemma 3: q/k norms, 5 local layers to 1 global, two RoPE bases
    static constexpr std::string_view name = "gemma3";
    static constexpr rope_layout rope = rope_layout::neox;
    static constexpr norm_placement norms = norm_placement::sandwich;
    static constexpr ffn_activation activation = ffn_activation::gelu_tanh;
    static constexpr qk_norm_kind qk_norm = qk_norm_kind::per_head;
    static constexpr bool embd_scale = true;
    static void configure(model_config& c, const gguf::reader& r) {
        const std::string p = c.arch + ".";
        // No window (or 0) means full attention everywhere, as llama.cpp reads it.
        const auto window = detail::get_int_in(r, p + "attention.sliding_window", 0, std::int64_t(1) << 31).value_or(0);
        if (window > 0) {
            const auto period = detail::get_int_in(r, p + "attention.sliding_window_pattern", 0, std::int64_t(1) << 31).value_or(6);
            // Local layers keep RoPE base 10000 and no scaling; the global ones take the file's.
            const float local_base = detail::get_positive_float(r, p + "rope.freq_base_swa").value_or(10000.0f);
            detail::set_window_pattern(c, window, period, local_base, 1.0f);
        }
        c.final_softcap = detail::get_positive_float(r, p + "final_logit_softcapping").value_or(0.0f);
        c.q_scale = detail::gemma_query_scale(c, 62);
        c.kq_scale = 1.0f;
    }
};

struct arch_phi3 : arch_defaults {  // Phi-3 / Phi-4: fused attn_qkv and gate/up, long/short RoPE factors
    static constexpr std::string_view name = "phi3";
    static constexpr rope_layout rope = rope_layout::neox;
    static void configure(model_config& c, const gguf::reader&) {
        // The file's attention.sliding_window is ignored: llama.cpp runs phi3 with full
        // attention (its Phi SWA is disabled), and qinfer gives llama.cpp's answers.
        c.q_scale = 1.0f / std::sqrt(float(c.head_dim));
        c.kq_scale = 1.0f;
    }
};

struct arch_smollm3 : arch_defaults {  // SmolLM3: llama with no RoPE on every fourth layer
    static constexpr std::string_view name = "smollm3";
    static void configure(model_config& c, const gguf::reader&) {
        for (std::int64_t il = 3; il < c.n_layer; il += 4) c.layers[std::size_t(il)].rope = false;
    }
};

struct arch_granite : arch_defaults {  // Granite 3.x: embedding, residual, attention and logit scales
    static constexpr std::string_view name = "granite";
    static constexpr ffn_kind ffn = ffn_kind::either;
    static void configure(model_config& c, const gguf::reader& r) {
        const std::string p = c.arch + ".";
        const auto logit = detail::get_positive_float(r, p + "logit_scale");
        if (!logit) throw error(r.path() + ": missing hyper-parameter " + p + "logit_scale");
        c.logit_scale = *logit;
        c.residual_scale = detail::get_positive_float(r, p + "residual_scale").value_or(1.0f);
        c.embd_scale = detail::get_positive_float(r, p + "embedding_scale").value_or(1.0f);
        c.kq_scale = detail::get_positive_float(r, p + "attention.scale").value_or(0.0f);
        if (r.contains(p + "expert_shared_feed_forward_length"))
            throw error(r.path() + ": " + p + "expert_shared_feed_forward_length (shared experts) is not supported",
                        errc::unsupported);
    }
};

struct arch_olmo2 : arch_defaults {  // OLMo 2: norms after attention and FFN only, whole-vector q/k norms
    static constexpr std::string_view name = "olmo2";
    static constexpr rope_layout rope = rope_layout::neox;
    static constexpr norm_placement norms = norm_placement::post;
    static constexpr qk_norm_kind qk_norm = qk_norm_kind::whole;
    static void configure(model_config& c, const gguf::reader& r) {
        const std::string p = c.arch + ".";
        const auto window = detail::get_int_in(r, p + "attention.sliding_window", 0, std::int64_t(1) << 31).value_or(0);
        if (window > 0) {  // OLMo 3: 3 local layers to 1 global; local layers keep the base, unscaled
            const auto period = detail::get_int_in(r, p + "attention.sliding_window_pattern", 0, std::int64_t(1) << 31).value_or(4);
            detail::set_window_pattern(c, window, period, c.rope_freq_base, 1.0f);
        }
    }
};

struct arch_gpt_oss : arch_defaults {  // gpt-oss: sinks, YaRN, clamped SwiGLU experts with biases
    static constexpr std::string_view name = "gpt-oss";
    static constexpr rope_layout rope = rope_layout::neox;
    static constexpr ffn_activation activation = ffn_activation::swiglu_oai;
    static constexpr ffn_kind ffn = ffn_kind::experts;
    static constexpr bool attn_sinks = true;
    static constexpr std::string_view ffn_norm_name = "post_attention_norm";  // the FFN's pre-norm
    static void configure(model_config& c, const gguf::reader& r) {
        const std::string p = c.arch + ".";
        const auto window = detail::get_int_in(r, p + "attention.sliding_window", 1, std::int64_t(1) << 31);
        if (!window) throw error(r.path() + ": missing hyper-parameter " + p + "attention.sliding_window");
        const auto period = detail::get_int_in(r, p + "attention.sliding_window_pattern", 0, std::int64_t(1) << 31).value_or(2);
        const float local_base = detail::get_positive_float(r, p + "rope.freq_base_swa").value_or(c.rope_freq_base);
        detail::set_window_pattern(c, *window, period, local_base, c.rope_freq_scale);
        c.kq_scale = 1.0f / std::sqrt(float(c.n_rot));
        c.gating = expert_gating::softmax_over_chosen;
        c.expert_weights_norm = false;
    }
};

// Calls f.template operator()<Arch>() for the architecture named in the file; false if
// the name is not supported.
template <class F>
bool visit_arch(std::string_view name, F&& f) {
    if (name == arch_llama::name) { f.template operator()<arch_llama>(); return true; }
    if (name == arch_qwen2::name) { f.template operator()<arch_qwen2>(); return true; }
    if (name == arch_qwen3::name) { f.template operator()<arch_qwen3>(); return true; }
    if (name == arch_qwen3moe::name) { f.template operator()<arch_qwen3moe>(); return true; }
    if (name == arch_gemma2::name) { f.template operator()<arch_gemma2>(); return true; }
    if (name == arch_gemma3::name) { f.template operator()<arch_gemma3>(); return true; }
    if (name == arch_phi3::name) { f.template operator()<arch_phi3>(); return true; }
    if (name == arch_gpt_oss::name) { f.template operator()<arch_gpt_oss>(); return true; }
    if (name == arch_smollm3::name) { f.template operator()<arch_smollm3>(); return true; }
    if (name == arch_granite::name) { f.template operator()<arch_granite>(); return true; }
    if (name == arch_olmo2::name) { f.template operator()<arch_olmo2>(); return true; }
    return false;
}

inline constexpr std::string_view supported_architectures = "llama, qwen2, qwen3, qwen3moe, gemma2, gemma3, phi3, gpt-oss, smollm3, granite, olmo2";

// Reads and checks the hyper-parameters; throws qinfer::error naming the missing or
// inconsistent key.
inline model_config read_config(const gguf::reader& r) {
    const auto arch = r.get<std::string_view>("general.architecture");
    if (!arch) throw error(r.path() + ": missing key general.architecture");
    model_config c;
    const bool known = visit_arch(*arch, [&]<class Arch>() {
        c = detail::read_common_config(r, std::string(*arch));
        if (Arch::ffn == ffn_kind::dense && c.n_expert > 0)
            throw error(r.path() + ": architecture " + c.arch + " has no experts, but " + c.arch + ".expert_count = " +
                        std::to_string(c.n_expert));
        if (Arch::ffn == ffn_kind::experts && c.n_expert == 0)
            throw error(r.path() + ": architecture " + c.arch + " needs " + c.arch + ".expert_count > 0");
        Arch::configure(c, r);
        if (Arch::embd_scale) c.embd_scale = std::sqrt(float(c.n_embd));
    });
    if (!known)
        throw error(r.path() + ": unsupported architecture '" + std::string(*arch) + "' (supported: " +
                    std::string(supported_architectures) + ")", errc::unsupported);
    if (c.kq_scale == 0.0f) c.kq_scale = 1.0f / std::sqrt(float(c.head_dim));
    return c;
}

QINFER_NAMESPACE_END
