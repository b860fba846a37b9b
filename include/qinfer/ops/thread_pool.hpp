// qinfer/ops/thread_pool.hpp — a small fork-join pool for splitting matmuls by output rows.
//
// The calling thread takes part in every job, so a pool of size 1 runs inline with no
// threads at all. Workers spin briefly after a job (decode issues hundreds of short jobs
// per token, and a condition-variable wake-up costs tens of microseconds), then sleep: an
// idle pool uses no CPU. Hosts that have their own scheduler implement `executor`.
#pragma once

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "../core/config.hpp"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define QINFER_CPU_RELAX() _mm_pause()
#else
#define QINFER_CPU_RELAX() std::this_thread::yield()
#endif

QINFER_NAMESPACE_BEGIN

// What the library needs from a thread pool: run fn(i) for every i in [0, n) and return
// when all calls have finished. Inject your own by implementing this.
class executor {
public:
    virtual ~executor() = default;
    virtual int concurrency() const noexcept = 0;
    virtual void parallel_for(int n, const std::function<void(int)>& fn) = 0;
};

class thread_pool final : public executor {
public:
    // n_threads counts the caller; 0 means std::thread::hardware_concurrency().
    explicit thread_pool(int n_threads = 0) {
        if (n_threads <= 0) n_threads = std::max(1, int(std::thread::hardware_concurrency()));
        workers_.reserve(std::size_t(n_threads - 1));
        for (int i = 1; i < n_threads; ++i) workers_.emplace_back([this] { worker_loop(); });
    }

    thread_pool(const thread_pool&) = delete;
    thread_pool& operator=(const thread_pool&) = delete;

    ~thread_pool() override {
        {
            std::lock_guard lock(mutex_);
            stop_ = true;
            generation_.fetch_add(1, std::memory_order_release);
        }
        wake_.notify_all();
        for (auto& t : workers_) t.join();
    }

    int concurrency() const noexcept override { return int(workers_.size()) + 1; }

    void parallel_for(int n, const std::function<void(int)>& fn) override {
        if (n <= 0) return;
        if (workers_.empty() || n == 1) {
            for (int i = 0; i < n; ++i) fn(i);
            return;
        }
        std::lock_guard job_lock(job_mutex_);  // one job at a time if several threads submit
        job_ = &fn;
        job_size_ = n;
        next_.store(0, std::memory_order_relaxed);
        pending_.store(int(workers_.size()), std::memory_order_relaxed);
        {
            std::lock_guard lock(mutex_);
            generation_.fetch_add(1, std::memory_order_release);
        }
        wake_.notify_all();
        run_items();
        // Wait for the workers to leave the job (they may still be finishing an item). Yield
        // after a short spin: on an oversubscribed machine the worker needs this core.
        for (int spin = 0; pending_.load(std::memory_order_acquire) != 0; ++spin) {
            if (spin < 2000) QINFER_CPU_RELAX();
            else std::this_thread::yield();
        }
        job_ = nullptr;
    }

private:
    void run_items() {
        for (int i; (i = next_.fetch_add(1, std::memory_order_relaxed)) < job_size_;) (*job_)(i);
    }

    void worker_loop() {
        std::uint64_t seen = 0;
        for (;;) {
            // Spin a little for the next job before sleeping.
            std::uint64_t g = generation_.load(std::memory_order_acquire);
            for (int spin = 0; g == seen && spin < 4000; ++spin) {
                QINFER_CPU_RELAX();
                g = generation_.load(std::memory_order_acquire);
            }
            if (g == seen) {
                std::unique_lock lock(mutex_);
                wake_.wait(lock, [&] { return generation_.load(std::memory_order_acquire) != seen; });
                g = generation_.load(std::memory_order_acquire);
            }
            seen = g;
            if (stop_) return;
            run_items();
            pending_.fetch_sub(1, std::memory_order_acq_rel);
        }
    }

    std::vector<std::thread> workers_;
    std::mutex mutex_;
    std::mutex job_mutex_;
    std::condition_variable wake_;
    std::atomic<std::uint64_t> generation_{0};
    std::atomic<int> next_{0};
    std::atomic<int> pending_{0};
    const std::function<void(int)>* job_ = nullptr;
    int job_size_ = 0;
    bool stop_ = false;
};

// The process's shared pool, one thread per hardware thread, made on first use. Sessions
// that name neither a pool nor a thread count run on it, so many sessions do not mean many
// pools fighting over the cores: their jobs take turns (one job at a time, each on every core).
inline executor& default_executor() {
    static thread_pool pool(0);
    return pool;
}

QINFER_NAMESPACE_END
