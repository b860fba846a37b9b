// qinfer/ops/matmul.hpp — y = W x for a weight matrix of any supported type.
//
// The type is dispatched once per call; activations are quantized once to the weight's dot
// operand (as ggml does: Q8_0 for Q4_0, Q8_K for K-quants, fp16 for F16 ...), then output
// rows are split across the pool. Each output element is one `dot`, so results do not
// depend on the number of threads.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "../core/error.hpp"
#include "../quant/dispatch.hpp"
#include "tensor.hpp"
#include "thread_pool.hpp"

QINFER_NAMESPACE_BEGIN

// Scratch memory reused across calls (grown on first use, never shrunk).
struct matmul_scratch {
    std::vector<std::byte> operand;
};

// Dequantizes row `r` of `w` into `out` (w.cols() floats): embedding lookups.
inline void dequantize_row(const tensor_view& w, std::int64_t r, float* out) {
    visit_type(w.type, [&]<class Block>() {
        dequantize_row(reinterpret_cast<const Block*>(w.row(r)), out, w.cols());
    });
}

// y[t * w.rows() + r] = dot(row r of w, x[t * w.cols() ...]) for t < n_tokens.
inline void matmul(const tensor_view& w, const float* x, std::int64_t n_tokens, float* y, executor& pool,
                   matmul_scratch& scratch) {
    const std::int64_t k = w.cols(), m = w.rows();
    visit_type(w.type, [&]<class Block>() {
        if constexpr (!weight_block<Block>) {
            throw error("qinfer: tensor type " + std::string(type_name(w.type)) + " cannot be a weight matrix");
        } else {
            using Operand = typename block_traits<Block>::dot_operand;
            const std::int64_t op_row_bytes = k / block_traits<Operand>::block_size * std::int64_t(sizeof(Operand));
            const std::size_t need = std::size_t(op_row_bytes * n_tokens) + alignof(Operand);
            if (scratch.operand.size() < need) scratch.operand.resize(need);
            auto* base = scratch.operand.data();
            auto* ops = reinterpret_cast<Operand*>(
                base + (alignof(Operand) - reinterpret_cast<std::uintptr_t>(base) % alignof(Operand)) % alignof(Operand));
            const std::int64_t op_blocks = k / block_traits<Operand>::block_size;
            for (std::int64_t t = 0; t < n_tokens; ++t) quantize_activations(x + t * k, ops + t * op_blocks, k);

            const auto* wbase = reinterpret_cast<const Block*>(w.data);
            const std::int64_t w_blocks = k / block_traits<Block>::block_size;
            auto rows = [&](std::int64_t r0, std::int64_t r1) {
                for (std::int64_t r = r0; r < r1; ++r)
                    for (std::int64_t t = 0; t < n_tokens; ++t)
                        y[t * m + r] = dot(wbase + r * w_blocks, ops + t * op_blocks, k);
            };
            // Below ~64K multiply-adds, waking other threads costs more than it saves.
            if (m * k * n_tokens < (std::int64_t(1) << 16) || pool.concurrency() == 1) {
                rows(0, m);
                return;
            }
            // Chunks of rows: enough chunks to balance threads, big enough to amortize.
            const std::int64_t n_chunks = std::min<std::int64_t>(m, std::int64_t(pool.concurrency()) * 8);
            const std::int64_t rows_per_chunk = (m + n_chunks - 1) / n_chunks;
            pool.parallel_for(int((m + rows_per_chunk - 1) / rows_per_chunk), [&](int c) {
                const std::int64_t r0 = c * rows_per_chunk;
                rows(r0, std::min(m, r0 + rows_per_chunk));
            });
        }
    });
}

QINFER_NAMESPACE_END
