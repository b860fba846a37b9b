// tests/fuzz/model_seeds.hpp — the model fuzzer's seed corpus (tests/fuzz/corpus-model/):
// tiny valid models, a few KB each, written by qinfer's GGUF writer. n_embd 32, one layer,
// a vocabulary of a few dozen tokens built here, block-quantized weights, a chat template.
// tests/model/test_fuzz_seeds.cpp checks the committed files against these and that each
// loads, tokenizes and evaluates (QINFER_WRITE_FUZZ_SEEDS=dir rewrites them).
#pragma once

#include <cstddef>
#include <cstdint>
#include <random>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include <qinfer/gguf/writer.hpp>
#include <qinfer/quant/q4_0.hpp>
#include <qinfer/quant/q8_0.hpp>

namespace fuzzseed {

namespace gguf = qinfer::gguf;

struct tiny_shape {
    std::string arch;                 // llama, qwen2, qwen3moe, gemma2
    bool bpe = false;                 // byte-level BPE vocabulary (else SentencePiece)
    qinfer::type_id type = qinfer::type_id::q4_0;  // matrices: q4_0 or q8_0 (norms and biases stay F32)
    bool tied = true;                 // no output.weight
    std::int64_t n_expert = 0, n_expert_used = 0;
    std::string chat_template;
};

inline constexpr std::int64_t n_embd = 32, n_head = 2, n_head_kv = 1, head_dim = 16, n_ff = 32;

// SentencePiece: <unk> <s> </s>, the space mark, letters, a few merged pieces, two specials.
inline std::vector<std::string> spm_tokens() {
    std::vector<std::string> t = {"<unk>", "<s>", "</s>", "\xE2\x96\x81"};
    for (const char* p : {"a", "e", "h", "l", "o", "r", "w", "d", "H", "\n", "<0x0A>", "<0xC3>", "<0xA9>"}) t.push_back(p);
    for (const char* p : {"\xE2\x96\x81h", "el", "ll", "llo", "\xE2\x96\x81w", "or", "ld", "\xE2\x96\x81Hello", "<|im_start|>", "<|im_end|>"})
        t.push_back(p);
    return t;
}

// Byte-level BPE (GPT-2 spelling: U+0120 "Ġ" is the space, U+010A "Ċ" the newline).
inline std::vector<std::string> bpe_tokens() {
    std::vector<std::string> t;
    for (const char* p : {"a", "e", "h", "l", "o", "r", "w", "d", "H", "\xC4\xA0", "\xC4\x8A", "1", "!"}) t.push_back(p);
    for (const char* p : {"\xC4\xA0w", "or", "ld", "el", "ll", "He", "Hell", "Hello", "\xC4\xA0world", "<|endoftext|>",
                          "<|im_start|>", "<|im_end|>"})
        t.push_back(p);
    return t;
}

inline std::vector<std::string> bpe_merges() {
    return {"\xC4\xA0 w", "o r", "l d", "e l", "l l", "H e", "He ll", "Hell o", "\xC4\xA0w or", "\xC4\xA0wor ld"};
}

inline void add_vocab(gguf::writer& w, const tiny_shape& s, std::int64_t& n_vocab) {
    const std::vector<std::string> tokens = s.bpe ? bpe_tokens() : spm_tokens();
    n_vocab = std::int64_t(tokens.size());
    std::vector<std::int32_t> types(tokens.size(), 1);
    std::vector<float> scores(tokens.size(), 0.0f);
    for (std::size_t i = 0; i < tokens.size(); ++i) {
        const std::string& t = tokens[i];
        if (t.starts_with("<0x")) types[i] = 6;
        else if (t.starts_with("<|") || t == "<s>" || t == "</s>") types[i] = 3;
        else if (t == "<unk>") types[i] = 2;
        scores[i] = -float(i);
    }
    w.set("tokenizer.ggml.model", std::string(s.bpe ? "gpt2" : "llama"));
    if (s.bpe) {
        w.set("tokenizer.ggml.pre", std::string("qwen2"));
        w.set("tokenizer.ggml.merges", bpe_merges());
        w.set("tokenizer.ggml.eos_token_id", std::uint32_t(n_vocab - 3));
        w.set("tokenizer.ggml.add_bos_token", false);
    } else {
        w.set("tokenizer.ggml.scores", scores);
        w.set("tokenizer.ggml.bos_token_id", std::uint32_t(1));
        w.set("tokenizer.ggml.eos_token_id", std::uint32_t(2));
        w.set("tokenizer.ggml.unknown_token_id", std::uint32_t(0));
    }
    w.set("tokenizer.ggml.tokens", tokens);
    w.set("tokenizer.ggml.token_type", types);
    if (!s.chat_template.empty()) w.set("tokenizer.chat_template", std::string_view(s.chat_template));
}

// A row of floats in a 32-element block format.
template <class Block> std::vector<std::byte> quantized(const std::vector<float>& v) {
    std::vector<Block> q(v.size() / 32);
    qinfer::quantize_row(v.data(), q.data(), std::int64_t(v.size()));
    const auto b = std::as_bytes(std::span<const Block>(q));
    return {b.begin(), b.end()};
}

// The model as GGUF bytes; `seed` fixes the random weights.
inline std::vector<std::byte> tiny_model(const tiny_shape& s, unsigned seed) {
    gguf::writer w;
    const std::string a = s.arch, p = a + ".";
    w.set("general.architecture", a);
    w.set("general.name", "qinfer fuzz seed " + a);
    w.set(p + "context_length", std::uint32_t(64));
    w.set(p + "embedding_length", std::uint32_t(n_embd));
    w.set(p + "block_count", std::uint32_t(1));
    w.set(p + "feed_forward_length", std::uint32_t(n_ff));
    w.set(p + "attention.head_count", std::uint32_t(n_head));
    w.set(p + "attention.head_count_kv", std::uint32_t(n_head_kv));
    w.set(p + "attention.key_length", std::uint32_t(head_dim));
    w.set(p + "attention.layer_norm_rms_epsilon", 1e-5f);
    if (s.n_expert > 0) {
        w.set(p + "expert_count", std::uint32_t(s.n_expert));
        w.set(p + "expert_used_count", std::uint32_t(s.n_expert_used));
        w.set(p + "expert_feed_forward_length", std::uint32_t(n_ff));
    }
    if (a == "gemma2") {
        w.set(p + "attention.sliding_window", std::uint32_t(4));
        w.set(p + "attn_logit_softcapping", 50.0f);
        w.set(p + "final_logit_softcapping", 30.0f);
    }
    std::int64_t n_vocab = 0;
    add_vocab(w, s, n_vocab);

    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 0.3f);
    const auto f32 = [&](const std::string& name, std::int64_t n, float mean) {
        std::vector<float> v(static_cast<std::size_t>(n));
        for (float& x : v) x = mean + normal(rng);
        const std::vector<std::int64_t> ne = {n};
        w.add_tensor(name, qinfer::type_id::f32, ne, std::as_bytes(std::span<const float>(v)));
    };
    const auto matrix = [&](const std::string& name, std::vector<std::int64_t> ne) {
        std::int64_t n = 1;
        for (auto d : ne) n *= d;
        std::vector<float> v(static_cast<std::size_t>(n));
        for (float& x : v) x = normal(rng);
        const std::vector<std::byte> data = s.type == qinfer::type_id::q4_0 ? quantized<qinfer::block_q4_0>(v)
                                                                            : quantized<qinfer::block_q8_0>(v);
        w.add_tensor(name, s.type, ne, data);
    };
    const std::int64_t q_dim = n_head * head_dim, kv_dim = n_head_kv * head_dim;
    matrix("token_embd.weight", {n_embd, n_vocab});
    if (!s.tied) matrix("output.weight", {n_embd, n_vocab});
    f32("output_norm.weight", n_embd, 1.0f);
    const std::string b = "blk.0.";
    f32(b + "attn_norm.weight", n_embd, 1.0f);
    matrix(b + "attn_q.weight", {n_embd, q_dim});
    matrix(b + "attn_k.weight", {n_embd, kv_dim});
    matrix(b + "attn_v.weight", {n_embd, kv_dim});
    matrix(b + "attn_output.weight", {q_dim, n_embd});
    if (a == "qwen2") {
        f32(b + "attn_q.bias", q_dim, 0.0f);
        f32(b + "attn_k.bias", kv_dim, 0.0f);
        f32(b + "attn_v.bias", kv_dim, 0.0f);
    }
    if (a == "qwen3moe") {
        f32(b + "attn_q_norm.weight", head_dim, 1.0f);
        f32(b + "attn_k_norm.weight", head_dim, 1.0f);
    }
    if (a == "gemma2") f32(b + "post_attention_norm.weight", n_embd, 1.0f);
    f32(b + "ffn_norm.weight", n_embd, 1.0f);
    if (s.n_expert > 0) {
        matrix(b + "ffn_gate_inp.weight", {n_embd, s.n_expert});
        matrix(b + "ffn_gate_exps.weight", {n_embd, n_ff, s.n_expert});
        matrix(b + "ffn_up_exps.weight", {n_embd, n_ff, s.n_expert});
        matrix(b + "ffn_down_exps.weight", {n_ff, n_embd, s.n_expert});
    } else {
        matrix(b + "ffn_gate.weight", {n_embd, n_ff});
        matrix(b + "ffn_up.weight", {n_embd, n_ff});
        matrix(b + "ffn_down.weight", {n_ff, n_embd});
    }
    if (a == "gemma2") f32(b + "post_ffw_norm.weight", n_embd, 1.0f);
    return w.bytes();
}

// The committed seeds: file name and bytes.
inline std::vector<std::pair<std::string, std::vector<std::byte>>> model_seeds() {
    const std::string chatml =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
        "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
    const std::string gemma =
        "{{ bos_token }}{% for message in messages %}<start_of_turn>{{ message['role'] }}\n{{ message['content'] "
        "}}<end_of_turn>\n{% endfor %}";
    std::vector<std::pair<std::string, std::vector<std::byte>>> seeds;
    seeds.emplace_back("llama-spm-q4_0.gguf", tiny_model({.arch = "llama", .chat_template = chatml}, 1));
    seeds.emplace_back("qwen2-bpe-q8_0.gguf",
                       tiny_model({.arch = "qwen2", .bpe = true, .type = qinfer::type_id::q8_0, .tied = false,
                                   .chat_template = chatml},
                                  2));
    seeds.emplace_back("qwen3moe-spm-q4_0.gguf",
                       tiny_model({.arch = "qwen3moe", .n_expert = 2, .n_expert_used = 1, .chat_template = chatml}, 3));
    seeds.emplace_back("gemma2-spm-q4_0.gguf",
                       tiny_model({.arch = "gemma2", .chat_template = gemma}, 4));
    return seeds;
}

}  // namespace fuzzseed
