// qinfer/model/config.hpp — hyper-parameters from a GGUF file's `<arch>.*` keys.
#pragma once

#include <cstdint>
#include <string>

#include "../core/error.hpp"
#include "../gguf/reader.hpp"
#include "arch.hpp"

QINFER_NAMESPACE_BEGIN

struct model_config {
    std::string arch;           // general.architecture
    std::int64_t n_ctx_train = 0;
    std::int64_t n_embd = 0;
    std::int64_t n_layer = 0;
    std::int64_t n_ff = 0;
    std::int64_t n_head = 0;
    std::int64_t n_head_kv = 0;
    std::int64_t head_dim = 0;  // per-head key/value width (may differ from n_embd / n_head)
    std::int64_t n_vocab = 0;
    std::int64_t n_rot = 0;
    float rms_eps = 1e-5f;
    float rope_freq_base = 10000.0f;
    float rope_freq_scale = 1.0f;
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

inline std::optional<float> get_float(const gguf::reader& r, const std::string& key) {
    const auto t = r.type_of(key);
    if (!t) return std::nullopt;
    if (*t == gguf::value_type::f32) return *r.get<float>(key);
    if (*t == gguf::value_type::f64) return float(*r.get<double>(key));
    throw error(r.path() + ": key " + key + " must be a float");
}

}  // namespace detail

// Reads and checks the hyper-parameters; throws qinfer::error naming the missing or
// inconsistent key.
inline model_config read_config(const gguf::reader& r) {
    model_config c;
    const auto arch = r.get<std::string_view>("general.architecture");
    if (!arch) throw error(r.path() + ": missing key general.architecture");
    c.arch = std::string(*arch);
    if (!visit_arch(c.arch, []<class>() {}))
        throw error(r.path() + ": unsupported architecture '" + c.arch + "' (supported: llama, qwen2, qwen3)");
    const std::string p = c.arch + ".";
    c.n_embd = detail::require_positive(r, p + "embedding_length");
    c.n_layer = detail::require_positive(r, p + "block_count");
    c.n_ff = detail::require_positive(r, p + "feed_forward_length");
    c.n_head = detail::require_positive(r, p + "attention.head_count");
    c.n_head_kv = detail::get_int(r, p + "attention.head_count_kv").value_or(c.n_head);
    c.n_ctx_train = detail::get_int(r, p + "context_length").value_or(2048);
    if (c.n_head_kv <= 0 || c.n_head % c.n_head_kv != 0)
        throw error(r.path() + ": " + p + "attention.head_count_kv = " + std::to_string(c.n_head_kv) +
                    " must divide attention.head_count = " + std::to_string(c.n_head));
    c.head_dim = detail::get_int(r, p + "attention.key_length").value_or(c.n_embd / c.n_head);
    const auto vlen = detail::get_int(r, p + "attention.value_length").value_or(c.head_dim);
    if (vlen != c.head_dim) throw error(r.path() + ": attention.value_length != key_length is not supported");
    if (c.head_dim <= 0 || c.head_dim > 512 || c.head_dim % 2 != 0)
        throw error(r.path() + ": head dimension " + std::to_string(c.head_dim) + " must be even and at most 512");
    c.n_rot = detail::get_int(r, p + "rope.dimension_count").value_or(c.head_dim);
    if (c.n_rot <= 0 || c.n_rot > c.head_dim || c.n_rot % 2 != 0)
        throw error(r.path() + ": " + p + "rope.dimension_count = " + std::to_string(c.n_rot) + " must be even and <= head dimension");
    c.rms_eps = detail::get_float(r, p + "attention.layer_norm_rms_epsilon").value_or(1e-5f);
    c.rope_freq_base = detail::get_float(r, p + "rope.freq_base").value_or(10000.0f);
    if (const auto type = r.get<std::string_view>(p + "rope.scaling.type"); type && *type != "none") {
        if (*type != "linear") throw error(r.path() + ": rope scaling '" + std::string(*type) + "' is not supported (none, linear)");
        const float factor = detail::get_float(r, p + "rope.scaling.factor").value_or(1.0f);
        if (!(factor > 0.0f)) throw error(r.path() + ": " + p + "rope.scaling.factor must be > 0");
        c.rope_freq_scale = 1.0f / factor;
    } else if (const auto factor = detail::get_float(r, p + "rope.scale_linear")) {
        c.rope_freq_scale = 1.0f / *factor;
    }
    if (const auto n = detail::get_int(r, p + "vocab_size")) c.n_vocab = *n;
    else if (const auto tokens = r.get_array<std::string_view>("tokenizer.ggml.tokens")) c.n_vocab = std::int64_t(tokens->size());
    return c;
}

QINFER_NAMESPACE_END
