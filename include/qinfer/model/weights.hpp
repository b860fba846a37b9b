// qinfer/model/weights.hpp — the model's tensors as typed views into the file mapping,
// each checked against the configuration before anything runs.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../gguf/reader.hpp"
#include "../ops/matmul.hpp"
#include "../ops/tensor.hpp"
#include "config.hpp"

QINFER_NAMESPACE_BEGIN

struct layer_weights {
    tensor_view wq, wk, wv, wo;          // attention projections
    tensor_view w_gate, w_up, w_down;    // SwiGLU feed-forward
    std::vector<float> attn_norm, ffn_norm;
    std::vector<float> bq, bk, bv;       // qwen2
    std::vector<float> q_norm, k_norm;   // qwen3
};

struct model_weights {
    tensor_view tok_embd;
    tensor_view output;                  // == tok_embd when the embeddings are tied
    std::vector<float> output_norm;
    std::vector<float> rope_freqs;       // llama3-style per-pair frequency divisors, or empty
    std::vector<layer_weights> layers;
};

namespace detail {

inline std::string shape_string(const std::array<std::int64_t, 4>& ne, int n) {
    std::string s = "[";
    for (int i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(ne[std::size_t(i)]);
    return s + "]";
}

class weight_loader {
public:
    weight_loader(const gguf::reader& r) : r_(r) {}

    // A 2-D matrix of shape [cols, rows] (ggml order) usable as a matmul weight.
    tensor_view matrix(const std::string& name, std::int64_t cols, std::int64_t rows, bool required = true) const {
        const gguf::tensor_info* t = r_.find_tensor(name);
        if (!t) {
            if (required) throw error(r_.path() + ": missing tensor " + name);
            return {};
        }
        if (t->n_dims > 2 || t->ne[0] != cols || t->ne[1] != rows)
            throw error(r_.path() + ": tensor " + name + " has shape " + shape_string(t->ne, t->n_dims) +
                        ", expected [" + std::to_string(cols) + ", " + std::to_string(rows) + "]");
        if (!has_kernels(t->type))
            throw error(r_.path() + ": tensor " + name + " has type " + std::string(type_name(t->type)) +
                        ", which qinfer has no kernels for");
        return tensor_view{t->type, t->ne, t->data};
    }

    // A 1-D vector of n floats (norm weights, biases), converted to f32 if stored otherwise.
    std::vector<float> vector(const std::string& name, std::int64_t n, bool required = true) const {
        const gguf::tensor_info* t = r_.find_tensor(name);
        if (!t) {
            if (required) throw error(r_.path() + ": missing tensor " + name);
            return {};
        }
        if (t->n_elements != n || t->ne[0] != n)
            throw error(r_.path() + ": tensor " + name + " has shape " + shape_string(t->ne, t->n_dims) +
                        ", expected [" + std::to_string(n) + "]");
        if (!has_kernels(t->type))
            throw error(r_.path() + ": tensor " + name + " has unsupported type " + std::string(type_name(t->type)));
        std::vector<float> out(static_cast<std::size_t>(n));
        dequantize_row(tensor_view{t->type, t->ne, t->data}, 0, out.data());
        return out;
    }

private:
    const gguf::reader& r_;
};

}  // namespace detail

template <class Arch>
model_weights load_weights(const gguf::reader& r, const model_config& c) {
    const detail::weight_loader L(r);
    model_weights w;
    const std::int64_t q_dim = c.n_head * c.head_dim, kv_dim = c.n_head_kv * c.head_dim;
    w.tok_embd = L.matrix("token_embd.weight", c.n_embd, c.n_vocab);
    w.output = L.matrix("output.weight", c.n_embd, c.n_vocab, false);
    if (!w.output) w.output = w.tok_embd;  // tied embeddings
    w.output_norm = L.vector("output_norm.weight", c.n_embd);
    w.rope_freqs = L.vector("rope_freqs.weight", c.n_rot / 2, false);
    w.layers.resize(std::size_t(c.n_layer));
    for (std::int64_t i = 0; i < c.n_layer; ++i) {
        const std::string b = "blk." + std::to_string(i) + ".";
        layer_weights& l = w.layers[std::size_t(i)];
        l.attn_norm = L.vector(b + "attn_norm.weight", c.n_embd);
        l.wq = L.matrix(b + "attn_q.weight", c.n_embd, q_dim);
        l.wk = L.matrix(b + "attn_k.weight", c.n_embd, kv_dim);
        l.wv = L.matrix(b + "attn_v.weight", c.n_embd, kv_dim);
        l.wo = L.matrix(b + "attn_output.weight", q_dim, c.n_embd);
        l.ffn_norm = L.vector(b + "ffn_norm.weight", c.n_embd);
        l.w_gate = L.matrix(b + "ffn_gate.weight", c.n_embd, c.n_ff);
        l.w_up = L.matrix(b + "ffn_up.weight", c.n_embd, c.n_ff);
        l.w_down = L.matrix(b + "ffn_down.weight", c.n_ff, c.n_embd);
        if constexpr (Arch::qkv_bias) {
            l.bq = L.vector(b + "attn_q.bias", q_dim);
            l.bk = L.vector(b + "attn_k.bias", kv_dim);
            l.bv = L.vector(b + "attn_v.bias", kv_dim);
        }
        if constexpr (Arch::qk_norm) {
            l.q_norm = L.vector(b + "attn_q_norm.weight", c.head_dim);
            l.k_norm = L.vector(b + "attn_k_norm.weight", c.head_dim);
        }
    }
    return w;
}

QINFER_NAMESPACE_END
