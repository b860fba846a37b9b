// tests/model/synthetic.hpp — small random models in the shapes of the supported
// architectures, with a real vocabulary, written by qinfer's GGUF writer.
//
// Weights are scaled so activations keep unit size through the layers and the output
// logits have a standard deviation near 6: next-token distributions are peaked, so greedy
// choices are not decided by rounding (N(0, 0.02) weights give near-flat logits where the
// argmax flips on the last bit).
#pragma once

#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <span>
#include <string>
#include <vector>

#include <qinfer/gguf/reader.hpp>
#include <qinfer/gguf/writer.hpp>

namespace mtest {

struct synthetic_shape {
    std::string arch;       // llama, qwen2, qwen3, qwen3moe, gemma2, gemma3, phi3, gpt-oss
    std::string vocab_file; // a vocabulary GGUF from ../shared/refdata/vocab
    std::int64_t n_embd = 256, n_layer = 2, n_head = 4, n_head_kv = 2, head_dim = 64, n_ff = 768;
    bool tied = false;      // no output.weight: the head reuses token_embd
    bool rope_freqs = false;// llama3-style per-pair frequency factors
    // Mixture of experts: n_expert > 0 writes a router and 3-D expert tensors instead of the
    // dense FFN; n_ff_exp > 0 also writes expert_feed_forward_length (qwen3moe), else the
    // experts have width n_ff (Mixtral).
    std::int64_t n_expert = 0, n_expert_used = 0, n_ff_exp = 0;
    float router_sd = 6.0f; // router logits' standard deviation: peaked, so top-k is rarely a near-tie
    std::int64_t window = 0;          // attention.sliding_window (0: no key)
    std::int64_t window_pattern = 0;  // attention.sliding_window_pattern (0: no key)
    float attn_softcap = 0, final_softcap = 0;  // *_logit_softcapping keys (0: no key)
    float rope_freq_base = 10000.0f;
    float rope_linear = 0;            // rope.scaling.type linear with this factor (0: no key)
    bool fused = false;               // attn_qkv and a gate/up ffn_up (phi3)
    bool rope_long_short = false;     // rope_factors_long / _short, original context 128, attn_factor (phi3)
    float rope_yarn = 0;              // rope.scaling.type yarn with this factor, original context 64 (gpt-oss)
    float logit_scale = 0, residual_scale = 0, embedding_scale = 0, attention_scale = 0;  // granite keys (0: none)
    std::int64_t n_expert_tensors = 0;  // experts in the 3-D tensors, if not n_expert (malformed files)
    std::function<void(qinfer::gguf::writer&)> edit = {};  // last changes to the metadata (malformed files)
};

inline void write_synthetic(const synthetic_shape& s, const std::string& path, unsigned seed) {
    namespace gguf = qinfer::gguf;
    const gguf::reader vocab(s.vocab_file);
    const auto tokens = vocab.require_array<std::string_view>("tokenizer.ggml.tokens");
    const std::int64_t n_vocab = std::int64_t(tokens.size());

    gguf::writer w;
    const std::string a = s.arch;
    w.set("general.architecture", a);
    w.set("general.name", "qinfer synthetic " + a);
    w.set(a + ".context_length", std::uint32_t(512));
    w.set(a + ".embedding_length", std::uint32_t(s.n_embd));
    w.set(a + ".block_count", std::uint32_t(s.n_layer));
    w.set(a + ".feed_forward_length", std::uint32_t(s.n_ff));
    w.set(a + ".attention.head_count", std::uint32_t(s.n_head));
    w.set(a + ".attention.head_count_kv", std::uint32_t(s.n_head_kv));
    w.set(a + ".attention.key_length", std::uint32_t(s.head_dim));
    w.set(a + ".attention.value_length", std::uint32_t(s.head_dim));
    w.set(a + ".rope.dimension_count", std::uint32_t(s.head_dim));
    w.set(a + ".rope.freq_base", s.rope_freq_base);
    if (s.n_expert > 0) {
        w.set(a + ".expert_count", std::uint32_t(s.n_expert));
        w.set(a + ".expert_used_count", std::uint32_t(s.n_expert_used));
        if (s.n_ff_exp > 0) w.set(a + ".expert_feed_forward_length", std::uint32_t(s.n_ff_exp));
    }
    if (s.window > 0) w.set(a + ".attention.sliding_window", std::uint32_t(s.window));
    if (s.window_pattern > 0) w.set(a + ".attention.sliding_window_pattern", std::uint32_t(s.window_pattern));
    if (s.attn_softcap > 0) w.set(a + ".attn_logit_softcapping", s.attn_softcap);
    if (s.final_softcap > 0) w.set(a + ".final_logit_softcapping", s.final_softcap);
    if (s.rope_linear > 0) {
        w.set(a + ".rope.scaling.type", std::string("linear"));
        w.set(a + ".rope.scaling.factor", s.rope_linear);
    }
    if (s.logit_scale > 0) w.set(a + ".logit_scale", s.logit_scale);
    if (s.residual_scale > 0) w.set(a + ".residual_scale", s.residual_scale);
    if (s.embedding_scale > 0) w.set(a + ".embedding_scale", s.embedding_scale);
    if (s.attention_scale > 0) w.set(a + ".attention.scale", s.attention_scale);
    if (s.rope_yarn > 0) {
        w.set(a + ".rope.scaling.type", std::string("yarn"));
        w.set(a + ".rope.scaling.factor", s.rope_yarn);
        w.set(a + ".rope.scaling.original_context_length", std::uint32_t(64));
    }
    if (s.rope_long_short) {
        w.set(a + ".rope.scaling.original_context_length", std::uint32_t(128));
        w.set(a + ".rope.scaling.attn_factor", 1.1902380714238083f);
    }
    w.set(a + ".attention.layer_norm_rms_epsilon", 1e-5f);
    w.set("general.file_type", std::uint32_t(0));
    for (const auto& e : vocab.metadata())
        if (e.key.substr(0, 10) == "tokenizer.") w.set(std::string(e.key), e.value);

    std::mt19937 rng(seed);
    std::normal_distribution<float> normal;
    auto tensor = [&](const std::string& name, std::vector<std::int64_t> ne, auto gen) {
        std::int64_t n = 1;
        for (auto d : ne) n *= d;
        std::vector<float> v(static_cast<std::size_t>(n));
        for (auto& x : v) x = gen();
        w.add_tensor(name, qinfer::type_id::f32, ne, std::as_bytes(std::span<const float>(v)));
    };
    auto gauss = [&](float sd) { return [&, sd] { return normal(rng) * sd; }; };
    auto near_one = [&] { return 1.0f + 0.1f * normal(rng); };
    const std::int64_t q_dim = s.n_head * s.head_dim, kv_dim = s.n_head_kv * s.head_dim;
    const float in_sd = 1.0f / std::sqrt(float(s.n_embd));

    // Tied models read logits off the embeddings, so those get the output head's scale.
    // Gemma multiplies the embeddings by sqrt(n_embd) and post-norms every block output to
    // unit size: its embeddings get sd 1/sqrt(n_embd) (so the stream starts at unit size
    // too, not dominated by the token's own embedding) and the output norm the head's x6.
    const bool sandwich = s.arch == "gemma2" || s.arch == "gemma3";
    const float embd_sd = sandwich ? in_sd : s.tied ? 6.0f * in_sd : 1.0f;
    tensor("token_embd.weight", {s.n_embd, n_vocab}, gauss(embd_sd));
    tensor("output_norm.weight", {s.n_embd}, [&] { return (sandwich ? 6.0f : 1.0f) * near_one(); });
    if (!s.tied) tensor("output.weight", {s.n_embd, n_vocab}, gauss(6.0f * in_sd));
    if (s.rope_freqs) {
        int i = 0;
        tensor("rope_freqs.weight", {s.head_dim / 2}, [&] { return 1.0f + float(i++ % 8); });
    }
    if (s.rope_long_short) {
        int i = 0, j = 0;
        tensor("rope_factors_long.weight", {s.head_dim / 2}, [&] { return 1.0f + 0.5f * float(i++); });
        tensor("rope_factors_short.weight", {s.head_dim / 2}, [&] { return 1.0f + 0.05f * float(j++); });
    }
    const bool olmo2 = s.arch == "olmo2";      // post-norms only, whole-vector q/k norms
    const bool qk_norm = s.arch == "qwen3" || s.arch == "qwen3moe" || s.arch == "gemma3" || olmo2;
    const bool gpt_oss = s.arch == "gpt-oss";  // biases everywhere, sinks, its FFN norm's name
    const std::int64_t n_ff_exp = s.n_ff_exp > 0 ? s.n_ff_exp : s.n_ff;
    for (std::int64_t l = 0; l < s.n_layer; ++l) {
        const std::string b = "blk." + std::to_string(l) + ".";
        if (!olmo2) tensor(b + "attn_norm.weight", {s.n_embd}, near_one);
        if (s.fused) {
            tensor(b + "attn_qkv.weight", {s.n_embd, q_dim + 2 * kv_dim}, gauss(in_sd));
        } else {
            tensor(b + "attn_q.weight", {s.n_embd, q_dim}, gauss(in_sd));
            tensor(b + "attn_k.weight", {s.n_embd, kv_dim}, gauss(in_sd));
            tensor(b + "attn_v.weight", {s.n_embd, kv_dim}, gauss(in_sd));
        }
        tensor(b + "attn_output.weight", {q_dim, s.n_embd}, gauss(1.0f / std::sqrt(float(q_dim))));
        if (sandwich || olmo2) tensor(b + "post_attention_norm.weight", {s.n_embd}, near_one);
        if (gpt_oss) {
            tensor(b + "attn_output.bias", {s.n_embd}, gauss(0.2f));
            tensor(b + "attn_sinks.weight", {s.n_head}, gauss(1.0f));
        }
        if (s.arch == "qwen2" || gpt_oss) {
            tensor(b + "attn_q.bias", {q_dim}, gauss(0.2f));
            tensor(b + "attn_k.bias", {kv_dim}, gauss(0.2f));
            tensor(b + "attn_v.bias", {kv_dim}, gauss(0.2f));
        }
        if (qk_norm) {
            tensor(b + "attn_q_norm.weight", {olmo2 ? q_dim : s.head_dim}, near_one);
            tensor(b + "attn_k_norm.weight", {olmo2 ? kv_dim : s.head_dim}, near_one);
        }
        if (!olmo2) tensor(b + (gpt_oss ? "post_attention_norm.weight" : "ffn_norm.weight"), {s.n_embd}, near_one);
        if (s.n_expert > 0) {
            tensor(b + "ffn_gate_inp.weight", {s.n_embd, s.n_expert}, gauss(s.router_sd * in_sd));
            if (gpt_oss) {
                tensor(b + "ffn_gate_inp.bias", {s.n_expert}, gauss(0.5f));
                tensor(b + "ffn_gate_exps.bias", {n_ff_exp, s.n_expert}, gauss(0.2f));
                tensor(b + "ffn_up_exps.bias", {n_ff_exp, s.n_expert}, gauss(0.2f));
                tensor(b + "ffn_down_exps.bias", {s.n_embd, s.n_expert}, gauss(0.2f));
            }
            const std::int64_t ne = s.n_expert_tensors > 0 ? s.n_expert_tensors : s.n_expert;
            tensor(b + "ffn_gate_exps.weight", {s.n_embd, n_ff_exp, ne}, gauss(in_sd));
            tensor(b + "ffn_up_exps.weight", {s.n_embd, n_ff_exp, ne}, gauss(in_sd));
            tensor(b + "ffn_down_exps.weight", {n_ff_exp, s.n_embd, ne}, gauss(1.0f / std::sqrt(float(n_ff_exp))));
        } else if (s.fused) {
            tensor(b + "ffn_up.weight", {s.n_embd, 2 * s.n_ff}, gauss(in_sd));
            tensor(b + "ffn_down.weight", {s.n_ff, s.n_embd}, gauss(1.0f / std::sqrt(float(s.n_ff))));
        } else {
            tensor(b + "ffn_gate.weight", {s.n_embd, s.n_ff}, gauss(in_sd));
            tensor(b + "ffn_up.weight", {s.n_embd, s.n_ff}, gauss(in_sd));
            tensor(b + "ffn_down.weight", {s.n_ff, s.n_embd}, gauss(1.0f / std::sqrt(float(s.n_ff))));
        }
        if (sandwich || olmo2) tensor(b + "post_ffw_norm.weight", {s.n_embd}, near_one);
    }
    if (s.edit) s.edit(w);
    w.write(path);
}

}  // namespace mtest
