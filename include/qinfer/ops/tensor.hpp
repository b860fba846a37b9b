// qinfer/ops/tensor.hpp — a typed, read-only view of a weight matrix in the file mapping.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include "../core/types.hpp"

QINFER_NAMESPACE_BEGIN

// ggml's dimension order: ne[0] is the row length (contiguous), ne[1] the number of rows.
struct tensor_view {
    type_id type = type_id::f32;
    std::array<std::int64_t, 4> ne{1, 1, 1, 1};
    const std::byte* data = nullptr;

    std::int64_t cols() const noexcept { return ne[0]; }
    std::int64_t rows() const noexcept { return ne[1] * ne[2] * ne[3]; }
    std::int64_t row_bytes() const noexcept { return qinfer::row_bytes(type, ne[0]); }
    const std::byte* row(std::int64_t r) const noexcept { return data + r * row_bytes(); }
    explicit operator bool() const noexcept { return data != nullptr; }
};

QINFER_NAMESPACE_END
