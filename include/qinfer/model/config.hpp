// qinfer/model/config.hpp — hyper-parameters from a GGUF file's `<arch>.*` keys: the model-wide
// ones, and the per-layer settings (sliding window, RoPE base, experts) read once into a
// `layer_config` per layer, so the forward pass never asks the file again.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../gguf/reader.hpp"
#include "../ops/moe.hpp"
#include "../ops/rope.hpp"

QINFER_NAMESPACE_BEGIN

// What one layer does differently from the next (gemma's local / global layers).
struct layer_config {
    std::int64_t window = 0;         // sliding-window attention: query p sees keys p-window+1 .. p; 0 = all
    float rope_freq_base = 10000.0f;
    float rope_freq_scale = 1.0f;    // 1 / linear scaling factor
    bool rope = true;                // false: no positional rotation in this layer (smollm3's NoPE layers)
};

struct model_config {
    std::string arch;           // general.architecture
    std::int64_t n_ctx_train = 0;
    std::int64_t n_embd = 0;
    std::int64_t n_layer = 0;
    std::int64_t n_ff = 0;      // dense feed-forward width
    std::int64_t n_head = 0;
    std::int64_t n_head_kv = 0;
    std::int64_t head_dim = 0;  // per-head key/value width (may differ from n_embd / n_head)
    std::int64_t n_vocab = 0;
    std::int64_t n_rot = 0;
    float rms_eps = 1e-5f;
    float rope_freq_base = 10000.0f;
    float rope_freq_scale = 1.0f;
    float rope_attn_factor = 1.0f;       // multiplies RoPE's cos / sin (rope.scaling.attn_factor)
    std::int64_t n_ctx_orig = 0;         // rope.scaling.original_context_length (long / short factors, YaRN)
    bool rope_yarn = false;              // rope.scaling.type yarn: YaRN's ramp with beta_fast 32, beta_slow 1

    // Attention: scores = softcap(q_scale·q · k) · kq_scale, then softmax.
    float q_scale = 1.0f;                // applied to the query before the cache's rounding (gemma, phi3)
    float kq_scale = 0.0f;               // 0: 1 / sqrt(head_dim)
    float attn_softcap = 0.0f;           // s -> cap · tanh(s / cap); 0 = off
    float final_softcap = 0.0f;          // the same on the output logits
    float embd_scale = 1.0f;             // multiplies the token embeddings (gemma: sqrt(n_embd); granite)
    float residual_scale = 1.0f;         // multiplies each block's output before the residual add (granite)
    float logit_scale = 1.0f;            // the output logits are multiplied by 1 / logit_scale (granite)

    // Mixture of experts (0 experts: a dense feed-forward).
    std::int64_t n_expert = 0;
    std::int64_t n_expert_used = 0;
    std::int64_t n_ff_exp = 0;           // each expert's feed-forward width
    bool expert_weights_norm = true;     // renormalise the chosen experts' weights to sum 1
    expert_gating gating = expert_gating::softmax;

    std::vector<layer_config> layers;
};

