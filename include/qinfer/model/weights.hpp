// qinfer/model/weights.hpp — the model's tensors as typed views into the file mapping,
// each checked against the configuration before anything runs.
//
// One generic loader reads llama.cpp's tensor names for every architecture: what an
// architecture's traits require must be there, what is optional (biases, fused forms) is
// taken where present. Fused tensors become row slices (attn_qkv into q, k, v; phi3's
// ffn_up into gate and up) and 3-D expert tensors one [cols, rows] view per expert, so the
// forward pass only ever sees plain matrices.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../gguf/reader.hpp"
#include "../ops/matmul.hpp"
#include "../ops/tensor.hpp"
#include "arch.hpp"
#include "config.hpp"

QINFER_NAMESPACE_BEGIN

// One layer's experts: a router and, per expert, the three matrices of a gated FFN.
struct expert_weights {
    tensor_view router;                        // ffn_gate_inp: [n_embd, n_expert]
    std::vector<tensor_view> gate, up, down;   // one view per expert, sliced from the 3-D tensors
    std::vector<float> router_bias;            // biases (gpt-oss), expert-major; or empty
    std::vector<float> gate_bias, up_bias, down_bias;
    explicit operator bool() const noexcept { return bool(router); }
};

struct layer_weights {
    tensor_view wq, wk, wv, wo;              // attention projections (q/k/v may slice attn_qkv)
    std::vector<float> bq, bk, bv, bo;       // biases, where the file has them
    std::vector<float> attn_norm, ffn_norm;  // pre-norms
    std::vector<float> attn_post_norm, ffn_post_norm;  // post-norms (gemma's sandwich, olmo2)
    std::vector<float> q_norm, k_norm;       // q/k RMSNorm: per head (qwen3, gemma3) or whole (olmo2)
    std::vector<float> attn_sinks;           // per-head sink logits (gpt-oss)
    tensor_view w_gate, w_up, w_down;        // dense gated FFN (gate/up may halve a fused ffn_up)
    expert_weights experts;                  // mixture of experts instead of the dense FFN
};

struct model_weights {
    tensor_view tok_embd;
    tensor_view output;                  // == tok_embd when the embeddings are tied
    std::vector<float> output_norm;
    std::vector<float> rope_freqs;       // llama3-style per-pair frequency divisors, or empty
    std::vector<float> rope_long, rope_short;  // phi3 LongRoPE divisors (long past n_ctx_orig)
    std::vector<layer_weights> layers;
};

// Rows [r0, r0 + n) of a matrix as a matrix of its own (rows are contiguous in every format).
inline tensor_view row_slice(const tensor_view& t, std::int64_t r0, std::int64_t n) noexcept {
    tensor_view s = t;
    s.ne = {t.ne[0], n, 1, 1};
    s.data = t.data + r0 * t.row_bytes();
    return s;
}

namespace detail {

inline std::string shape_string(const std::array<std::int64_t, 4>& ne, int n) {
    std::string s = "[";
    for (int i = 0; i < n; ++i) s += (i ? ", " : "") + std::to_string(ne[std::size_t(i)]);
    return s + "]";
}

class weight_loader {
public:
    weight_loader(const gguf::reader& r) : r_(r) {}

    bool has(const std::string& name) const { return r_.find_tensor(name) != nullptr; }

    // A matrix of shape [cols, rows, n_mat] (ggml order; n_mat 1 for 2-D) usable as a matmul weight.
    tensor_view matrix(const std::string& name, std::int64_t cols, std::int64_t rows, bool required = true,
                       std::int64_t n_mat = 1) const {
        const gguf::tensor_info* t = r_.find_tensor(name);
        if (!t) {
            if (required) throw error(r_.path() + ": missing tensor " + name);
            return {};
        }
        const int dims = n_mat > 1 ? 3 : 2;
        if (t->n_dims > dims || t->ne[0] != cols || t->ne[1] != rows || t->ne[2] != n_mat || t->ne[3] != 1)
            throw error(r_.path() + ": tensor " + name + " has shape " + shape_string(t->ne, t->n_dims) + ", expected [" +
                        std::to_string(cols) + ", " + std::to_string(rows) + (n_mat > 1 ? ", " + std::to_string(n_mat) : "") + "]");
        if (!has_kernels(t->type))
            throw error(r_.path() + ": tensor " + name + " has type " + std::string(type_name(t->type)) +
                        ", which qinfer has no kernels for");
        return tensor_view{t->type, t->ne, t->data};
    }

    // A 1-D vector of n floats (norm weights, biases), or with rows > 1 a [n, rows] matrix read
    // row after row (per-expert biases); converted to f32 if stored otherwise.
    std::vector<float> vector(const std::string& name, std::int64_t n, bool required = true, std::int64_t rows = 1) const {
        const gguf::tensor_info* t = r_.find_tensor(name);
        if (!t) {
            if (required) throw error(r_.path() + ": missing tensor " + name);
            return {};
        }
        if (t->n_elements != n * rows || t->ne[0] != n || t->ne[1] != rows)
            throw error(r_.path() + ": tensor " + name + " has shape " + shape_string(t->ne, t->n_dims) + ", expected [" +
                        std::to_string(n) + (rows > 1 ? ", " + std::to_string(rows) : "") + "]");
        if (!has_kernels(t->type))
            throw error(r_.path() + ": tensor " + name + " has unsupported type " + std::string(type_name(t->type)));
        std::vector<float> out(static_cast<std::size_t>(n * rows));
        const tensor_view v{t->type, t->ne, t->data};
        for (std::int64_t i = 0; i < rows; ++i) dequantize_row(v, i, out.data() + i * n);
        return out;
    }

