// qinfer/sampling/sampler.hpp — from logits to the next token: a configurable chain of
// steps (penalties, top-k, top-p, min-p, temperature) ending in a greedy or random pick.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <deque>
#include <memory>
#include <random>
#include <span>
#include <sstream>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../core/error.hpp"

QINFER_NAMESPACE_BEGIN

struct token_candidate {
    std::int32_t id;
    float logit;
    float p;  // filled by steps that need probabilities
};

// The order every step ranks candidates by: higher logit first, and on equal logits the
// lower token id first. It is a total order (NaN logits aside), so any selection algorithm
// gives the same ranking a stable sort of the vocabulary in id order would.
inline bool ranks_before(const token_candidate& a, const token_candidate& b) {
    return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

// The working set a chain transforms: candidates, in ranking order when `sorted` (else in
// whatever order the last step left them; a fresh set is in token id order).
struct candidates {
    std::vector<token_candidate> items;
    bool sorted = false;

    void sort() {
        if (sorted) return;
        std::sort(items.begin(), items.end(), ranks_before);
        sorted = true;
    }
    // Softmax over the current logits into p. Leaves the order alone; the sum runs in the
    // current order (in ranking order once sorted, as everything the chain keeps is).
    void softmax() {
        if (items.empty()) return;
        float max = items[0].logit;
        if (!sorted)
            for (const auto& c : items) max = std::max(max, c.logit);
        double sum = 0;
        for (auto& c : items) sum += (c.p = std::exp(c.logit - max));
        for (auto& c : items) c.p = float(c.p / sum);
    }
};

class sampler_step {
public:
    virtual ~sampler_step() = default;
    virtual void apply(candidates& c) = 0;
    // A shortcut for the first step of a chain: builds into `out` what apply would make of
    // the fresh candidate set (every token, in id order) straight from the logits, without
    // building that set. False where the step has none; the chain then builds the set.
    virtual bool apply_to_logits(std::span<const float> /*logits*/, candidates& /*out*/) { return false; }
    virtual void accept(std::int32_t /*token*/) {}
    virtual void reset() {}
    // The tokens a stateful step remembers (penalties: the last accepted ones), to save a
    // chain's state and restore it; stateless steps have none.
    virtual std::vector<std::int32_t> history() const { return {}; }
    virtual void set_history(std::span<const std::int32_t> /*tokens*/) {}
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
    std::vector<std::int32_t> history() const override { return {recent_.begin(), recent_.end()}; }
    void set_history(std::span<const std::int32_t> tokens) override {
        recent_.clear();
        for (std::int32_t t : tokens) accept(t);
    }

private:
    int last_n_;
    float repeat_, frequency_, presence_;
    std::deque<std::int32_t> recent_;
};

// The k best candidates, in ranking order. One pass keeps the k best seen so far in a heap
// whose top is the worst of them: over a large vocabulary nearly every candidate is
// rejected by one comparison with that top, so this costs about one read of the logits.
class top_k final : public sampler_step {
public:
    explicit top_k(int k) : k_(k) {}
    void apply(candidates& c) override {
        if (k_ <= 0 || std::size_t(k_) >= c.items.size()) return;
        const std::size_t k = std::size_t(k_);
        if (c.sorted) { c.items.resize(k); return; }
        heap_.assign(c.items.begin(), c.items.begin() + std::ptrdiff_t(k));
        std::make_heap(heap_.begin(), heap_.end(), ranks_before);
        for (std::size_t i = k; i < c.items.size(); ++i) {
            if (!ranks_before(c.items[i], heap_.front())) continue;
            std::pop_heap(heap_.begin(), heap_.end(), ranks_before);
            heap_.back() = c.items[i];
            std::push_heap(heap_.begin(), heap_.end(), ranks_before);
        }
        std::sort_heap(heap_.begin(), heap_.end(), ranks_before);
        c.items.assign(heap_.begin(), heap_.end());
        c.sorted = true;
    }
    // The same pass over the raw logits: a later token with a logit equal to the heap's
    // worst ranks after it (higher id), so a plain `>` decides.
    bool apply_to_logits(std::span<const float> logits, candidates& out) override {
        if (k_ <= 0 || std::size_t(k_) >= logits.size()) return false;
        const std::size_t k = std::size_t(k_);
        heap_.resize(k);
        for (std::size_t i = 0; i < k; ++i) heap_[i] = {std::int32_t(i), logits[i], 0.0f};
        std::make_heap(heap_.begin(), heap_.end(), ranks_before);
        float worst = heap_.front().logit;
        const float* x = logits.data();
        const std::size_t n = logits.size();
        for (std::size_t b = k; b < n; b += 64) {  // blocks of 64: most hold no logit above `worst`
            const std::size_t e = std::min(n, b + 64);
            float m = worst;
            for (std::size_t i = b; i < e; ++i) m = x[i] > m ? x[i] : m;  // vectorizes
            if (!(m > worst)) continue;
            for (std::size_t i = b; i < e; ++i) {
                if (!(x[i] > worst)) continue;
                std::pop_heap(heap_.begin(), heap_.end(), ranks_before);
                heap_.back() = {std::int32_t(i), x[i], 0.0f};
                std::push_heap(heap_.begin(), heap_.end(), ranks_before);
                worst = heap_.front().logit;
            }
        }
        std::sort_heap(heap_.begin(), heap_.end(), ranks_before);
        out.items.assign(heap_.begin(), heap_.end());
        out.sorted = true;
        return true;
    }

private:
    int k_;
    std::vector<token_candidate> heap_;
};

// Smallest set of most likely tokens whose probabilities sum to at least p. Sorts only as
// much of the ranking as the sum needs: a first block, then blocks four times larger.
class top_p final : public sampler_step {
public:
    explicit top_p(float p) : p_(p) {}
    void apply(candidates& c) override {
        if (p_ >= 1.0f || c.items.empty()) return;
        c.softmax();
        const std::size_t n = c.items.size();
        double cum = 0;
        std::size_t done = 0, block = c.sorted ? n : std::min<std::size_t>(n, 256);
        for (;;) {
            if (!c.sorted) {  // rank items[done, block): all of them come after items[0, done)
                std::partial_sort(c.items.begin() + std::ptrdiff_t(done), c.items.begin() + std::ptrdiff_t(block),
                                  c.items.end(), ranks_before);
                if (block == n) c.sorted = true;
            }
            for (; done < block; ++done) {
                cum += c.items[done].p;
                if (cum >= p_) {
                    c.items.resize(done + 1);
                    c.sorted = true;
                    return;
                }
            }
            if (block == n) return;
            block = std::min(n, block * 4);
        }
    }

private:
    float p_;
};

// Drops tokens less likely than min_p times the most likely one (always keeps the most
// likely). The survivors are a prefix of the ranking, so only they are sorted.
class min_p final : public sampler_step {
public:
    explicit min_p(float p) : p_(p) {}
    void apply(candidates& c) override {
        if (p_ <= 0.0f || c.items.empty()) return;
        c.softmax();
        if (c.sorted) {
            const float floor = c.items[0].p * p_;
            std::size_t keep = 1;
            while (keep < c.items.size() && c.items[keep].p >= floor) ++keep;
            c.items.resize(keep);
            return;
        }
        const auto best = std::min_element(c.items.begin(), c.items.end(), ranks_before);
        const float floor = best->p * p_;
        if (floor > best->p) {  // p > 1: only the most likely survives
            const token_candidate only = *best;
            c.items.assign(1, only);
        } else {
            c.items.erase(std::remove_if(c.items.begin(), c.items.end(), [&](const auto& t) { return !(t.p >= floor); }),
                          c.items.end());
            std::sort(c.items.begin(), c.items.end(), ranks_before);
        }
        c.sorted = true;
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

    // The usual chain: penalties -> top-k -> top-p -> min-p -> temperature -> draw. The
    // penalties step is left out where all three penalties are off (it would change nothing),
    // so top-k, first, selects straight from the logits.
    static sampler_chain from_params(const sampler_params& p) {
        sampler_chain chain(p.temperature <= 0.0f, p.seed);
        if (p.repeat_last_n != 0 && (p.repeat_penalty != 1.0f || p.frequency_penalty != 0.0f || p.presence_penalty != 0.0f))
            chain.add(std::make_unique<sampling::penalties>(p.repeat_last_n, p.repeat_penalty, p.frequency_penalty,
                                                            p.presence_penalty));
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
        if (greedy_ && steps_.empty())  // first maximum: ties go to the lower id
            return std::int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
        std::size_t first = 0;
        if (!steps_.empty() && steps_[0]->apply_to_logits(logits, work_)) {
            first = 1;
        } else {
            work_.items.resize(logits.size());
            for (std::size_t i = 0; i < logits.size(); ++i) work_.items[i] = {std::int32_t(i), logits[i], 0.0f};
            work_.sorted = false;
        }
        for (std::size_t i = first; i < steps_.size(); ++i) steps_[i]->apply(work_);
        std::int32_t token;
        if (greedy_) {
            // First maximum, like llama.cpp's greedy sampler (ties go to the lower id).
            auto best = std::max_element(work_.items.begin(), work_.items.end(),
                                         [](const auto& a, const auto& b) { return a.logit < b.logit; });
            token = best->id;
        } else {
            token = draw();
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

    // The chain's state as text: the random engine's (its standard textual form, the same on
    // every standard library) and each step's history. load_state() accepts what save_state()
    // of a chain with the same steps wrote, and throws errc::format otherwise, leaving the
    // chain as it was.
    std::string save_state() const {
        std::ostringstream out;
        out << "qinfer-sampler 1 " << steps_.size() << '\n' << rng_ << '\n';
        for (const auto& st : steps_) {
            const std::vector<std::int32_t> h = st->history();
            out << h.size();
            for (std::int32_t t : h) out << ' ' << t;
            out << '\n';
        }
        return out.str();
    }
    void load_state(std::string_view text) {
        const auto bad = [](const std::string& why) { return error("qinfer: sampler state: " + why, errc::format); };
        std::istringstream in{std::string(text)};
        std::string magic;
        int version = 0;
        std::size_t n_steps = 0;
        if (!(in >> magic >> version >> n_steps) || magic != "qinfer-sampler" || version != 1)
            throw bad("not a qinfer sampler state (version 1)");
        if (n_steps != steps_.size())
            throw bad("it has " + std::to_string(n_steps) + " steps, this chain " + std::to_string(steps_.size()));
        std::mt19937_64 rng;
        if (!(in >> rng)) throw bad("the random engine's state does not parse");
        std::vector<std::vector<std::int32_t>> histories(n_steps);
        for (auto& h : histories) {
            std::size_t n = 0;
            if (!(in >> n) || n > text.size()) throw bad("a step's history length does not parse");
            h.resize(n);
            for (std::int32_t& t : h)
                if (!(in >> t) || t < 0) throw bad("a step's history holds a bad token id");
        }
        rng_ = rng;
        for (std::size_t i = 0; i < n_steps; ++i) steps_[i]->set_history(histories[i]);
    }

    // A uniform double in [0, 1) from one mt19937_64 output x: x / 2^64, x rounded to the
    // nearest double, and 1 - 2^-53 where that rounds up to 1.
    static double unit(std::mt19937_64& rng) {
        const double u = double(rng()) * 0x1.0p-64;
        return u < 1.0 ? u : 0x1.fffffffffffffp-1;
    }

private:
    // One weighted draw over the candidates in ranking order: weights p / sum(p),
    // cumulative sums c_i (the last set to exactly 1), the first i with c_i >= unit(rng_).
    // The engine's output sequence is fixed by the C++ standard and this mapping is written
    // here, so a seed gives the same tokens with every standard library; it is the mapping
    // libstdc++'s std::discrete_distribution uses, so tokens are also the same as before
    // (std::discrete_distribution itself is implementation-defined: libc++ differs).
    // Walks the ranking order: a set no step has sorted (top-k, top-p and min-p all off) is
    // sorted here, once per token, as before.
    std::int32_t draw() {
        work_.sort();
        work_.softmax();
        const std::size_t n = work_.items.size();
        if (n < 2) return work_.items[0].id;
        double total = 0;
        for (const auto& t : work_.items) total += double(t.p);
        const double u = unit(rng_);
        double cum = 0;
        for (std::size_t i = 0; i + 1 < n; ++i) {
            cum += double(work_.items[i].p) / total;
            if (cum >= u) return work_.items[i].id;
        }
        return work_.items[n - 1].id;
    }

private:
    bool greedy_;
    std::mt19937_64 rng_;
    std::vector<std::unique_ptr<sampler_step>> steps_;
    candidates work_;
};

QINFER_NAMESPACE_END
