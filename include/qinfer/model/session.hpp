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
    int n_threads = 0;           // > 0: a pool of this many threads of the session's own
    kv_type cache_type = kv_type::f16;
    executor* pool = nullptr;    // the host's executor; null and n_threads 0: default_executor(), shared
    std::int64_t n_batch = 512;  // tokens per forward pass; an eval of more runs in batches of this many
};

// A session's context as a value (session::snapshot): its tokens, their cached keys and
// values, and the next-token logits after the last token where the session had them.
// session::restore puts it into any session of the same model; qinfer/state.hpp writes it
// to a file.
struct session_snapshot {
    std::uint64_t model_fingerprint = 0;  // model::fingerprint() of the model it was taken with
    kv_type cache_type = kv_type::f16;
    bool long_rope = false;               // made with phi3's long RoPE factors (n_ctx beyond the training one)
    std::int64_t n_layer = 0, kv_width = 0;
    std::vector<std::int32_t> tokens;
    // Per layer, tokens.size() rows of kv_width elements of cache_type: layer 0's, then 1's, ...
    std::vector<std::byte> keys, values;
    std::vector<float> logits;  // n_vocab floats, or empty
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
        else if (opt.n_threads <= 0) pool_ = &default_executor();
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
    void reset() noexcept {
        n_past_ = 0;
        tokens_.clear();
        logits_at_ = -1;
    }

    // The tokens the context holds, in order (n_past of them).
    std::span<const std::int32_t> tokens() const noexcept { return tokens_; }

    // The next-token logits after the context's last token: those of the last eval, or of a
    // restored snapshot or copied prefix that had them; empty when the context has changed
    // since (truncate, shift, a cancelled eval) or holds nothing.
    std::span<const float> logits() const noexcept {
        const std::size_t n_vocab = std::size_t(model_->config().n_vocab);
        if (logits_at_ != n_past_ || n_past_ == 0 || logits_.size() < n_vocab) return {};
        return std::span<const float>(logits_).last(n_vocab);
    }

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
        if (n != n_past_) logits_at_ = -1;
        n_past_ = n;
        tokens_.resize(std::size_t(n));
    }

    // Context shift, as llama.cpp's n_keep / n_discard: drops positions [n_keep, n_keep +
    // n_discard), moves the later ones down by n_discard and re-rotates their cached keys to
    // their new positions (model::shift), so the context goes on without recomputing them.
    // The result is close to, not equal to, a fresh evaluation of the kept tokens: the kept
    // keys and values were computed with the dropped tokens in view.
    void shift(std::int64_t n_keep, std::int64_t n_discard) {
        if (n_keep < 0 || n_discard < 0 || n_keep + n_discard > n_past_)
            throw error("qinfer: cannot shift a context of " + std::to_string(n_past_) + " tokens keeping " +
                            std::to_string(n_keep) + " and discarding " + std::to_string(n_discard),
                        errc::invalid_argument);
        if (n_discard == 0) return;
        cache_.erase(n_keep, n_keep + n_discard, n_past_);
        model_->shift(cache_, n_keep, n_past_ - n_discard, -n_discard);
        tokens_.erase(tokens_.begin() + std::ptrdiff_t(n_keep), tokens_.begin() + std::ptrdiff_t(n_keep + n_discard));
        n_past_ -= n_discard;
        logits_at_ = -1;
    }

    // The context (its first n tokens; n < 0: all of them) as a value.
    session_snapshot snapshot(std::int64_t n = -1) const {
        if (n < 0) n = n_past_;
        if (n > n_past_)
            throw error("qinfer: cannot snapshot " + std::to_string(n) + " tokens of a context of " + std::to_string(n_past_),
                        errc::invalid_argument);
        session_snapshot s;
        s.model_fingerprint = model_->fingerprint();
        s.cache_type = cache_.type();
        s.long_rope = long_rope();
        s.n_layer = cache_.n_layer();
        s.kv_width = cache_.stride();
        s.tokens.assign(tokens_.begin(), tokens_.begin() + std::ptrdiff_t(n));
        const std::size_t layer_bytes = cache_.rows(0, false, n).size();
        s.keys.resize(layer_bytes * std::size_t(s.n_layer));
        s.values.resize(layer_bytes * std::size_t(s.n_layer));
        for (std::int64_t l = 0; l < s.n_layer; ++l) {
            const auto k = cache_.rows(l, false, n), v = cache_.rows(l, true, n);
            std::copy(k.begin(), k.end(), s.keys.begin() + std::ptrdiff_t(std::size_t(l) * layer_bytes));
            std::copy(v.begin(), v.end(), s.values.begin() + std::ptrdiff_t(std::size_t(l) * layer_bytes));
        }
        if (n == n_past_) {
            const std::span<const float> l = logits();
            s.logits.assign(l.begin(), l.end());
        }
        return s;
    }

    // Replaces the context with a snapshot's first n tokens (n < 0: all of them), converting
    // f16 / f32 cache rows where the session's cache type differs. Throws
    // errc::invalid_argument, leaving the session as it was, when it belongs to another model
    // or does not fit this session.
    void restore(const session_snapshot& s, std::int64_t n = -1) {
        const model_config& c = model_->config();
        const auto bad = [](const std::string& why) { return error("qinfer: cannot restore the snapshot: " + why, errc::invalid_argument); };
        if (s.model_fingerprint != model_->fingerprint()) throw bad("it was taken with another model (fingerprints differ)");
        if (s.n_layer != cache_.n_layer() || s.kv_width != cache_.stride())
            throw bad("its cache shape (" + std::to_string(s.n_layer) + " layers x " + std::to_string(s.kv_width) +
                      ") is not the model's (" + std::to_string(cache_.n_layer()) + " x " + std::to_string(cache_.stride()) + ")");
        if (s.long_rope != long_rope())
            throw bad("its keys were rotated with the model's " + std::string(s.long_rope ? "long" : "short") +
                      " RoPE factors, which this session's n_ctx does not use");
        const std::int64_t total = std::int64_t(s.tokens.size());
        if (n < 0) n = total;
        if (n > total) throw bad(std::to_string(n) + " tokens asked of a snapshot of " + std::to_string(total));
        if (n > n_ctx_)
            throw bad("its " + std::to_string(n) + " tokens exceed the session's n_ctx of " + std::to_string(n_ctx_));
        const std::size_t elem = s.cache_type == kv_type::f16 ? sizeof(fp16) : sizeof(float);
        const std::size_t layer_bytes = std::size_t(total * s.kv_width) * elem, used = std::size_t(n * s.kv_width) * elem;
        if (s.keys.size() != layer_bytes * std::size_t(s.n_layer) || s.values.size() != s.keys.size())
            throw bad("its key / value data does not match its token count");
        if (!s.logits.empty() && std::int64_t(s.logits.size()) != c.n_vocab) throw bad("its logits are not n_vocab floats");
        for (std::int64_t i = 0; i < n; ++i)
            if (s.tokens[std::size_t(i)] < 0 || s.tokens[std::size_t(i)] >= c.n_vocab)
                throw bad("it holds token id " + std::to_string(s.tokens[std::size_t(i)]) + ", outside the vocabulary");
        for (std::int64_t l = 0; l < s.n_layer; ++l) {
            const std::size_t at = std::size_t(l) * layer_bytes;
            cache_.assign_rows(l, false, n, std::span<const std::byte>(s.keys).subspan(at, used), s.cache_type);
            cache_.assign_rows(l, true, n, std::span<const std::byte>(s.values).subspan(at, used), s.cache_type);
        }
        tokens_.assign(s.tokens.begin(), s.tokens.begin() + std::ptrdiff_t(n));
        n_past_ = n;
        set_logits(n == total ? s.logits : std::vector<float>());
    }

    // Makes this session's context the first n tokens of `from`'s (a session of the same
    // model), copying their cached keys and values instead of recomputing them: a system
    // prompt evaluated once serves many sessions. Throws errc::invalid_argument, leaving the
    // session as it was, when the sessions' models differ or n does not fit.
    void copy_prefix(const session& from, std::int64_t n) {
        const auto bad = [](const std::string& why) { return error("qinfer: cannot copy the prefix: " + why, errc::invalid_argument); };
        if (model_->fingerprint() != from.model_->fingerprint()) throw bad("the sessions' models differ");
        if (n < 0 || n > from.n_past_)
            throw bad(std::to_string(n) + " tokens asked of a context of " + std::to_string(from.n_past_));
        if (n > n_ctx_) throw bad(std::to_string(n) + " tokens exceed this session's n_ctx of " + std::to_string(n_ctx_));
        if (long_rope() != from.long_rope()) throw bad("the sessions' n_ctx select different RoPE factors");
        if (this == &from) return truncate(n);
        cache_.copy_prefix(from.cache_, n);
        tokens_.assign(from.tokens_.begin(), from.tokens_.begin() + std::ptrdiff_t(n));
        n_past_ = n;
        if (n == from.n_past_) {
            const std::span<const float> l = from.logits();
            set_logits(std::vector<float>(l.begin(), l.end()));
        } else {
            logits_at_ = -1;
        }
    }

