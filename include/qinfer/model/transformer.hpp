// qinfer/model/transformer.hpp — the forward pass of a llama-family decoder.
//
// Reads top to bottom like the architecture diagram: embed (times embd_scale), then per layer
//   x += post_norm(Wo · attention(rope(Wq·norm(x)), rope(Wk·norm(x)), Wv·norm(x)))
//   x += post_norm(ffn(norm(x)))      ffn: Wdown · (act(Wgate·h) * Wup·h), or a mixture of experts
// then the final norm, the output head and an optional soft-cap. The architecture's traits
// (`Arch`, model/arch.hpp) choose the policies at compile time — RoPE layout, norm placement,
// q/k norms, activation — and the layer_config of each layer its window and RoPE base.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

#include "../ops/activation.hpp"
#include "../ops/attention.hpp"
#include "../ops/matmul.hpp"
#include "../ops/moe.hpp"
#include "../ops/norm.hpp"
#include "../ops/rope.hpp"
#include "arch.hpp"
#include "config.hpp"
#include "kv_cache.hpp"
#include "weights.hpp"

QINFER_NAMESPACE_BEGIN

// One intermediate result, reported to a trace hook: `values` holds the vector for the
// token at absolute position `pos`. Stages, in order per layer: "attn_norm", "attn_out",
// "ffn_inp", "ffn_out", "l_out"; after the last layer "result_norm".
struct trace_event {
    int layer;  // -1 for the final norm
    std::string_view stage;
    std::int64_t pos;
    std::span<const float> values;
};
using trace_hook = std::function<void(const trace_event&)>;

// Activation buffers, sized for the largest batch seen so far.
struct forward_scratch {
    std::vector<float> x, xn, q, k, v, att, o, gate, up, scores, rope;
    matmul_scratch mm;
    moe_scratch moe;
};

namespace detail {

inline void ensure(std::vector<float>& v, std::int64_t n) {
    if (std::int64_t(v.size()) < n) v.resize(std::size_t(n));
}

inline void emit(const trace_hook* hook, int layer, std::string_view stage, std::int64_t n_past, const float* base,
                 std::int64_t n_tokens, std::int64_t width) {
    if (!hook || !*hook) return;
    for (std::int64_t t = 0; t < n_tokens; ++t)
        (*hook)(trace_event{layer, stage, n_past + t, std::span<const float>(base + t * width, std::size_t(width))});
}

inline void add_bias(float* x, const std::vector<float>& b, std::int64_t n_tokens) noexcept {
    if (b.empty()) return;
    const std::int64_t n = std::int64_t(b.size());
    for (std::int64_t t = 0; t < n_tokens; ++t)
        for (std::int64_t i = 0; i < n; ++i) x[t * n + i] += b[std::size_t(i)];
}

inline void scale(std::vector<float>& x, float k, std::int64_t n) noexcept {
    if (k == 1.0f) return;
    for (std::int64_t i = 0; i < n; ++i) x[std::size_t(i)] *= k;
}

inline void add_residual(std::vector<float>& x, const std::vector<float>& o, std::int64_t n) noexcept {
    for (std::int64_t i = 0; i < n; ++i) x[std::size_t(i)] += o[std::size_t(i)];
}

template <ffn_activation A>
inline void gated_activation(float* gate, const float* up, std::int64_t n) noexcept {
    if constexpr (A == ffn_activation::gelu_tanh) geglu(gate, up, n);
    else if constexpr (A == ffn_activation::swiglu_oai) swiglu_oai(gate, up, n);
    else swiglu(gate, up, n);
}

// The RoPE parameters of a layer with this base and scale. The long / short factors of
// phi3 follow the context length, as llama.cpp chooses them: long beyond the training one.
template <class Arch>
rope_params layer_rope(const model_config& c, const model_weights& w, std::int64_t n_ctx, float base, float scale) {
    rope_params p;
    p.layout = Arch::rope;
    p.n_rot = int(c.n_rot);
    p.attn_factor = c.rope_attn_factor;
    p.ext_factor = c.rope_yarn ? 1.0f : 0.0f;
    if (!w.rope_freqs.empty()) p.freq_factors = w.rope_freqs.data();
    else if (!w.rope_long.empty() && n_ctx > c.n_ctx_orig) p.freq_factors = w.rope_long.data();
    else if (!w.rope_short.empty()) p.freq_factors = w.rope_short.data();
    p.freq_base = base;
    p.freq_scale = scale;
    if (c.rope_yarn && base > 0.0f) rope_yarn_corr_dims(p.n_rot, c.n_ctx_orig, p.freq_base, 32.0f, 1.0f, p.corr_lo, p.corr_hi);
    return p;
}

}  // namespace detail

