// qinfer/core/types.hpp — every ggml tensor type id with its block geometry.
//
// This table is the single place the GGUF reader, the writer and the kernel dispatcher
// read sizes from. Ids are ggml's (they are what GGUF files store); ids ggml removed
// (4, 5, 31-33, 36-38) are absent and rejected by `type_info_of`.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "config.hpp"

QINFER_NAMESPACE_BEGIN

enum class type_id : std::uint32_t {
    f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9,
    q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15,
    iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22,
    iq4_xs = 23, i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_m = 29, bf16 = 30,
    tq1_0 = 34, tq2_0 = 35, mxfp4 = 39, nvfp4 = 40, q1_0 = 41, q2_0 = 42,
};

struct type_info {
    type_id id;
    std::string_view name;      // ggml's spelling ("q4_K", "bf16")
    std::int64_t block_size;    // elements per block
    std::int64_t block_bytes;   // bytes per block
    bool quantized;
};

inline constexpr std::array<type_info, 36> type_table{{
    {type_id::f32, "f32", 1, 4, false},        {type_id::f16, "f16", 1, 2, false},
    {type_id::q4_0, "q4_0", 32, 18, true},     {type_id::q4_1, "q4_1", 32, 20, true},
    {type_id::q5_0, "q5_0", 32, 22, true},     {type_id::q5_1, "q5_1", 32, 24, true},
    {type_id::q8_0, "q8_0", 32, 34, true},     {type_id::q8_1, "q8_1", 32, 36, true},
    {type_id::q2_K, "q2_K", 256, 84, true},    {type_id::q3_K, "q3_K", 256, 110, true},
    {type_id::q4_K, "q4_K", 256, 144, true},   {type_id::q5_K, "q5_K", 256, 176, true},
    {type_id::q6_K, "q6_K", 256, 210, true},   {type_id::q8_K, "q8_K", 256, 292, true},
    {type_id::iq2_xxs, "iq2_xxs", 256, 66, true}, {type_id::iq2_xs, "iq2_xs", 256, 74, true},
    {type_id::iq3_xxs, "iq3_xxs", 256, 98, true}, {type_id::iq1_s, "iq1_s", 256, 50, true},
    {type_id::iq4_nl, "iq4_nl", 32, 18, true}, {type_id::iq3_s, "iq3_s", 256, 110, true},
    {type_id::iq2_s, "iq2_s", 256, 82, true},  {type_id::iq4_xs, "iq4_xs", 256, 136, true},
    {type_id::i8, "i8", 1, 1, false},          {type_id::i16, "i16", 1, 2, false},
    {type_id::i32, "i32", 1, 4, false},        {type_id::i64, "i64", 1, 8, false},
    {type_id::f64, "f64", 1, 8, false},        {type_id::iq1_m, "iq1_m", 256, 56, true},
    {type_id::bf16, "bf16", 1, 2, false},      {type_id::tq1_0, "tq1_0", 256, 54, true},
    {type_id::tq2_0, "tq2_0", 256, 66, true},  {type_id::mxfp4, "mxfp4", 32, 17, true},
    {type_id::nvfp4, "nvfp4", 64, 36, true},   {type_id::q1_0, "q1_0", 128, 18, true},
    {type_id::q2_0, "q2_0", 64, 18, true},
}};

// The row of `type_table` for a raw id read from a file; empty for unknown or removed ids.
constexpr std::optional<type_info> type_info_of(std::uint32_t raw) noexcept {
    for (const type_info& t : type_table)
        if (static_cast<std::uint32_t>(t.id) == raw) return t;
    return std::nullopt;
}

// Row of a known id (every enumerator is in the table).
constexpr const type_info& info(type_id id) noexcept {
    for (const type_info& t : type_table)
        if (t.id == id) return t;
    return type_table[0];  // unreachable for valid enumerators
}

constexpr std::string_view type_name(type_id id) noexcept { return info(id).name; }

// Bytes taken by `n` elements of type `id`; `n` must be a multiple of the block size.
constexpr std::int64_t row_bytes(type_id id, std::int64_t n) noexcept {
    const type_info& t = info(id);
    return n / t.block_size * t.block_bytes;
}

QINFER_NAMESPACE_END
