// qinfer/quant/dispatch.hpp — from a runtime type id to the kernels templated on its block.
//
// The one place that lists which formats have kernels. Adding a format: its header, a row
// in core/types.hpp, a case here, and tests.
#pragma once

#include <concepts>
#include <cstdint>
#include <string>
#include <utility>

#include "../core/error.hpp"
#include "../core/types.hpp"
#include "bf16.hpp"
#include "f16.hpp"
#include "f32.hpp"
#include "iq4_nl.hpp"
#include "iq4_xs.hpp"
#include "mxfp4.hpp"
#include "q2_k.hpp"
#include "q3_k.hpp"
#include "q4_0.hpp"
#include "q4_1.hpp"
#include "q4_k.hpp"
#include "q5_0.hpp"
#include "q5_1.hpp"
#include "q5_k.hpp"
#include "q6_k.hpp"
#include "q8_0.hpp"
#include "q8_1.hpp"
#include "q8_k.hpp"

QINFER_NAMESPACE_BEGIN

// Block types that can be matmul weights: they have a dot product with their operand.
// (Q8_1 and Q8_K are activation types only.)
template <class Block>
concept weight_block = requires(const Block* w, const typename block_traits<Block>::dot_operand* a) {
    { dot(w, a, std::int64_t{}) } -> std::convertible_to<float>;
};

// True for the types `visit_type` accepts.
constexpr bool has_kernels(type_id id) noexcept {
    switch (id) {
    case type_id::f32: case type_id::f16: case type_id::bf16:
    case type_id::q4_0: case type_id::q4_1: case type_id::q5_0: case type_id::q5_1:
    case type_id::q8_0: case type_id::q8_1:
    case type_id::q2_K: case type_id::q3_K: case type_id::q4_K: case type_id::q5_K:
    case type_id::q6_K: case type_id::q8_K:
    case type_id::iq4_nl: case type_id::iq4_xs: case type_id::mxfp4:
        return true;
    default:
        return false;
    }
}

// Calls f.template operator()<Block>() with the block type of `id`, e.g.
//   visit_type(t.type, [&]<class Block>() { dequantize_row(as<Block>(p), out, n); });
// Throws qinfer::error for a type without kernels.
template <class F>
decltype(auto) visit_type(type_id id, F&& f) {
    switch (id) {
    case type_id::f32: return std::forward<F>(f).template operator()<float>();
    case type_id::f16: return std::forward<F>(f).template operator()<fp16>();
    case type_id::bf16: return std::forward<F>(f).template operator()<bf16>();
    case type_id::q4_0: return std::forward<F>(f).template operator()<block_q4_0>();
    case type_id::q4_1: return std::forward<F>(f).template operator()<block_q4_1>();
    case type_id::q5_0: return std::forward<F>(f).template operator()<block_q5_0>();
    case type_id::q5_1: return std::forward<F>(f).template operator()<block_q5_1>();
    case type_id::q8_0: return std::forward<F>(f).template operator()<block_q8_0>();
    case type_id::q8_1: return std::forward<F>(f).template operator()<block_q8_1>();
    case type_id::q2_K: return std::forward<F>(f).template operator()<block_q2_K>();
    case type_id::q3_K: return std::forward<F>(f).template operator()<block_q3_K>();
    case type_id::q4_K: return std::forward<F>(f).template operator()<block_q4_K>();
    case type_id::q5_K: return std::forward<F>(f).template operator()<block_q5_K>();
    case type_id::q6_K: return std::forward<F>(f).template operator()<block_q6_K>();
    case type_id::q8_K: return std::forward<F>(f).template operator()<block_q8_K>();
    case type_id::iq4_nl: return std::forward<F>(f).template operator()<block_iq4_nl>();
    case type_id::iq4_xs: return std::forward<F>(f).template operator()<block_iq4_xs>();
    case type_id::mxfp4: return std::forward<F>(f).template operator()<block_mxfp4>();
    default: break;
    }
    throw error("qinfer: no kernels for tensor type " + std::string(type_name(id)));
}

QINFER_NAMESPACE_END
