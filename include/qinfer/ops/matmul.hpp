// qinfer/ops/matmul.hpp — y = W x for weight matrices of any supported type.
//
// Activations are quantized once per call to each weight's dot operand (as ggml does: Q8_0
// for Q4_0, Q8_K for K-quants, fp16 for F16 ...), then output rows are split across the
// pool. Several matrices that read the same input (Q, K, V; gate and up) go in one call: one
// quantization, one fork-join. Where a format has `dot_tile`, rows are done four at a time
// and tokens four at a time, so each unpacked weight block serves four tokens; a tile gives
// the same bits as `dot`, so results depend neither on the batch nor on the thread count.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "../core/error.hpp"
#include "../quant/dispatch.hpp"
#include "tensor.hpp"
#include "thread_pool.hpp"

QINFER_NAMESPACE_BEGIN

// Scratch memory reused across calls (grown on first use, never shrunk).
struct matmul_scratch {
    std::vector<std::vector<std::byte>> operands;  // the quantized input, one per operand type of a call
};

// One product of a matmul call: y[t * w.rows() + r] = dot(row r of w, token t of x).
struct matmul_task {
    const tensor_view* w;
    float* y;
};

// Dequantizes row `r` of `w` into `out` (w.cols() floats): embedding lookups.
inline void dequantize_row(const tensor_view& w, std::int64_t r, float* out) {
    visit_type(w.type, [&]<class Block>() {
        dequantize_row(reinterpret_cast<const Block*>(w.row(r)), out, w.cols());
    });
}

namespace detail {

template <class Block>
concept tiled_block = requires(const Block* w, const typename block_traits<Block>::dot_operand* a, float* y) {
    dot_tile<4, 4>(w, std::int64_t{}, a, std::int64_t{}, std::int64_t{}, y, std::int64_t{});
};

// Rows [r0, r1) of one product, all tokens. `ops` holds n_tokens operand rows back to back.
template <class Block>
void matmul_rows(const tensor_view& w, const void* ops_v, std::int64_t n_tokens, float* y, std::int64_t r0,
                 std::int64_t r1) noexcept {
    using Operand = typename block_traits<Block>::dot_operand;
    const std::int64_t k = w.cols(), m = w.rows();
    const std::int64_t wb = k / block_traits<Block>::block_size, ab = k / block_traits<Operand>::block_size;
    const auto* W = reinterpret_cast<const Block*>(w.data);
    const auto* A = static_cast<const Operand*>(ops_v);
    if constexpr (tiled_block<Block>) {
        constexpr int R = 4, C = 4;
        // A row group (R rows) against every token, C at a time; the leftovers with smaller tiles.
        auto sweep = [&]<int Rn>(std::int64_t r) {
            std::int64_t t = 0;
            for (; t + C <= n_tokens; t += C) dot_tile<Rn, C>(W + r * wb, wb, A + t * ab, ab, k, y + t * m + r, m);
            switch (n_tokens - t) {
            case 3: dot_tile<Rn, 3>(W + r * wb, wb, A + t * ab, ab, k, y + t * m + r, m); break;
            case 2: dot_tile<Rn, 2>(W + r * wb, wb, A + t * ab, ab, k, y + t * m + r, m); break;
            case 1: dot_tile<Rn, 1>(W + r * wb, wb, A + t * ab, ab, k, y + t * m + r, m); break;
            default: break;
            }
        };
        std::int64_t r = r0;
        // One token (decode) streams the weights from memory one row at a time: on the 2-core
        // Zen 4 machine four interleaved rows measured up to 1.6x slower (Q8_0 37-46 against
        // 29 t/s; a 16-core Xeon preferred four rows for Q8_0 only, by 1.1-1.3x).
        if (n_tokens > 1)
            for (; r + R <= r1; r += R) sweep.template operator()<R>(r);
        for (; r < r1; ++r) sweep.template operator()<1>(r);
    } else {
        for (std::int64_t r = r0; r < r1; ++r)
            for (std::int64_t t = 0; t < n_tokens; ++t) y[t * m + r] = dot(W + r * wb, A + t * ab, k);
    }
}

template <class Operand>
void quantize_tokens(const float* x, std::int64_t k, std::int64_t t0, std::int64_t t1, void* ops_v) noexcept {
    auto* ops = static_cast<Operand*>(ops_v);
    const std::int64_t ab = k / block_traits<Operand>::block_size;
    for (std::int64_t t = t0; t < t1; ++t) quantize_activations(x + t * k, ops + t * ab, k);
}

inline std::byte* aligned_in(std::vector<std::byte>& buf, std::size_t bytes, std::size_t align) {
    if (buf.size() < bytes + align) buf.resize(bytes + align);
    auto* base = buf.data();
    return base + (align - reinterpret_cast<std::uintptr_t>(base) % align) % align;
}

}  // namespace detail

