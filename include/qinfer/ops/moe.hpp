// qinfer/ops/moe.hpp — a mixture-of-experts feed-forward block: route, then run each chosen
// expert on the tokens that chose it.
//
// Routing is llama.cpp's: softmax gating (probabilities over all experts, the top k, their
// weights renormalised to sum 1, the sum clamped below at 2^-14) or a softmax over the top k
// logits (gpt-oss), optionally with router and expert biases. In a batch
// the tokens are grouped by expert, so each expert's weights are read once per batch, not
// once per token; the weighted expert outputs are then summed per token in the order of the
// choice (most probable first), as ggml adds them. Every product goes through `matmul`, so a
// token's result is the same alone or in a batch.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <span>
#include <vector>

#include "matmul.hpp"
#include "tensor.hpp"
#include "thread_pool.hpp"

QINFER_NAMESPACE_BEGIN

struct expert_choice {
    std::int32_t expert;
    float weight;
};

// How the router's logits become the chosen experts' weights.
enum class expert_gating {
    softmax,              // softmax over all experts, then the top k (Mixtral, Qwen3-MoE)
    softmax_over_chosen,  // the top k logits, then a softmax over those k (gpt-oss)
};

namespace detail {
// In place: v[i] = exp(v[i] - max) / sum, the sum in double (ggml's soft_max).
inline void softmax_in_place(float* v, std::int64_t n) noexcept {
    const float max = *std::max_element(v, v + n);
    double sum = 0.0;
    for (std::int64_t i = 0; i < n; ++i) sum += (v[i] = std::exp(v[i] - max));
    const float inv = float(1.0 / sum);
    for (std::int64_t i = 0; i < n; ++i) v[i] *= inv;
}
}  // namespace detail

// Chooses k of n_expert experts for one token from its router logits (overwritten with the
// selection scores). `out` receives k choices, highest score first (the lower index on a tie).
inline void route_experts(float* logits, std::int64_t n_expert, int k, expert_gating gating, bool renormalise,
                          expert_choice* out) noexcept {
    if (gating == expert_gating::softmax) detail::softmax_in_place(logits, n_expert);
    for (int j = 0; j < k; ++j) {
        std::int64_t best = -1;
        for (std::int64_t e = 0; e < n_expert; ++e) {
            bool taken = false;
            for (int i = 0; i < j; ++i) taken |= out[i].expert == e;
            if (!taken && (best < 0 || logits[e] > logits[best])) best = e;
        }
        out[j] = {std::int32_t(best), logits[best]};
    }
    if (gating == expert_gating::softmax_over_chosen) {
        float w[64] = {};  // k <= 64 is checked at load time
        for (int j = 0; j < k; ++j) w[j] = out[j].weight;
        detail::softmax_in_place(w, k);
        for (int j = 0; j < k; ++j) out[j].weight = w[j];
    }
    if (!renormalise) return;
    double total = 0.0;
    for (int j = 0; j < k; ++j) total += out[j].weight;
    const float norm = std::max(float(total), 6.103515625e-5f);
    for (int j = 0; j < k; ++j) out[j].weight /= norm;
}

struct moe_scratch {
    std::vector<float> logits, xg, gate, up, down, slots;
    std::vector<expert_choice> choice;
    std::vector<std::int64_t> members;  // (token * k + slot) of the tokens routed to one expert
};

// The experts of one layer, as views: router [d, n_expert], and per expert gate / up
// [d, n_ff] and down [n_ff, d]; biases (gpt-oss) expert-major, or empty.
struct moe_layer {
    const tensor_view* router;
    std::span<const float> router_bias;            // [n_expert]
    std::span<const tensor_view> gate, up, down;
    std::span<const float> gate_bias, up_bias;     // [n_expert][n_ff]
    std::span<const float> down_bias;              // [n_expert][d]
    int n_used;
    expert_gating gating;
    bool renormalise;
};