private:
    // phi3's long RoPE factors apply where the context exceeds the training one; keys made
    // under one choice are wrong under the other.
    bool long_rope() const noexcept {
        return !model_->weights().rope_long.empty() && model_->weights().rope_freqs.empty() &&
               n_ctx_ > model_->config().n_ctx_orig;
    }

    void set_logits(std::vector<float> l) {
        if (l.empty()) { logits_at_ = -1; return; }
        logits_ = std::move(l);
        logits_at_ = n_past_;
    }

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
                const auto batch = tokens.subspan(std::size_t(done), std::size_t(b));
                model_->run(cache_, batch, n_past_, all, out, *pool_, scratch_, hook);
                n_past_ += b;
                tokens_.insert(tokens_.end(), batch.begin(), batch.end());
                done += b;
                if (progress_) progress_(done, n);
            }
        } catch (const error& e) {
            if (e.code() != errc::cancelled) {
                n_past_ = start;
                tokens_.resize(std::size_t(start));
            }
            throw;
        } catch (...) {
            n_past_ = start;
            tokens_.resize(std::size_t(start));
            throw;
        }
        logits_.swap(pending_);
        logits_at_ = n_past_;
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
    std::int64_t logits_at_ = -1;  // n_past when logits_ were made (its last row predicts the next token)
    std::vector<std::int32_t> tokens_;
    trace_hook trace_;
    std::function<bool()> abort_;
    std::function<void(std::int64_t, std::int64_t)> progress_;
};

QINFER_NAMESPACE_END