// Rotates the cached keys of positions [begin, end) by `delta` positions, in every layer that
// applies RoPE, with that layer's parameters: what a context shift does after moving the
// keys, as llama.cpp's K-shift does (a rotation by the position difference, composed with the
// one the key already carries; f16 keys are rounded once more).
template <class Arch>
void shift_keys(const model_config& c, const model_weights& w, kv_cache& cache, std::int64_t begin, std::int64_t end,
                std::int64_t delta) {
    std::vector<float> angles(std::size_t(c.n_rot)), key(std::size_t(cache.stride()));
    for (std::int64_t il = 0; il < c.n_layer; ++il) {
        const layer_config& lc = c.layers[std::size_t(il)];
        if (!lc.rope) continue;
        const rope_params p = detail::layer_rope<Arch>(c, w, cache.n_ctx(), lc.rope_freq_base, lc.rope_freq_scale);
        rope_angles(p, delta, angles.data());
        for (std::int64_t pos = begin; pos < end; ++pos) {
            cache.load_key(il, pos, key.data());
            rope_apply(p, angles.data(), key.data(), int(c.n_head_kv), int(c.head_dim));
            cache.store_key(il, pos, key.data());
        }
    }
}

// Runs `tokens` at positions n_past, n_past+1, ... and writes logits: for every token when
// `all_logits`, else for the last one only (n_vocab floats each).
template <class Arch>
void forward(const model_config& c, const model_weights& w, kv_cache& cache, std::span<const std::int32_t> tokens,
             std::int64_t n_past, bool all_logits, float* logits, executor& pool, forward_scratch& s,
             const trace_hook* trace = nullptr) {
    const std::int64_t n = std::int64_t(tokens.size());
    const std::int64_t d = c.n_embd, hd = c.head_dim;
    const std::int64_t q_dim = c.n_head * hd, kv_dim = c.n_head_kv * hd;
    const std::int64_t n_ff = c.n_expert > 0 ? c.n_ff_exp : c.n_ff;
    const std::int64_t group = c.n_head / c.n_head_kv;
    const std::int64_t n_ctx_used = n_past + n;
    detail::ensure(s.x, n * d);
    detail::ensure(s.xn, n * d);
    detail::ensure(s.q, n * q_dim);
    detail::ensure(s.k, n * kv_dim);
    detail::ensure(s.v, n * kv_dim);
    detail::ensure(s.att, n * q_dim);
    detail::ensure(s.o, n * d);
    detail::ensure(s.gate, n * n_ff);
    detail::ensure(s.up, n * n_ff);
    detail::ensure(s.scores, c.n_head * n_ctx_used);

    // RoPE angles per position, once for each distinct (base, scale) the layers use.
    std::vector<std::pair<float, float>> rope_kinds;  // few: one per distinct (base, scale)
    std::vector<std::size_t> rope_of(std::size_t(c.n_layer));
    for (std::int64_t il = 0; il < c.n_layer; ++il) {
        const layer_config& lc = c.layers[std::size_t(il)];
        const std::pair<float, float> kind{lc.rope_freq_base, lc.rope_freq_scale};
        auto it = std::find(rope_kinds.begin(), rope_kinds.end(), kind);
        rope_of[std::size_t(il)] = std::size_t(it - rope_kinds.begin());
        if (it == rope_kinds.end()) rope_kinds.push_back(kind);
    }
    detail::ensure(s.rope, std::int64_t(rope_kinds.size()) * n * c.n_rot);
    for (std::size_t r = 0; r < rope_kinds.size(); ++r) {
        const rope_params p = detail::layer_rope<Arch>(c, w, cache.n_ctx(), rope_kinds[r].first, rope_kinds[r].second);
        for (std::int64_t t = 0; t < n; ++t) rope_angles(p, n_past + t, s.rope.data() + (std::int64_t(r) * n + t) * c.n_rot);
    }
    const rope_params rp = detail::layer_rope<Arch>(c, w, cache.n_ctx(), 0.0f, 1.0f);  // rope_apply uses layout and n_rot only
    // --- embeddings -------------------------------------------------------------------
    for (std::int64_t t = 0; t < n; ++t) {
        const std::int32_t id = tokens[std::size_t(t)];
        if (id < 0 || id >= c.n_vocab)
            throw error("qinfer: token id " + std::to_string(id) + " is outside the vocabulary (" + std::to_string(c.n_vocab) + ")");
        dequantize_row(w.tok_embd, id, s.x.data() + t * d);
    }
    if (c.embd_scale != 1.0f)
        for (std::int64_t i = 0; i < n * d; ++i) s.x[std::size_t(i)] *= c.embd_scale;
    constexpr bool pre_norms = Arch::norms != norm_placement::post, post_norms = Arch::norms != norm_placement::pre;

    for (std::int64_t il = 0; il < c.n_layer; ++il) {
        const layer_weights& L = w.layers[std::size_t(il)];
        const layer_config& lc = c.layers[std::size_t(il)];
        const int li = int(il);
        const float* angles = s.rope.data() + std::int64_t(rope_of[std::size_t(il)]) * n * c.n_rot;

        // --- attention ----------------------------------------------------------------
        const float* attn_in = s.x.data();  // olmo2 attends to the residual stream itself
        if constexpr (pre_norms) {
            for (std::int64_t t = 0; t < n; ++t)
                rms_norm(s.x.data() + t * d, L.attn_norm.data(), s.xn.data() + t * d, d, c.rms_eps);
            attn_in = s.xn.data();
        }
        detail::emit(trace, li, "attn_norm", n_past, attn_in, n, d);
        matmul({{&L.wq, s.q.data()}, {&L.wk, s.k.data()}, {&L.wv, s.v.data()}}, attn_in, n, pool, s.mm);
        detail::add_bias(s.q.data(), L.bq, n);
        detail::add_bias(s.k.data(), L.bk, n);
        detail::add_bias(s.v.data(), L.bv, n);
        for (std::int64_t t = 0; t < n; ++t) {
            float* q = s.q.data() + t * q_dim;
            float* k = s.k.data() + t * kv_dim;
            if constexpr (Arch::qk_norm == qk_norm_kind::per_head) {
                for (std::int64_t h = 0; h < c.n_head; ++h) rms_norm(q + h * hd, L.q_norm.data(), q + h * hd, hd, c.rms_eps);
                for (std::int64_t h = 0; h < c.n_head_kv; ++h) rms_norm(k + h * hd, L.k_norm.data(), k + h * hd, hd, c.rms_eps);
            } else if constexpr (Arch::qk_norm == qk_norm_kind::whole) {
                rms_norm(q, L.q_norm.data(), q, q_dim, c.rms_eps);
                rms_norm(k, L.k_norm.data(), k, kv_dim, c.rms_eps);
            }
            if (lc.rope) {
                rope_apply(rp, angles + t * c.n_rot, q, int(c.n_head), int(hd));
                rope_apply(rp, angles + t * c.n_rot, k, int(c.n_head_kv), int(hd));
            }
            if (c.q_scale != 1.0f)
                for (std::int64_t i = 0; i < q_dim; ++i) q[i] *= c.q_scale;
            cache.store(il, n_past + t, k, s.v.data() + t * kv_dim);
        }
        const attention_params ap{c.kq_scale, c.attn_softcap, lc.window};
        auto attend_all = [&]<class T>() {
            const kv_layer_view<T> kv = cache.layer<T>(il);
            auto head = [&](int h) {
                float* scores = s.scores.data() + std::int64_t(h) * n_ctx_used;
                const float sink = L.attn_sinks.empty() ? -std::numeric_limits<float>::infinity() : L.attn_sinks[std::size_t(h)];
                for (std::int64_t t = 0; t < n; ++t)
                    attend_head(kv, s.q.data() + t * q_dim + h * hd, int(h / group), int(hd), n_past + t, ap, scores,
                                s.att.data() + t * q_dim + h * hd, sink);
            };
            if (c.n_head * n * n_ctx_used * hd < (std::int64_t(1) << 16))  // too little work to share
                for (int h = 0; h < int(c.n_head); ++h) head(h);
            else
                pool.parallel_for(int(c.n_head), head);
        };
        if (cache.type() == kv_type::f16) attend_all.template operator()<fp16>();
        else attend_all.template operator()<float>();
        matmul(L.wo, s.att.data(), n, s.o.data(), pool, s.mm);
        detail::add_bias(s.o.data(), L.bo, n);
        if constexpr (post_norms)
            for (std::int64_t t = 0; t < n; ++t)
                rms_norm(s.o.data() + t * d, L.attn_post_norm.data(), s.o.data() + t * d, d, c.rms_eps);
        detail::scale(s.o, c.residual_scale, n * d);
        detail::emit(trace, li, "attn_out", n_past, s.o.data(), n, d);
        detail::add_residual(s.x, s.o, n * d);
        detail::emit(trace, li, "ffn_inp", n_past, s.x.data(), n, d);

        // --- feed-forward -------------------------------------------------------------
        const float* ffn_in = s.x.data();
        if constexpr (pre_norms) {
            for (std::int64_t t = 0; t < n; ++t)
                rms_norm(s.x.data() + t * d, L.ffn_norm.data(), s.xn.data() + t * d, d, c.rms_eps);
            ffn_in = s.xn.data();
        }
        if (L.experts) {
            const expert_weights& E = L.experts;
            const moe_layer ml{&E.router, E.router_bias, E.gate, E.up, E.down, E.gate_bias, E.up_bias, E.down_bias,
                               int(c.n_expert_used), c.gating, c.expert_weights_norm};
            moe_ffn(ml, ffn_in, n, d, s.o.data(), detail::gated_activation<Arch::activation>, pool, s.mm, s.moe);
        } else {
            matmul({{&L.w_gate, s.gate.data()}, {&L.w_up, s.up.data()}}, ffn_in, n, pool, s.mm);
            detail::gated_activation<Arch::activation>(s.gate.data(), s.up.data(), n * n_ff);
            matmul(L.w_down, s.gate.data(), n, s.o.data(), pool, s.mm);
        }
        if constexpr (post_norms)
            for (std::int64_t t = 0; t < n; ++t)
                rms_norm(s.o.data() + t * d, L.ffn_post_norm.data(), s.o.data() + t * d, d, c.rms_eps);
        detail::scale(s.o, c.residual_scale, n * d);
        detail::emit(trace, li, "ffn_out", n_past, s.o.data(), n, d);
        detail::add_residual(s.x, s.o, n * d);
        detail::emit(trace, li, "l_out", n_past, s.x.data(), n, d);
    }

    // --- output head ------------------------------------------------------------------
    const std::int64_t first = all_logits ? 0 : n - 1;
    for (std::int64_t t = first; t < n; ++t)
        rms_norm(s.x.data() + t * d, w.output_norm.data(), s.xn.data() + t * d, d, c.rms_eps);
    detail::emit(trace, -1, "result_norm", n_past + first, s.xn.data() + first * d, n - first, d);
    matmul(w.output, s.xn.data() + first * d, n - first, logits, pool, s.mm);
    if (c.logit_scale != 1.0f) {
        const float inv = 1.0f / c.logit_scale;
        for (std::int64_t i = 0; i < (n - first) * c.n_vocab; ++i) logits[i] *= inv;
    }
    softcap(logits, (n - first) * c.n_vocab, c.final_softcap);
}

QINFER_NAMESPACE_END
