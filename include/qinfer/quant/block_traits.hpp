// qinfer/quant/block_traits.hpp — what the rest of the library may know about a block type.
#pragma once

#include "../core/types.hpp"

QINFER_NAMESPACE_BEGIN

// Specialized by every format header:
//   static constexpr type_id id;          ggml's type id (what GGUF files store)
//   static constexpr int block_size;      weights per block
//   using dot_operand = ...;              block type activations are quantized to for `dot`
template <class Block> struct block_traits;

QINFER_NAMESPACE_END
