// qinfer/quant/block_traits.hpp — what the rest of the library may know about a block type.
#pragma once

#include <cstdint>

#include "../core/types.hpp"

QINFER_NAMESPACE_BEGIN

// Specialized by every format header:
//   static constexpr type_id id;          ggml's type id (what GGUF files store)
//   static constexpr int block_size;      weights per block
//   using dot_operand = ...;              block type activations are quantized to for `dot`
template <class Block> struct block_traits;

namespace detail {
// dot_tile where no tiled kernel runs: one `dot` per cell (found by argument-dependent lookup
// at instantiation, after the format header has declared it).
template <int R, int C, class Block, class Operand>
void dot_tile_by_dots(const Block* w, std::int64_t ldw, const Operand* a, std::int64_t lda, std::int64_t n, float* y,
                      std::int64_t ldy) noexcept {
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) y[c * ldy + r] = dot(w + r * ldw, a + c * lda, n);
}
}  // namespace detail

QINFER_NAMESPACE_END