    // One [cols, rows] view per expert of a 3-D tensor [cols, rows, n_expert].
    std::vector<tensor_view> experts(const std::string& name, std::int64_t cols, std::int64_t rows, std::int64_t n_expert) const {
        const tensor_view all = matrix(name, cols, rows, true, n_expert);
        std::vector<tensor_view> out;
        out.reserve(std::size_t(n_expert));
        for (std::int64_t e = 0; e < n_expert; ++e) out.push_back(row_slice(all, e * rows, rows));
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
    const std::int64_t d = c.n_embd, q_dim = c.n_head * c.head_dim, kv_dim = c.n_head_kv * c.head_dim;
    w.tok_embd = L.matrix("token_embd.weight", d, c.n_vocab);
    w.output = L.matrix("output.weight", d, c.n_vocab, false);
    if (!w.output) w.output = w.tok_embd;  // tied embeddings
    w.output_norm = L.vector("output_norm.weight", d);
    w.rope_freqs = L.vector("rope_freqs.weight", c.n_rot / 2, false);
    w.rope_long = L.vector("rope_factors_long.weight", c.n_rot / 2, false);
    w.rope_short = L.vector("rope_factors_short.weight", c.n_rot / 2, false);
    w.layers.resize(std::size_t(c.n_layer));
    for (std::int64_t i = 0; i < c.n_layer; ++i) {
        const std::string b = "blk." + std::to_string(i) + ".";
        layer_weights& l = w.layers[std::size_t(i)];
        if constexpr (Arch::norms != norm_placement::post) l.attn_norm = L.vector(b + "attn_norm.weight", d);
        if (L.has(b + "attn_qkv.weight")) {
            const tensor_view qkv = L.matrix(b + "attn_qkv.weight", d, q_dim + 2 * kv_dim);
            l.wq = row_slice(qkv, 0, q_dim);
            l.wk = row_slice(qkv, q_dim, kv_dim);
            l.wv = row_slice(qkv, q_dim + kv_dim, kv_dim);
            if (auto bias = L.vector(b + "attn_qkv.bias", q_dim + 2 * kv_dim, false); !bias.empty()) {
                l.bq.assign(bias.begin(), bias.begin() + q_dim);
                l.bk.assign(bias.begin() + q_dim, bias.begin() + q_dim + kv_dim);
                l.bv.assign(bias.begin() + q_dim + kv_dim, bias.end());
            }
        } else {
            l.wq = L.matrix(b + "attn_q.weight", d, q_dim);
            l.wk = L.matrix(b + "attn_k.weight", d, kv_dim);
            l.wv = L.matrix(b + "attn_v.weight", d, kv_dim);
            l.bq = L.vector(b + "attn_q.bias", q_dim, false);
            l.bk = L.vector(b + "attn_k.bias", kv_dim, false);
            l.bv = L.vector(b + "attn_v.bias", kv_dim, false);
        }
        l.wo = L.matrix(b + "attn_output.weight", q_dim, d);
        l.bo = L.vector(b + "attn_output.bias", d, false);
        if constexpr (Arch::qk_norm != qk_norm_kind::none) {
            const bool whole = Arch::qk_norm == qk_norm_kind::whole;
            l.q_norm = L.vector(b + "attn_q_norm.weight", whole ? q_dim : c.head_dim);
            l.k_norm = L.vector(b + "attn_k_norm.weight", whole ? kv_dim : c.head_dim);
        }
        if constexpr (Arch::attn_sinks) l.attn_sinks = L.vector(b + "attn_sinks.weight", c.n_head);
        if constexpr (Arch::norms != norm_placement::post) l.ffn_norm = L.vector(b + std::string(Arch::ffn_norm_name) + ".weight", d);
        if constexpr (Arch::norms != norm_placement::pre) {
            l.attn_post_norm = L.vector(b + "post_attention_norm.weight", d);
            l.ffn_post_norm = L.vector(b + "post_ffw_norm.weight", d);
        }
        if (c.n_expert > 0) {
            l.experts.router = L.matrix(b + "ffn_gate_inp.weight", d, c.n_expert);
            l.experts.gate = L.experts(b + "ffn_gate_exps.weight", d, c.n_ff_exp, c.n_expert);
            l.experts.up = L.experts(b + "ffn_up_exps.weight", d, c.n_ff_exp, c.n_expert);
            l.experts.down = L.experts(b + "ffn_down_exps.weight", c.n_ff_exp, d, c.n_expert);
            l.experts.router_bias = L.vector(b + "ffn_gate_inp.bias", c.n_expert, false);
            l.experts.gate_bias = L.vector(b + "ffn_gate_exps.bias", c.n_ff_exp, false, c.n_expert);
            l.experts.up_bias = L.vector(b + "ffn_up_exps.bias", c.n_ff_exp, false, c.n_expert);
            l.experts.down_bias = L.vector(b + "ffn_down_exps.bias", d, false, c.n_expert);
        } else if (!L.has(b + "ffn_gate.weight") && L.has(b + "ffn_up.weight")) {
            // phi3: gate and up fused in ffn_up, gate first
            const tensor_view up = L.matrix(b + "ffn_up.weight", d, 2 * c.n_ff);
            l.w_gate = row_slice(up, 0, c.n_ff);
            l.w_up = row_slice(up, c.n_ff, c.n_ff);
        } else {
            l.w_gate = L.matrix(b + "ffn_gate.weight", d, c.n_ff);
            l.w_up = L.matrix(b + "ffn_up.weight", d, c.n_ff);
        }
        if (c.n_expert == 0) l.w_down = L.matrix(b + "ffn_down.weight", c.n_ff, d);
    }
    return w;
}

QINFER_NAMESPACE_END