// rows[i][:] += bias[e][:] for m rows of width n (no-op without a bias).
inline void add_expert_bias(float* rows, std::span<const float> bias, std::int64_t e, std::int64_t m, std::int64_t n) noexcept {
    if (bias.empty()) return;
    const float* b = bias.data() + e * n;
    for (std::int64_t i = 0; i < m; ++i)
        for (std::int64_t j = 0; j < n; ++j) rows[i * n + j] += b[j];
}

// y (n_tokens x d) = sum over each token's chosen experts of weight * down(act(gate x) * up x).
// `act(gate, up, n)` applies the gated activation in place over gate.
template <class Act>
void moe_ffn(const moe_layer& L, const float* x, std::int64_t n_tokens, std::int64_t d, float* y, Act&& act,
             executor& pool, matmul_scratch& mm, moe_scratch& s) {
    const std::int64_t n_expert = L.router->rows();
    const int k = L.n_used;
    const std::int64_t n_ff = L.gate[0].rows();
    s.logits.resize(std::size_t(n_tokens * n_expert));
    s.choice.resize(std::size_t(n_tokens * k));
    s.slots.resize(std::size_t(n_tokens * k * d));
    matmul(*L.router, x, n_tokens, s.logits.data(), pool, mm);
    for (std::int64_t t = 0; t < n_tokens; ++t) {
        float* logits = s.logits.data() + t * n_expert;
        if (!L.router_bias.empty())
            for (std::int64_t e = 0; e < n_expert; ++e) logits[e] += L.router_bias[std::size_t(e)];
        route_experts(logits, n_expert, k, L.gating, L.renormalise, s.choice.data() + t * k);
    }

    for (std::int64_t e = 0; e < n_expert; ++e) {
        s.members.clear();
        for (std::int64_t i = 0; i < n_tokens * k; ++i)
            if (s.choice[std::size_t(i)].expert == e) s.members.push_back(i);
        if (s.members.empty()) continue;
        const std::int64_t m = std::int64_t(s.members.size());
        s.xg.resize(std::size_t(m * d));
        s.gate.resize(std::size_t(m * n_ff));
        s.up.resize(std::size_t(m * n_ff));
        s.down.resize(std::size_t(m * d));
        for (std::int64_t i = 0; i < m; ++i) {
            const std::int64_t t = s.members[std::size_t(i)] / k;
            std::copy(x + t * d, x + (t + 1) * d, s.xg.begin() + i * d);
        }
        const tensor_view& g = L.gate[std::size_t(e)];
        const tensor_view& u = L.up[std::size_t(e)];
        matmul({{&g, s.gate.data()}, {&u, s.up.data()}}, s.xg.data(), m, pool, mm);
        add_expert_bias(s.gate.data(), L.gate_bias, e, m, n_ff);
        add_expert_bias(s.up.data(), L.up_bias, e, m, n_ff);
        act(s.gate.data(), s.up.data(), m * n_ff);
        matmul(L.down[std::size_t(e)], s.gate.data(), m, s.down.data(), pool, mm);
        add_expert_bias(s.down.data(), L.down_bias, e, m, d);
        for (std::int64_t i = 0; i < m; ++i) {
            const std::int64_t slot = s.members[std::size_t(i)];
            const float wgt = s.choice[std::size_t(slot)].weight;
            float* dst = s.slots.data() + slot * d;
            const float* src = s.down.data() + i * d;
            for (std::int64_t j = 0; j < d; ++j) dst[j] = src[j] * wgt;
        }
    }
    for (std::int64_t t = 0; t < n_tokens; ++t) {
        float* out = y + t * d;
        const float* first = s.slots.data() + t * k * d;
        std::copy(first, first + d, out);
        for (int j = 1; j < k; ++j) {
            const float* src = s.slots.data() + (t * k + j) * d;
            for (std::int64_t i = 0; i < d; ++i) out[i] += src[i];
        }
    }
}

QINFER_NAMESPACE_END
