// qinfer/sampling/sampler.hpp — from logits to the next token: a configurable chain of
// steps (penalties, top-k, top-p, min-p, temperature) ending in a greedy or random pick.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <memory>
#include <numeric>
#include <random>
#include <span>
#include <unordered_map>
#include <vector>

#include "../core/error.hpp"

QINFER_NAMESPACE_BEGIN

struct token_candidate {
    std::int32_t id;
    float logit;
    float p;  // filled by steps that need probabilities
};

// The working set a chain transforms: candidates (kept sorted by logit when `sorted`).
struct candidates {
    std::vector<token_candidate> items;
    bool sorted = false;

    void sort() {
        if (sorted) return;
        std::stable_sort(items.begin(), items.end(), [](const auto& a, const auto& b) { return a.logit > b.logit; });
        sorted = true;
    }
    // Softmax over the current logits into p (sorted, so items[0] is the most likely).
    void softmax() {
        sort();
        const float max = items.empty() ? 0.0f : items[0].logit;
        double sum = 0;
        for (auto& c : items) sum += (c.p = std::exp(c.logit - max));
        for (auto& c : items) c.p = float(c.p / sum);
    }
};

class sampler_step {
public:
    virtual ~sampler_step() = default;
    virtual void apply(candidates& c) = 0;
    virtual void accept(std::int32_t /*token*/) {}
    virtual void reset() {}
};

namespace sampling {

// Repetition (divides positive / multiplies negative logits, as llama.cpp), frequency and
// presence penalties over the last `last_n` accepted tokens.
class penalties final : public sampler_step {
public:
    penalties(int last_n, float repeat, float frequency, float presence)
        : last_n_(last_n), repeat_(repeat), frequency_(frequency), presence_(presence) {}
    void apply(candidates& c) override {
        if (recent_.empty() || (repeat_ == 1.0f && frequency_ == 0.0f && presence_ == 0.0f)) return;
        std::unordered_map<std::int32_t, int> count;
        for (std::int32_t t : recent_) ++count[t];
        for (auto& t : c.items) {
            const auto it = count.find(t.id);
            if (it == count.end()) continue;
            t.logit = t.logit <= 0 ? t.logit * repeat_ : t.logit / repeat_;
            t.logit -= float(it->second) * frequency_ + presence_;
        }
        c.sorted = false;
    }
    void accept(std::int32_t token) override {
        if (last_n_ <= 0) return;
        recent_.push_back(token);
        if (int(recent_.size()) > last_n_) recent_.pop_front();
    }
    void reset() override { recent_.clear(); }

private:
    int last_n_;
    float repeat_, frequency_, presence_;
    std::deque<std::int32_t> recent_;
};

class top_k final : public sampler_step {
public:
    explicit top_k(int k) : k_(k) {}
    void apply(candidates& c) override {
        if (k_ <= 0 || std::size_t(k_) >= c.items.size()) return;
        c.sort();
        c.items.resize(std::size_t(k_));
    }

private:
    int k_;
};

// Smallest set of most likely tokens whose probabilities sum to at least p.
class top_p final : public sampler_step {
public:
    explicit top_p(float p) : p_(p) {}
    void apply(candidates& c) override {
        if (p_ >= 1.0f || c.items.empty()) return;
        c.softmax();
        double cum = 0;
        std::size_t keep = c.items.size();
        for (std::size_t i = 0; i < c.items.size(); ++i) {
            cum += c.items[i].p;
            if (cum >= p_) { keep = i + 1; break; }
        }
        c.items.resize(keep);
    }

private:
    float p_;
};

// Drops tokens less likely than min_p times the most likely one.
class min_p final : public sampler_step {
public:
    explicit min_p(float p) : p_(p) {}
    void apply(candidates& c) override {
        if (p_ <= 0.0f || c.items.empty()) return;
        c.softmax();
        const float floor = c.items[0].p * p_;
        std::size_t keep = 1;
        while (keep < c.items.size() && c.items[keep].p >= floor) ++keep;
        c.items.resize(keep);
    }

private:
    float p_;
};

class temperature final : public sampler_step {
public:
    explicit temperature(float t) : t_(t) {}
    void apply(candidates& c) override {
        if (t_ <= 0.0f) return;
        for (auto& t : c.items) t.logit /= t_;
    }

private:
    float t_;
};

}  // namespace sampling

struct sampler_params {
    float temperature = 0.8f;   // <= 0: greedy
    int top_k = 40;             // <= 0: off
    float top_p = 0.95f;        // >= 1: off
    float min_p = 0.05f;        // <= 0: off
    int repeat_last_n = 64;
    float repeat_penalty = 1.0f;
    float frequency_penalty = 0.0f;
    float presence_penalty = 0.0f;
    std::uint64_t seed = 0x5eed;
};

// Runs its steps in order, then picks: the most likely candidate when greedy, else a draw
// from the softmax of what is left.
class sampler_chain {
public:
    explicit sampler_chain(bool greedy = true, std::uint64_t seed = 0x5eed) : greedy_(greedy), rng_(seed) {}

    // The usual chain: penalties -> top-k -> top-p -> min-p -> temperature -> draw.
    static sampler_chain from_params(const sampler_params& p) {
        sampler_chain chain(p.temperature <= 0.0f, p.seed);
        chain.add(std::make_unique<sampling::penalties>(p.repeat_last_n, p.repeat_penalty, p.frequency_penalty, p.presence_penalty));
        if (p.temperature > 0.0f) {
            chain.add(std::make_unique<sampling::top_k>(p.top_k));
            chain.add(std::make_unique<sampling::top_p>(p.top_p));
            chain.add(std::make_unique<sampling::min_p>(p.min_p));
            chain.add(std::make_unique<sampling::temperature>(p.temperature));
        }
        return chain;
    }

    sampler_chain& add(std::unique_ptr<sampler_step> step) {
        steps_.push_back(std::move(step));
        return *this;
    }

    std::int32_t sample(std::span<const float> logits) {
        if (logits.empty()) throw error("qinfer: sampling needs logits");
        work_.items.resize(logits.size());
        for (std::size_t i = 0; i < logits.size(); ++i) work_.items[i] = {std::int32_t(i), logits[i], 0.0f};
        work_.sorted = false;
        for (auto& s : steps_) s->apply(work_);
        std::int32_t token;
        if (greedy_) {
            // First maximum, like llama.cpp's greedy sampler (ties go to the lower id).
            auto best = std::max_element(work_.items.begin(), work_.items.end(),
                                         [](const auto& a, const auto& b) { return a.logit < b.logit; });
            token = best->id;
        } else {
            work_.softmax();
            std::vector<float> w(work_.items.size());
            for (std::size_t i = 0; i < w.size(); ++i) w[i] = work_.items[i].p;
            std::discrete_distribution<std::size_t> pick(w.begin(), w.end());
            token = work_.items[pick(rng_)].id;
        }
        return token;
    }

    // Tells stateful steps (penalties) which token was actually used.
    void accept(std::int32_t token) {
        for (auto& s : steps_) s->accept(token);
    }

    void reset() {
        for (auto& s : steps_) s->reset();
    }

private:
    bool greedy_;
    std::mt19937_64 rng_;
    std::vector<std::unique_ptr<sampler_step>> steps_;
    candidates work_;
};

QINFER_NAMESPACE_END