namespace detail {

// Reads an integer hyper-parameter stored as any integer type (writers differ: u32 / i32 / u64).
inline std::optional<std::int64_t> get_int(const gguf::reader& r, const std::string& key) {
    const auto t = r.type_of(key);
    if (!t) return std::nullopt;
    switch (*t) {
    case gguf::value_type::u8: return std::int64_t(*r.get<std::uint8_t>(key));
    case gguf::value_type::i8: return std::int64_t(*r.get<std::int8_t>(key));
    case gguf::value_type::u16: return std::int64_t(*r.get<std::uint16_t>(key));
    case gguf::value_type::i16: return std::int64_t(*r.get<std::int16_t>(key));
    case gguf::value_type::u32: return std::int64_t(*r.get<std::uint32_t>(key));
    case gguf::value_type::i32: return std::int64_t(*r.get<std::int32_t>(key));
    case gguf::value_type::u64: {
        const std::uint64_t v = *r.get<std::uint64_t>(key);
        if (v > std::uint64_t(INT64_MAX)) break;
        return std::int64_t(v);
    }
    case gguf::value_type::i64: return *r.get<std::int64_t>(key);
    default: break;
    }
    throw error(r.path() + ": key " + key + " must be an integer");
}

inline std::int64_t require_positive(const gguf::reader& r, const std::string& key) {
    const auto v = get_int(r, key);
    if (!v) throw error(r.path() + ": missing hyper-parameter " + key);
    if (*v <= 0 || *v > (std::int64_t(1) << 31)) throw error(r.path() + ": hyper-parameter " + key + " = " + std::to_string(*v) + " is out of range");
    return *v;
}

// An optional integer within [lo, hi]; out of range is an error naming the key.
inline std::optional<std::int64_t> get_int_in(const gguf::reader& r, const std::string& key, std::int64_t lo, std::int64_t hi) {
    const auto v = get_int(r, key);
    if (v && (*v < lo || *v > hi))
        throw error(r.path() + ": hyper-parameter " + key + " = " + std::to_string(*v) + " is out of range [" +
                    std::to_string(lo) + ", " + std::to_string(hi) + "]");
    return v;
}

inline std::optional<float> get_float(const gguf::reader& r, const std::string& key) {
    const auto t = r.type_of(key);
    if (!t) return std::nullopt;
    float v = 0;
    if (*t == gguf::value_type::f32) v = *r.get<float>(key);
    else if (*t == gguf::value_type::f64) v = float(*r.get<double>(key));
    else throw error(r.path() + ": key " + key + " must be a float");
    if (!std::isfinite(v)) throw error(r.path() + ": key " + key + " must be finite");
    return v;
}

// A positive float (a soft-cap, a window, a base): 0 or negative is an error naming the key.
inline std::optional<float> get_positive_float(const gguf::reader& r, const std::string& key) {
    const auto v = get_float(r, key);
    if (v && !(*v > 0.0f)) throw error(r.path() + ": key " + key + " must be > 0");
    return v;
}

// The keys every llama-like architecture shares; the architecture's traits add the rest.
inline model_config read_common_config(const gguf::reader& r, std::string arch) {
    model_config c;
    c.arch = std::move(arch);
    const std::string p = c.arch + ".";
    c.n_embd = require_positive(r, p + "embedding_length");
    c.n_layer = require_positive(r, p + "block_count");
    // Every layer has tensors: a count the file cannot back is refused before anything is sized from it.
    if (std::uint64_t(c.n_layer) > r.tensors().size())
        throw error(r.path() + ": " + p + "block_count = " + std::to_string(c.n_layer) + " but the file holds only " +
                    std::to_string(r.tensors().size()) + " tensors");
    c.n_head = require_positive(r, p + "attention.head_count");
    c.n_head_kv = get_int(r, p + "attention.head_count_kv").value_or(c.n_head);
    // llama.cpp reads it as a u32; sessions take at most 4096 of it unless asked for more.
    c.n_ctx_train = get_int_in(r, p + "context_length", 1, std::int64_t(UINT32_MAX)).value_or(2048);
    if (c.n_head_kv <= 0 || c.n_head % c.n_head_kv != 0)
        throw error(r.path() + ": " + p + "attention.head_count_kv = " + std::to_string(c.n_head_kv) +
                    " must divide attention.head_count = " + std::to_string(c.n_head));
    c.head_dim = get_int(r, p + "attention.key_length").value_or(c.n_embd / c.n_head);
    const auto vlen = get_int(r, p + "attention.value_length").value_or(c.head_dim);
    if (vlen != c.head_dim) throw error(r.path() + ": attention.value_length != key_length is not supported");
    if (c.head_dim <= 0 || c.head_dim > 512 || c.head_dim % 2 != 0)
        throw error(r.path() + ": head dimension " + std::to_string(c.head_dim) + " must be even and at most 512");
    c.n_rot = get_int(r, p + "rope.dimension_count").value_or(c.head_dim);
    if (c.n_rot <= 0 || c.n_rot > c.head_dim || c.n_rot % 2 != 0)
        throw error(r.path() + ": " + p + "rope.dimension_count = " + std::to_string(c.n_rot) + " must be even and <= head dimension");
    c.rms_eps = get_float(r, p + "attention.layer_norm_rms_epsilon").value_or(1e-5f);
    c.rope_freq_base = get_positive_float(r, p + "rope.freq_base").value_or(10000.0f);
    if (const auto type = r.get<std::string_view>(p + "rope.scaling.type"); type && *type != "none") {
        if (*type != "linear" && *type != "yarn")
            throw error(r.path() + ": rope scaling '" + std::string(*type) + "' is not supported (none, linear, yarn)",
                        errc::unsupported);
        const float factor = get_float(r, p + "rope.scaling.factor").value_or(1.0f);
        if (!(factor > 0.0f)) throw error(r.path() + ": " + p + "rope.scaling.factor must be > 0");
        c.rope_freq_scale = 1.0f / factor;
        c.rope_yarn = *type == "yarn";
    } else if (const auto factor = get_positive_float(r, p + "rope.scale_linear")) {
        c.rope_freq_scale = 1.0f / *factor;
    }
    c.rope_attn_factor = get_positive_float(r, p + "rope.scaling.attn_factor").value_or(1.0f);
    if (c.rope_yarn && r.contains(p + "rope.scaling.yarn_log_multiplier"))
        throw error(r.path() + ": " + p + "rope.scaling.yarn_log_multiplier is not supported", errc::unsupported);
    if (c.rope_yarn) {
        // llama.cpp's YaRN magnitude: its context scales cos / sin by mscale(factor) and then by
        // 1 / (1 + 0.1 ln factor), which the RoPE kernel's own 1 + 0.1 ln factor undoes again;
        // the float products are kept as it computes them.
        const float factor = 1.0f / c.rope_freq_scale;
        const float mscale = factor <= 1.0f ? 1.0f : 0.1f * std::log(factor) + 1.0f;
        c.rope_attn_factor = mscale * (1.0f / (1.0f + 0.1f * std::log(factor))) * c.rope_attn_factor;
    }
    c.n_ctx_orig = get_int_in(r, p + "rope.scaling.original_context_length", 1, std::int64_t(1) << 31).value_or(c.n_ctx_train);

    // Dense models have feed_forward_length; mixture-of-experts files may give only the
    // experts' width.
    c.n_expert = get_int_in(r, p + "expert_count", 0, 1024).value_or(0);
    c.n_expert_used = get_int_in(r, p + "expert_used_count", 0, 1024).value_or(0);
    if (c.n_expert > 0) {
        if (c.n_expert_used <= 0 || c.n_expert_used > std::min<std::int64_t>(c.n_expert, 64))
            throw error(r.path() + ": " + p + "expert_used_count = " + std::to_string(c.n_expert_used) +
                        " must be in [1, min(64, expert_count = " + std::to_string(c.n_expert) + ")]");
        c.n_ff = get_int_in(r, p + "feed_forward_length", 1, std::int64_t(1) << 31).value_or(0);
        c.n_ff_exp = get_int_in(r, p + "expert_feed_forward_length", 1, std::int64_t(1) << 31).value_or(0);
        if (c.n_ff_exp == 0) {
            if (c.n_ff == 0) throw error(r.path() + ": missing hyper-parameter " + p + "expert_feed_forward_length");
            c.n_ff_exp = c.n_ff;  // llama (Mixtral): the experts have the dense width
        }
    } else {
        if (c.n_expert_used != 0)
            throw error(r.path() + ": " + p + "expert_used_count = " + std::to_string(c.n_expert_used) + " without experts");
        c.n_ff = require_positive(r, p + "feed_forward_length");
    }

    // The vocabulary is the token list's length; a vocab_size key must agree with it.
    const gguf::metadata_entry* tokens = r.find("tokenizer.ggml.tokens");
    const std::optional<std::int64_t> n_tokens =
        tokens && tokens->value.is_array() ? std::optional<std::int64_t>(std::int64_t(tokens->value.size())) : std::nullopt;
    if (const auto n = get_int(r, p + "vocab_size")) {
        if (n_tokens && *n != *n_tokens)
            throw error(r.path() + ": " + p + "vocab_size = " + std::to_string(*n) + " but tokenizer.ggml.tokens holds " +
                        std::to_string(*n_tokens) + " tokens");
        c.n_vocab = *n;
    } else if (n_tokens) {
        c.n_vocab = *n_tokens;
    }

    c.layers.resize(std::size_t(c.n_layer));
    for (layer_config& l : c.layers) {
        l.rope_freq_base = c.rope_freq_base;
        l.rope_freq_scale = c.rope_freq_scale;
    }
    return c;
}

// Marks layers local (sliding window `window`) by llama.cpp's period rule: of every `period`
// layers the last is global, the others local; period 0 makes every layer local.
inline void set_window_pattern(model_config& c, std::int64_t window, std::int64_t period, float local_base, float local_scale) {
    for (std::int64_t il = 0; il < c.n_layer; ++il) {
        const bool local = period == 0 || il % period < period - 1;
        if (!local) continue;
        layer_config& l = c.layers[std::size_t(il)];
        l.window = window;
        l.rope_freq_base = local_base;
        l.rope_freq_scale = local_scale;
    }
}

}  // namespace detail

QINFER_NAMESPACE_END