// Runs every task on the same input x (n_tokens rows of x_cols floats): one activation
// quantization per operand type, one parallel section for all of them.
inline void matmul(std::initializer_list<matmul_task> tasks, const float* x, std::int64_t n_tokens, executor& pool,
                   matmul_scratch& scratch) {
    constexpr int max_tasks = 4;
    struct prepared {
        matmul_task task;
        const void* ops;
        void (*rows)(const tensor_view&, const void*, std::int64_t, float*, std::int64_t, std::int64_t) noexcept;
    };
    prepared job[max_tasks];
    int n_jobs = 0;
    std::int64_t k = -1, work = 0;
    struct to_quantize {
        type_id type;
        void (*fn)(const float*, std::int64_t, std::int64_t, std::int64_t, void*) noexcept;
        void* ops;
    } quant[max_tasks];
    int n_quant = 0;
    for (const matmul_task& t : tasks) {
        if (n_jobs == max_tasks) throw error("qinfer: matmul: more than 4 products in one call");
        const tensor_view& w = *t.w;
        if (k >= 0 && w.cols() != k) throw error("qinfer: matmul: products of one call must share the input width");
        k = w.cols();
        work += w.rows() * k * n_tokens;
        visit_type(w.type, [&]<class Block>() {
            if constexpr (!weight_block<Block>) {
                throw error("qinfer: tensor type " + std::string(type_name(w.type)) + " cannot be a weight matrix");
            } else {
                using Operand = typename block_traits<Block>::dot_operand;
                const type_id op_type = block_traits<Operand>::id;
                void* ops = nullptr;
                for (int q = 0; q < n_quant; ++q)
                    if (quant[q].type == op_type) ops = quant[q].ops;
                if (!ops) {
                    if (scratch.operands.size() <= std::size_t(n_quant)) scratch.operands.emplace_back();
                    const std::size_t bytes = std::size_t(k / block_traits<Operand>::block_size * n_tokens) * sizeof(Operand);
                    ops = detail::aligned_in(scratch.operands[std::size_t(n_quant)], bytes, alignof(Operand));
                    quant[n_quant++] = {op_type, &detail::quantize_tokens<Operand>, ops};
                }
                job[n_jobs++] = {t, ops, &detail::matmul_rows<Block>};
            }
        });
    }
    if (n_jobs == 0) return;

    // Below ~64K multiply-adds, waking other threads costs more than it saves.
    const bool parallel = pool.concurrency() > 1 && work >= (std::int64_t(1) << 16);
    if (parallel && n_tokens >= 4 * pool.concurrency()) {
        const int n_chunks = int(std::min<std::int64_t>(n_tokens, pool.concurrency() * 4));
        const std::int64_t per = (n_tokens + n_chunks - 1) / n_chunks;
        pool.parallel_for(n_chunks * n_quant, [&](int i) {
            const std::int64_t t0 = (i % n_chunks) * per, t1 = std::min(n_tokens, t0 + per);
            if (t0 < t1) quant[i / n_chunks].fn(x, k, t0, t1, quant[i / n_chunks].ops);
        });
    } else {
        for (int q = 0; q < n_quant; ++q) quant[q].fn(x, k, 0, n_tokens, quant[q].ops);
    }

    if (!parallel) {
        for (int j = 0; j < n_jobs; ++j) job[j].rows(*job[j].task.w, job[j].ops, n_tokens, job[j].task.y, 0, job[j].task.w->rows());
        return;
    }
    // Chunks of rows (multiples of 4, the tile height): enough to balance the threads, big
    // enough to amortize; chunks of all products in one list.
    const std::int64_t total_rows = [&] {
        std::int64_t s = 0;
        for (int j = 0; j < n_jobs; ++j) s += job[j].task.w->rows();
        return s;
    }();
    const std::int64_t target = std::max<std::int64_t>(1, std::int64_t(pool.concurrency()) * 8);
    const std::int64_t rows_per_chunk = std::max<std::int64_t>(4, (total_rows / target + 3) / 4 * 4);
    std::int64_t first_chunk[max_tasks + 1];
    first_chunk[0] = 0;
    for (int j = 0; j < n_jobs; ++j)
        first_chunk[j + 1] = first_chunk[j] + (job[j].task.w->rows() + rows_per_chunk - 1) / rows_per_chunk;
    pool.parallel_for(int(first_chunk[n_jobs]), [&](int c) {
        int j = 0;
        while (c >= first_chunk[j + 1]) ++j;
        const std::int64_t m = job[j].task.w->rows();
        const std::int64_t r0 = (c - first_chunk[j]) * rows_per_chunk;
        job[j].rows(*job[j].task.w, job[j].ops, n_tokens, job[j].task.y, r0, std::min(m, r0 + rows_per_chunk));
    });
}

// y[t * w.rows() + r] = dot(row r of w, x[t * w.cols() ...]) for t < n_tokens.
inline void matmul(const tensor_view& w, const float* x, std::int64_t n_tokens, float* y, executor& pool,
                   matmul_scratch& scratch) {
    matmul({matmul_task{&w, y}}, x, n_tokens, pool, scratch);
}

QINFER_NAMESPACE_END
