// qinfer/reference/forward.hpp — the exact reference forward pass: every architecture qinfer
// supports, written plainly as a specification, with Eigen.
//
// The same function as model/transformer.hpp's `forward` — token ids in, logits for every
// position out, the same trace stages — computed the obvious way:
//   - weights dequantized to float rows with the bit-exact `dequantize_row`, widened to double;
//   - activations in double and never rounded to a narrower type;
//   - matrix products through Eigen (`x * W^T`, one row per token);
//   - attention recomputed over the whole sequence with a full softmax, no KV cache.
// Slow on purpose (every matrix is dequantized on every call): it is an independent opinion,
// sharing nothing with the fast path but model_config / model_weights and dequantize_row.
//
// Where the fast path reproduces a rounding of ggml's, this does the exact math instead:
//   fast path (and llama.cpp)                         here
//   matmul input quantized to the weight's operand    double
//     (Q8_0 / Q8_K 8-bit blocks, fp16 for F16 weights)
//   KV cache and attention probabilities in fp16      double
//   GELU of an fp16-rounded input, from an fp16 table the tanh formula
//   RoPE angles by a float recurrence                 pos * base^(-2i/n_rot) in double
// so the two agree to the size of those roundings (tests/reference/ derives the bounds).
//
// Use:
//   qinfer::model m("model.gguf");
//   const std::vector<std::int32_t> tokens = {1, 15043, 3186};
//   std::vector<float> logits = qinfer::reference::forward(m, tokens);  // tokens.size() x n_vocab
#pragma once

#include <Eigen/Dense>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <numeric>
#include <span>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../model/config.hpp"
#include "../model/model.hpp"
#include "../model/transformer.hpp"
#include "../model/weights.hpp"
#include "../ops/matmul.hpp"

QINFER_NAMESPACE_BEGIN

