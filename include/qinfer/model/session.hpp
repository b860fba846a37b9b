// qinfer/model/session.hpp — one conversation with a model: its KV cache, scratch memory
// and position. Sessions share the (read-only) model; each is used by one thread at a time.
#pragma once

#include <algorithm>
#include <memory>
#include <span>
#include <vector>

#include "../core/error.hpp"
#include "../ops/thread_pool.hpp"
#include "model.hpp"

QINFER_NAMESPACE_BEGIN

struct session_options {
    std::int64_t n_ctx = 0;      // 0: the model's training context, capped at 4096
    int n_threads = 0;           // 0: all hardware threads (ignored when `pool` is given)
    kv_type cache_type = kv_type::f16;
    executor* pool = nullptr;    // the host's executor, or null for a pool of our own
};

class session {
public:
    explicit session(std::shared_ptr<const model> m, session_options opt = {}) : model_(std::move(m)) {
        if (!model_) throw error("qinfer: session needs a model");
        const model_config& c = model_->config();
        n_ctx_ = opt.n_ctx > 0 ? opt.n_ctx : std::min<std::int64_t>(c.n_ctx_train, 4096);
        cache_ = kv_cache(c.n_layer, n_ctx_, c.n_head_kv, c.head_dim, opt.cache_type);
        if (opt.pool) pool_ = opt.pool;
        else {
            own_pool_ = std::make_unique<thread_pool>(opt.n_threads);
            pool_ = own_pool_.get();
        }
    }

    const model& get_model() const noexcept { return *model_; }
    std::int64_t n_ctx() const noexcept { return n_ctx_; }
    std::int64_t n_past() const noexcept { return n_past_; }
    int n_threads() const noexcept { return pool_->concurrency(); }
    void reset() noexcept { n_past_ = 0; }

    // Reports every layer's intermediate results from the next eval on (empty: off).
    void set_trace(trace_hook hook) { trace_ = std::move(hook); }

    // Appends tokens to the context and returns the next-token logits after the last one.
    std::span<const float> eval(std::span<const std::int32_t> tokens) { return run(tokens, false); }

    // Same, returning n_vocab logits for every token (row t predicts the token after t).
    std::span<const float> eval_all(std::span<const std::int32_t> tokens) { return run(tokens, true); }

    // Forgets positions >= n (keeps the first n), e.g. to retry a generation.
    void truncate(std::int64_t n) {
        if (n < 0 || n > n_past_) throw error("qinfer: cannot truncate a context of " + std::to_string(n_past_) + " tokens to " + std::to_string(n));
        n_past_ = n;
    }

private:
    static constexpr std::int64_t max_batch = 512;

    std::span<const float> run(std::span<const std::int32_t> tokens, bool all) {
        if (tokens.empty()) throw error("qinfer: eval needs at least one token");
        const std::int64_t n = std::int64_t(tokens.size());
        if (n_past_ + n > n_ctx_)
            throw error("qinfer: context full: " + std::to_string(n_past_) + " + " + std::to_string(n) +
                        " tokens exceed the session's n_ctx of " + std::to_string(n_ctx_));
        const std::int64_t n_vocab = model_->config().n_vocab;
        logits_.resize(std::size_t((all ? n : 1) * n_vocab));
        // Long prompts run in batches so scratch memory stays bounded.
        for (std::int64_t done = 0; done < n;) {
            const std::int64_t b = std::min(max_batch, n - done);
            float* out = all ? logits_.data() + done * n_vocab : logits_.data();
            model_->run(cache_, tokens.subspan(std::size_t(done), std::size_t(b)), n_past_, all, out, *pool_, scratch_,
                        trace_ ? &trace_ : nullptr);
            n_past_ += b;
            done += b;
        }
        return logits_;
    }

    std::shared_ptr<const model> model_;
    std::int64_t n_ctx_ = 0;
    std::int64_t n_past_ = 0;
    kv_cache cache_;
    std::unique_ptr<thread_pool> own_pool_;
    executor* pool_ = nullptr;
    forward_scratch scratch_;
    std::vector<float> logits_;
    trace_hook trace_;
};

QINFER_NAMESPACE_END
