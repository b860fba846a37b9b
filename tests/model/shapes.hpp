// tests/model/shapes.hpp — the synthetic models of the conformance rows, one per architecture
// (test_quantized.cpp: dense llama / qwen2 / qwen3; test_architectures.cpp: the others),
// shared with tests/reference/, which checks the fast path against the reference on them.
#pragma once

#include "model/conformance.hpp"

namespace mtest {

// llama with a SentencePiece vocabulary and llama3-style rope_freqs.
inline synthetic_shape shape_llama() {
    synthetic_shape s{"llama", vocab("llama-spm")};
    s.rope_freqs = true;
    return s;
}

// qwen2: BPE vocabulary, q/k/v biases, tied embeddings.
inline synthetic_shape shape_qwen2() {
    synthetic_shape s{"qwen2", vocab("gpt-2")};
    s.tied = true;
    return s;
}

// qwen3: q/k norms, head_dim != n_embd / n_head.
inline synthetic_shape shape_qwen3() {
    synthetic_shape s{"qwen3", vocab("phi-3")};
    s.n_head = 8;
    s.n_head_kv = 4;
    return s;
}

// llama with experts (Mixtral-style: 4 experts, 2 used, softmax top-k renormalised).
inline synthetic_shape shape_llama_experts() {
    synthetic_shape s{"llama", vocab("llama-spm")};
    s.n_expert = 4;
    s.n_expert_used = 2;
    s.n_ff = 256;
    return s;
}

// qwen3moe: 8 experts, 2 used, expert width 128, q/k norms.
inline synthetic_shape shape_qwen3moe() {
    synthetic_shape s{"qwen3moe", vocab("gpt-2")};
    s.n_expert = 8;
    s.n_expert_used = 2;
    s.n_ff_exp = 128;
    s.n_head = 8;
    s.n_head_kv = 4;
    return s;
}

// gemma2: sandwich norms, GeGLU, scaled embeddings, soft-caps, window 8 on even layers.
inline synthetic_shape shape_gemma2() {
    synthetic_shape s{"gemma2", vocab("llama-spm")};
    s.tied = true;
    s.window = 8;
    s.attn_softcap = 2.0f;   // small enough that tanh bends the scores
    // final_logit_softcapping left to its default, 30: it bends the largest logits (sd ~6)
    return s;
}

// gemma3: q/k norms, window 8 on local layers, local RoPE base 10000, global base 1e6 scaled x2.
inline synthetic_shape shape_gemma3() {
    synthetic_shape s{"gemma3", vocab("llama-spm")};
    s.tied = true;
    s.n_layer = 3;
    s.window = 8;
    s.window_pattern = 3;    // layers 0, 1 local; 2 global
    s.rope_freq_base = 1e6f;
    s.rope_linear = 2.0f;
    return s;
}

// phi3: fused attn_qkv and gate/up, LongRoPE factors and attn_factor, ignored window.
inline synthetic_shape shape_phi3() {
    synthetic_shape s{"phi3", vocab("phi-3")};
    s.n_head_kv = 4;
    s.fused = true;
    s.rope_long_short = true;
    s.window = 8;            // llama.cpp runs phi3 with full attention whatever the file says
    return s;
}

// gpt-oss: sinks, YaRN x4, biases, clamped SwiGLU experts, softmax over the top 2, window 8
// on even layers.
inline synthetic_shape shape_gpt_oss() {
    synthetic_shape s{"gpt-oss", vocab("gpt-2")};
    s.n_head = 8;
    s.n_head_kv = 2;
    s.n_expert = 8;
    s.n_expert_used = 2;
    s.n_ff_exp = 128;
    s.window = 8;
    s.rope_yarn = 4.0f;
    s.rope_freq_base = 150000.0f;
    return s;
}

// smollm3: llama with no RoPE on layer 3 (every fourth), tied embeddings.
inline synthetic_shape shape_smollm3() {
    synthetic_shape s{"smollm3", vocab("gpt-2")};
    s.n_layer = 4;
    s.tied = true;
    return s;
}

// granite: embedding, residual, attention (softmax) and logit scales.
inline synthetic_shape shape_granite() {
    synthetic_shape s{"granite", vocab("gpt-2")};
    s.embedding_scale = 1.5f;
    s.residual_scale = 0.5f;
    s.attention_scale = 0.2f;  // in place of 1/sqrt(64)
    s.logit_scale = 2.0f;
    return s;
}

// olmo2 (OLMo 3 style with a window): post-norms only, whole-vector q/k norms, window 8 on
// layers 0-2, layer 3 global.
inline synthetic_shape shape_olmo2() {
    synthetic_shape s{"olmo2", vocab("gpt-2")};
    s.n_layer = 4;
    s.window = 8;
    return s;
}

}  // namespace mtest