namespace reference {

using matrix = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;  // one row per token
using row_vector = Eigen::RowVectorXd;

// What each architecture does beyond a llama block (llama.cpp's llm_build_<arch>):
//   llama     RoPE on adjacent pairs, RMSNorm before attention and FFN, SwiGLU; a mixture of
//             experts where the file has a router (Mixtral)
//   qwen2     RoPE on NeoX pairs; biases on q, k, v (taken wherever a file has biases)
//   qwen3     NeoX RoPE; an RMSNorm over each q and each k head before RoPE
//   qwen3moe  qwen3's attention, a mixture of experts always
//   gemma2    NeoX RoPE; "sandwich" norms (a second RMSNorm after attention and after the
//             FFN); GeGLU; embeddings times sqrt(n_embd); scores and logits soft-capped;
//             sliding-window attention on alternate layers
//   gemma3    gemma2's block with q/k norms instead of the score soft-cap; 5 local layers
//             (window, RoPE base 10000) to 1 global
//   phi3      NeoX RoPE; fused qkv and gate/up (the loader splits them); LongRoPE factors
// The numbers (embedding scale, query scale, soft-caps, windows, per-layer RoPE base) are
// the file's, read into model_config by the loader.
struct arch_spec {
    bool neox_rope = true;   // rotate (i, i + n_rot/2) rather than (2i, 2i + 1)
    bool sandwich = false;   // post-norms on the attention and FFN outputs
    bool gelu = false;       // GeGLU rather than SwiGLU
    bool qk_norm = false;    // per-head RMSNorm of q and k before RoPE
};

inline arch_spec spec_of(const std::string& arch) {
    if (arch == "llama") return {.neox_rope = false};
    if (arch == "qwen2" || arch == "phi3") return {};
    if (arch == "qwen3" || arch == "qwen3moe") return {.qk_norm = true};
    if (arch == "gemma2") return {.sandwich = true, .gelu = true};
    if (arch == "gemma3") return {.sandwich = true, .gelu = true, .qk_norm = true};
    throw error("qinfer::reference: no reference for architecture '" + arch + "'");
}

// --- building blocks ---------------------------------------------------------------------

// A weight matrix as [outputs x inputs], each row dequantized exactly as stored.
inline matrix dequantize(const tensor_view& w) {
    Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor> f(w.rows(), w.cols());
    for (std::int64_t r = 0; r < w.rows(); ++r) dequantize_row(w, r, f.row(r).data());
    return f.cast<double>();
}

inline row_vector as_row(const std::vector<float>& v) {
    return Eigen::Map<const Eigen::RowVectorXf>(v.data(), Eigen::Index(v.size())).cast<double>();
}

// y = x W^T + b: each token's row through the matrix, plus the bias where there is one.
inline matrix linear(const matrix& x, const tensor_view& w, const std::vector<float>& bias = {}) {
    matrix y = x * dequantize(w).transpose();
    if (!bias.empty()) y.rowwise() += as_row(bias);
    return y;
}

// RMSNorm of each row: x / sqrt(mean(x^2) + eps) * weight.
inline matrix rms_norm(const matrix& x, const std::vector<float>& weight, double eps) {
    const row_vector w = as_row(weight);
    matrix y(x.rows(), x.cols());
    for (Eigen::Index t = 0; t < x.rows(); ++t) {
        const double rms = std::sqrt(x.row(t).squaredNorm() / double(x.cols()) + eps);
        y.row(t) = (x.row(t) / rms).cwiseProduct(w);
    }
    return y;
}

// The same RMSNorm over each head (head_dim columns) of a row on its own (qwen3, gemma3 q/k).
inline matrix rms_norm_heads(const matrix& x, std::int64_t head_dim, const std::vector<float>& weight, double eps) {
    matrix y(x.rows(), x.cols());
    for (Eigen::Index h = 0; h < x.cols() / head_dim; ++h)
        y.middleCols(h * head_dim, head_dim) = rms_norm(x.middleCols(h * head_dim, head_dim), weight, eps);
    return y;
}

// Rotary position embedding of the first n_rot dimensions of each head. Pair i of the token
// at position p turns by p * freq_scale * base^(-2i/n_rot) / factor_i radians, and cos, sin
// are multiplied by attn_factor (phi3's LongRoPE magnitude correction; 1 elsewhere).
struct rope_setting {
    bool neox;
    std::int64_t n_rot, head_dim;
    double base, freq_scale, attn_factor;
    const std::vector<float>* factors;  // per-pair divisors (llama3 rope_freqs, phi3 long/short), or null
};

inline matrix rope(const matrix& x, const rope_setting& r) {
    matrix y = x;
    for (Eigen::Index t = 0; t < x.rows(); ++t)
        for (Eigen::Index h = 0; h < x.cols() / r.head_dim; ++h)
            for (std::int64_t i = 0; i < r.n_rot / 2; ++i) {
                const double factor = r.factors ? double((*r.factors)[std::size_t(i)]) : 1.0;
                const double angle = double(t) * r.freq_scale * std::pow(r.base, -2.0 * double(i) / double(r.n_rot)) / factor;
                const double c = std::cos(angle) * r.attn_factor, s = std::sin(angle) * r.attn_factor;
                const Eigen::Index a = h * r.head_dim + (r.neox ? i : 2 * i);
                const Eigen::Index b = r.neox ? a + r.n_rot / 2 : a + 1;
                y(t, a) = x(t, a) * c - x(t, b) * s;
                y(t, b) = x(t, a) * s + x(t, b) * c;
            }
    return y;
}

// Causal grouped-query attention over the whole sequence. Query head h reads key/value head
// h / (n_head / n_head_kv). Token t sees tokens max(0, t - window + 1) .. t (all of 0 .. t
// without a window). score = kq_scale * softcap(q . k), q already times q_scale; softcap
// s -> cap * tanh(s / cap) where the file has one (gemma2); softmax; weighted sum of values.
inline matrix attention(const matrix& q, const matrix& k, const matrix& v, const model_config& c, const layer_config& lc) {
    const std::int64_t hd = c.head_dim, group = c.n_head / c.n_head_kv, n = q.rows();
    matrix out = matrix::Zero(n, c.n_head * hd);
    for (std::int64_t h = 0; h < c.n_head; ++h) {
        const std::int64_t kvh = h / group;
        for (std::int64_t t = 0; t < n; ++t) {
            const std::int64_t first = lc.window > 0 ? std::max<std::int64_t>(0, t - lc.window + 1) : 0;
            Eigen::VectorXd score(t + 1 - first);
            for (std::int64_t j = first; j <= t; ++j) {
                double s = q.row(t).segment(h * hd, hd).dot(k.row(j).segment(kvh * hd, hd));
                if (c.attn_softcap > 0.0f) s = c.attn_softcap * std::tanh(s / c.attn_softcap);
                score(j - first) = s * c.kq_scale;
            }
            const Eigen::VectorXd p = (score.array() - score.maxCoeff()).exp().matrix();
            const Eigen::VectorXd prob = p / p.sum();
            for (std::int64_t j = first; j <= t; ++j)
                out.row(t).segment(h * hd, hd) += prob(j - first) * v.row(j).segment(kvh * hd, hd);
        }
    }
    return out;
}

// The attention block: norm'd input -> q, k, v (+ biases) -> q/k norms -> RoPE -> attention
// -> output projection (+ bias) -> post-norm (gemma).
inline matrix attention_block(const matrix& xn, const layer_weights& L, const model_config& c, const layer_config& lc,
                              const arch_spec& a, const rope_setting& rs) {
    matrix q = linear(xn, L.wq, L.bq), k = linear(xn, L.wk, L.bk);
    const matrix v = linear(xn, L.wv, L.bv);
    if (a.qk_norm) {
        q = rms_norm_heads(q, c.head_dim, L.q_norm, c.rms_eps);
        k = rms_norm_heads(k, c.head_dim, L.k_norm, c.rms_eps);
    }
    q = rope(q, rs) * double(c.q_scale);
    k = rope(k, rs);
    matrix o = linear(attention(q, k, v, c, lc), L.wo, L.bo);
    if (a.sandwich) o = rms_norm(o, L.attn_post_norm, c.rms_eps);
    return o;
}

// The gated activations: SwiGLU silu(g) * u, or GeGLU gelu(g) * u with GELU's tanh form.
inline double silu(double x) { return x / (1.0 + std::exp(-x)); }
inline double gelu(double x) {
    const double sqrt_2_over_pi = 0.79788456080286535587989211986876;
    return 0.5 * x * (1.0 + std::tanh(sqrt_2_over_pi * (x + 0.044715 * x * x * x)));
}

// A dense gated FFN: down(act(gate x) * up x).
inline matrix gated_ffn(const matrix& xn, const tensor_view& gate, const tensor_view& up, const tensor_view& down, bool use_gelu) {
    const matrix g = linear(xn, gate), u = linear(xn, up);
    const matrix h = g.unaryExpr([&](double x) { return use_gelu ? gelu(x) : silu(x); }).cwiseProduct(u);
    return linear(h, down);
}

// A mixture of experts: softmax over the router's logits, the n_expert_used most probable
// experts (the lower index on a tie), their probabilities renormalised to sum 1 (if the
// model says so), and the weighted sum of those experts' gated FFNs.
inline matrix moe_ffn(const matrix& xn, const expert_weights& E, const model_config& c, bool use_gelu) {
    const matrix logits = linear(xn, E.router);
    std::vector<matrix> expert_out;  // every expert on every token: plain, if wasteful
    for (std::size_t e = 0; e < E.gate.size(); ++e) expert_out.push_back(gated_ffn(xn, E.gate[e], E.up[e], E.down[e], use_gelu));
    matrix y = matrix::Zero(xn.rows(), xn.cols());
    for (Eigen::Index t = 0; t < xn.rows(); ++t) {
        const row_vector p = (logits.row(t).array() - logits.row(t).maxCoeff()).exp().matrix();
        const row_vector prob = p / p.sum();
        std::vector<int> order(std::size_t(c.n_expert));
        std::iota(order.begin(), order.end(), 0);
        std::stable_sort(order.begin(), order.end(), [&](int i, int j) { return prob(i) > prob(j); });
        double total = 0.0;
        for (std::int64_t j = 0; j < c.n_expert_used; ++j) total += prob(order[std::size_t(j)]);
        for (std::int64_t j = 0; j < c.n_expert_used; ++j) {
            const int e = order[std::size_t(j)];
            const double weight = c.expert_weights_norm ? prob(e) / total : prob(e);
            y.row(t) += weight * expert_out[std::size_t(e)].row(t);
        }
    }
    return y;
}

// The FFN block: dense or experts, then the post-norm (gemma).
inline matrix ffn_block(const matrix& xn, const layer_weights& L, const model_config& c, const arch_spec& a) {
    matrix f = L.experts ? moe_ffn(xn, L.experts, c, a.gelu) : gated_ffn(xn, L.w_gate, L.w_up, L.w_down, a.gelu);
    if (a.sandwich) f = rms_norm(f, L.ffn_post_norm, c.rms_eps);
    return f;
}

// Reports every row of `x` (one per position) as the fast path's trace hook does.
inline void report(const trace_hook* trace, int layer, std::string_view stage, const matrix& x) {
    if (!trace || !*trace) return;
    std::vector<float> row(std::size_t(x.cols()));
    for (Eigen::Index t = 0; t < x.rows(); ++t) {
        for (Eigen::Index i = 0; i < x.cols(); ++i) row[std::size_t(i)] = float(x(t, i));
        (*trace)(trace_event{layer, stage, std::int64_t(t), row});
    }
}

struct options {
    // The context length the run is for: phi3 takes its long RoPE factors when it exceeds the
    // model's original context (as llama.cpp decides per context). 0: as a session's default,
    // the training context capped at 4096.
    std::int64_t n_ctx = 0;
    const trace_hook* trace = nullptr;  // the fast path's stages, every position
};

// --- the forward pass --------------------------------------------------------------------

// Logits (tokens.size() rows of n_vocab floats) for `tokens` at positions 0, 1, ...
inline std::vector<float> forward(const model_config& c, const model_weights& w, std::span<const std::int32_t> tokens,
                                  const options& opt = {}) {
    const arch_spec a = spec_of(c.arch);
    const std::int64_t n = std::int64_t(tokens.size()), d = c.n_embd;
    const std::int64_t n_ctx = opt.n_ctx > 0 ? opt.n_ctx : std::min<std::int64_t>(c.n_ctx_train, 4096);
    const std::vector<float>* factors = !w.rope_freqs.empty()                          ? &w.rope_freqs
                                        : !w.rope_long.empty() && n_ctx > c.n_ctx_orig ? &w.rope_long
                                        : !w.rope_short.empty()                         ? &w.rope_short
                                                                                        : nullptr;

    // Embeddings: the token's row of token_embd, times sqrt(n_embd) for gemma.
    matrix x(n, d);
    for (std::int64_t t = 0; t < n; ++t) {
        const std::int32_t id = tokens[std::size_t(t)];
        if (id < 0 || id >= c.n_vocab) throw error("qinfer::reference: token id " + std::to_string(id) + " is outside the vocabulary");
        std::vector<float> row(static_cast<std::size_t>(d));
        dequantize_row(w.tok_embd, id, row.data());
        x.row(t) = as_row(row) * double(c.embd_scale);
    }

    // Each layer: x += attention(norm(x)); x += ffn(norm(x)).
    for (std::int64_t il = 0; il < c.n_layer; ++il) {
        const layer_weights& L = w.layers[std::size_t(il)];
        const layer_config& lc = c.layers[std::size_t(il)];
        const rope_setting rs{a.neox_rope, c.n_rot, c.head_dim, lc.rope_freq_base, lc.rope_freq_scale, c.rope_attn_factor, factors};
        const int li = int(il);

        const matrix h = rms_norm(x, L.attn_norm, c.rms_eps);
        report(opt.trace, li, "attn_norm", h);
        const matrix attn = attention_block(h, L, c, lc, a, rs);
        report(opt.trace, li, "attn_out", attn);
        x += attn;
        report(opt.trace, li, "ffn_inp", x);

        const matrix f = ffn_block(rms_norm(x, L.ffn_norm, c.rms_eps), L, c, a);
        report(opt.trace, li, "ffn_out", f);
        x += f;
        report(opt.trace, li, "l_out", x);
    }

    // The head: final norm, output matrix, and the final soft-cap where the file has one (gemma2).
    const matrix xn = rms_norm(x, w.output_norm, c.rms_eps);
    report(opt.trace, -1, "result_norm", xn);
    matrix logits = linear(xn, w.output);
    if (c.final_softcap > 0.0f) logits = logits.unaryExpr([&](double v) { return c.final_softcap * std::tanh(v / c.final_softcap); });

    std::vector<float> out(std::size_t(n * c.n_vocab));
    Eigen::Map<Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(out.data(), n, c.n_vocab) = logits.cast<float>();
    return out;
}

inline std::vector<float> forward(const model& m, std::span<const std::int32_t> tokens, const options& opt = {}) {
    return forward(m.config(), m.weights(), tokens, opt);
}

}  // namespace reference

QINFER_NAMESPACE_END
