// qinfer/model/session.hpp — one conversation with a model: its KV cache, scratch memory
// and position. Sessions share the (read-only) model; each is used by one thread at a time.
#pragma once

#include <algorithm>
#include <functional>
#include <string>
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
    std::int64_t n_batch = 512;  // tokens per forward pass; an eval of more runs in batches of this many
};

// An eval either completes or leaves the session as it was: n_past, the cached positions
// below it and the logits of the last completed eval are unchanged when it throws, whatever
// it throws — with one exception, cancellation (errc::cancelled, see set_abort), which keeps
// the batches that completed before it.
class session {
public:
    explicit session(std::shared_ptr<const model> m, session_options opt = {}) : model_(std::move(m)) {
        if (!model_) throw error("qinfer: session needs a model", errc::invalid_argument);
        if (opt.n_batch < 1)
            throw error("qinfer: n_batch must be at least 1, got " + std::to_string(opt.n_batch), errc::invalid_argument);
        const model_config& c = model_->config();
        n_ctx_ = opt.n_ctx > 0 ? opt.n_ctx : std::min<std::int64_t>(c.n_ctx_train, 4096);
        n_batch_ = opt.n_batch;
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
    std::int64_t n_batch() const noexcept { return n_batch_; }
    int n_threads() const noexcept { return pool_->concurrency(); }
    void reset() noexcept { n_past_ = 0; }

    // Reports every layer's intermediate results from the next eval on (empty: off).
    void set_trace(trace_hook hook) { trace_ = std::move(hook); }

    // Asks `should_abort` before each batch of an eval and after each layer of the forward
    // pass (empty: never). When it returns true the eval throws qinfer::error with code
    // errc::cancelled and the session stays at the last complete batch: n_past grows by
    // n_batch for each batch that finished, the cut batch leaves no trace, and evaluating the
    // rest of the tokens (tokens[n_past() - n_past_before ...]) resumes exactly. The logits
    // span of the last completed eval stays as it was. For a std::stop_token `st`:
    //   s.set_abort([st] { return st.stop_requested(); });
    void set_abort(std::function<bool()> should_abort) { abort_ = std::move(should_abort); }

    // Calls `on_batch(done, total)` after each complete batch of an eval: tokens of this eval
    // evaluated so far (n_batch, 2 n_batch, ..., total) and its token count (empty: off).
    void set_progress(std::function<void(std::int64_t done, std::int64_t total)> on_batch) { progress_ = std::move(on_batch); }

    // Appends tokens to the context and returns the next-token logits after the last one.
    // The span stays valid until the next eval that succeeds.
    std::span<const float> eval(std::span<const std::int32_t> tokens) { return run(tokens, false); }

    // Same, returning n_vocab logits for every token (row t predicts the token after t).
    std::span<const float> eval_all(std::span<const std::int32_t> tokens) { return run(tokens, true); }

    // Forgets positions >= n (keeps the first n), e.g. to retry a generation.
    void truncate(std::int64_t n) {
        if (n < 0 || n > n_past_)
            throw error("qinfer: cannot truncate a context of " + std::to_string(n_past_) + " tokens to " + std::to_string(n),
                        errc::invalid_argument);
        n_past_ = n;
    }

private:
    std::span<const float> run(std::span<const std::int32_t> tokens, bool all) {
        if (tokens.empty()) throw error("qinfer: eval needs at least one token", errc::invalid_argument);
        const std::int64_t n = std::int64_t(tokens.size());
        const std::int64_t n_vocab = model_->config().n_vocab;
        for (std::size_t i = 0; i < tokens.size(); ++i)  // before anything runs, so a bad id changes nothing
            if (tokens[i] < 0 || tokens[i] >= n_vocab)
                throw error("qinfer: token " + std::to_string(i) + " of the eval has id " + std::to_string(tokens[i]) +
                                ", outside the vocabulary of " + std::to_string(n_vocab),
                            errc::invalid_argument);
        if (n_past_ + n > n_ctx_)
            throw error("qinfer: context full: " + std::to_string(n_past_) + " + " + std::to_string(n) +
                            " tokens exceed the session's n_ctx of " + std::to_string(n_ctx_),
                        errc::context_full);
        const std::int64_t start = n_past_;
        // The abort check after each layer rides on the trace hook the forward pass calls at
        // every stage, position by position: a layer ends with "l_out" at the batch's last one.
        std::int64_t batch_last = 0;
        trace_hook checked;
        if (abort_)
            checked = [this, &batch_last, start](const trace_event& e) {
                if (trace_) trace_(e);
                if (e.layer >= 0 && e.pos == batch_last && e.stage == "l_out" && abort_()) cancel(start);
            };
        const trace_hook* hook = abort_ ? &checked : trace_ ? &trace_ : nullptr;
        pending_.resize(std::size_t((all ? n : 1) * n_vocab));
        try {
            // Long prompts run in batches so scratch memory stays bounded.
            for (std::int64_t done = 0; done < n;) {
                if (abort_ && abort_()) cancel(start);
                const std::int64_t b = std::min(n_batch_, n - done);
                float* out = all ? pending_.data() + done * n_vocab : pending_.data();
                batch_last = n_past_ + b - 1;
                model_->run(cache_, tokens.subspan(std::size_t(done), std::size_t(b)), n_past_, all, out, *pool_, scratch_, hook);
                n_past_ += b;
                done += b;
                if (progress_) progress_(done, n);
            }
        } catch (const error& e) {
            if (e.code() != errc::cancelled) n_past_ = start;
            throw;
        } catch (...) {
            n_past_ = start;
            throw;
        }
        logits_.swap(pending_);
        return logits_;
    }

    [[noreturn]] void cancel(std::int64_t start) const {
        throw error("qinfer: eval cancelled; the session keeps the " + std::to_string(n_past_ - start) +
                        " tokens of its complete batches (n_past " + std::to_string(n_past_) + ")",
                    errc::cancelled);
    }

    std::shared_ptr<const model> model_;
    std::int64_t n_ctx_ = 0;
    std::int64_t n_past_ = 0;
    std::int64_t n_batch_ = 512;
    kv_cache cache_;
    std::unique_ptr<thread_pool> own_pool_;
    executor* pool_ = nullptr;
    forward_scratch scratch_;
    std::vector<float> logits_, pending_;
    trace_hook trace_;
    std::function<bool()> abort_;
    std::function<void(std::int64_t, std::int64_t)> progress_;
};

QINFER_NAMESPACE_END
