// qinfer/model/prefix_cache.hpp — evaluated prefixes (a system prompt, a shared document)
// kept as snapshots, so that sessions of the same model starting with them copy their keys
// and values instead of evaluating them again. chat_session uses one when given.
//
//   auto cache = std::make_shared<qinfer::prefix_cache>();
//   cache->add(warm_session);                        // its whole context
//   auto [snap, n] = cache->longest_match(model, tokens);  // then session.restore(*snap, n)
#pragma once

#include <algorithm>
#include <cstddef>
#include <list>
#include <memory>
#include <mutex>
#include <span>
#include <utility>

#include "session.hpp"

QINFER_NAMESPACE_BEGIN

// Thread-safe: any number of sessions (on any threads) may add and look up at once. Holds at
// most max_bytes of snapshots, dropping the least recently matched first.
class prefix_cache {
public:
    explicit prefix_cache(std::size_t max_bytes = std::size_t(1) << 30) : max_bytes_(max_bytes) {}

    // Keeps the first n tokens (n < 0: all) of the session's context, unless an entry already
    // covers them.
    void add(const session& s, std::int64_t n = -1) {
        if (n < 0) n = s.n_past();
        if (n == 0) return;
        const std::span<const std::int32_t> want = s.tokens().first(std::size_t(n));
        const std::uint64_t fp = s.get_model().fingerprint();
        const auto held = [&] {  // under the lock: an entry already covers these tokens
            for (const auto& e : entries_)
                if (e->model_fingerprint == fp && e->tokens.size() >= want.size() && std::equal(want.begin(), want.end(), e->tokens.begin()))
                    return true;
            return false;
        };
        {
            std::lock_guard lock(mutex_);
            if (held()) return;
        }
        auto snap = std::make_shared<const session_snapshot>(s.snapshot(n));  // outside the lock: it copies
        std::lock_guard lock(mutex_);
        if (held()) return;  // another thread added it meanwhile
        bytes_ += size_of(*snap);
        entries_.push_front(std::move(snap));
        while (bytes_ > max_bytes_ && entries_.size() > 1) {
            bytes_ -= size_of(*entries_.back());
            entries_.pop_back();
        }
    }

    // The entry of this model sharing the longest prefix with `tokens`, and that prefix's
    // length (null and 0 when none shares a token). restore(*entry, length) applies it.
    std::pair<std::shared_ptr<const session_snapshot>, std::size_t> longest_match(const model& m,
                                                                                  std::span<const std::int32_t> tokens) {
        std::lock_guard lock(mutex_);
        auto best = entries_.end();
        std::size_t best_n = 0;
        for (auto it = entries_.begin(); it != entries_.end(); ++it) {
            if ((*it)->model_fingerprint != m.fingerprint()) continue;
            std::size_t n = 0;
            while (n < tokens.size() && n < (*it)->tokens.size() && tokens[n] == (*it)->tokens[n]) ++n;
            if (n > best_n) { best = it; best_n = n; }
        }
        if (best == entries_.end()) return {nullptr, 0};
        entries_.splice(entries_.begin(), entries_, best);  // most recently used first
        return {entries_.front(), best_n};
    }

    std::size_t size() const {
        std::lock_guard lock(mutex_);
        return entries_.size();
    }
    std::size_t bytes() const {
        std::lock_guard lock(mutex_);
        return bytes_;
    }

private:
    static std::size_t size_of(const session_snapshot& s) noexcept {
        return s.keys.size() + s.values.size() + s.tokens.size() * sizeof(std::int32_t) + s.logits.size() * sizeof(float);
    }

    std::size_t max_bytes_;
    mutable std::mutex mutex_;
    std::list<std::shared_ptr<const session_snapshot>> entries_;
    std::size_t bytes_ = 0;
};

QINFER_NAMESPACE_END
