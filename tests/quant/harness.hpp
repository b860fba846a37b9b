// tests/quant/harness.hpp — one conformance procedure for every block format, run against
// llama.cpp's own ggml functions (tests/oracle/ggml_oracle.hpp).
//
// What a format must provide (see any include/qinfer/quant/*.hpp):
//   block_traits<Block>{id, block_size, dot_operand}; quantize_row; dequantize_row;
//   detail::scalar::dequantize_row / detail::simd::dequantize_row; and for weight formats
//   dot plus detail::scalar::dot, detail::avx2::dot, detail::avx512::dot.
// Operand formats provide quantize_activations (ggml-cpu's from_float).
//
// Tolerance for dot products: |ours - ggml| <= 1e-5 * sum_i |w_i * a_i| (w, a the exactly
// dequantized operands). Both sides sum the same exact per-block integer dot products in a
// different float order; 1e-5 is ~80 ulps of float, well above the n_blocks * 2^-24 bound
// for the rows tested here, and far below the size of any real kernel error (one wrong
// quant in a 256-block shifts the result by ~1e-3 of that sum or more).
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <qinfer/core/cpu.hpp>
#include <qinfer/core/types.hpp>
#include <qinfer/quant/block_traits.hpp>

#include "oracle/ggml_oracle.hpp"

namespace qtest {

using qinfer::block_traits;

constexpr double dot_tolerance = 1e-5;

struct named_row {
    std::string name;
    std::vector<float> v;
};

// Rows from the distributions the issue names; `block` is the format's block size.
inline std::vector<named_row> test_rows(std::int64_t n, std::int64_t block, unsigned seed) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
    std::uniform_real_distribution<float> unit(0.0f, 1.0f);
    auto make = [&](auto f) {
        std::vector<float> v(static_cast<std::size_t>(n));
        for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = f(i);
        return v;
    };
    std::vector<named_row> rows;
    rows.push_back({"normal", make([&](std::int64_t) { return normal(rng); })});
    rows.push_back({"uniform", make([&](std::int64_t) { return uniform(rng); })});
    rows.push_back({"heavy-tailed", make([&](std::int64_t) {
        const float x = normal(rng) / std::max(0.05f, std::sqrt(unit(rng)));  // Student-t-like
        return unit(rng) < 0.01f ? x * 50.0f : x;                              // plus outliers
    })});
    rows.push_back({"zeros", make([](std::int64_t) { return 0.0f; })});
    rows.push_back({"constant", make([](std::int64_t) { return 0.375f; })});
    rows.push_back({"negative-constant", make([](std::int64_t) { return -2.5f; })});
    rows.push_back({"tiny", make([&](std::int64_t) { return normal(rng) * 1e-30f; })});
    rows.push_back({"large", make([&](std::int64_t) { return normal(rng) * 1e5f; })});
    rows.push_back({"zero-block-then-not", make([&](std::int64_t i) {
        return (i / block) % 2 == 0 ? 0.0f : normal(rng);
    })});
    rows.push_back({"one-hot", make([&](std::int64_t i) { return i % block == 7 ? 3.0f : 0.0f; })});
    rows.push_back({"small-ints", make([&](std::int64_t) { return float(int(uniform(rng) * 8.0f)); })});
    return rows;
}

// Row lengths tested for a block size: one block, a few, and a long row.
inline std::vector<std::int64_t> test_lengths(std::int64_t block) {
    return {block, 3 * block, std::max<std::int64_t>(16 * block, 4096)};
}

template <class Block>
std::vector<Block> blocks_for(std::int64_t n) {
    return std::vector<Block>(static_cast<std::size_t>(n / block_traits<Block>::block_size));
}

inline bool same_bits(const float* a, const float* b, std::int64_t n) {
    return std::memcmp(a, b, static_cast<std::size_t>(n) * sizeof(float)) == 0;
}

inline int type_int(qinfer::type_id id) { return static_cast<int>(id); }

// Quantized bytes of `quantize_row` against ggml: ggml_quantize_chunk (what llama-quantize
// calls, no importance matrix) when `via_chunk`, else the named reference function.
template <class Block>
void check_quantize(const oracle::ggml& g, bool via_chunk, const char* ref_symbol = nullptr) {
    using traits = block_traits<Block>;
    const int id = type_int(traits::id);
    int rows = 0, equal = 0;
    auto ref = ref_symbol ? g.base_symbol<oracle::from_float_fn>(ref_symbol) : g.get_type_traits(id)->from_float_ref;
    REQUIRE_MESSAGE((via_chunk || static_cast<bool>(ref)), "no ggml quantizer for type " << id);
    for (std::int64_t n : test_lengths(traits::block_size)) {
        for (const named_row& row : test_rows(n, traits::block_size, 1234u + unsigned(n))) {
            auto ours = blocks_for<Block>(n);
            auto theirs = blocks_for<Block>(n);
            quantize_row(row.v.data(), ours.data(), n);
            if (via_chunk) g.quantize_chunk(id, row.v.data(), theirs.data(), 0, 1, n, nullptr);
            else ref(row.v.data(), theirs.data(), n);
            const bool same = std::memcmp(ours.data(), theirs.data(), ours.size() * sizeof(Block)) == 0;
            CHECK_MESSAGE(same, "quantize_row differs from ggml: row " << row.name << ", n " << n);
            ++rows;
            equal += same;
        }
    }
    MESSAGE(qinfer::type_name(traits::id) << ": quantize bytes identical to ggml for " << equal << "/" << rows << " rows");
}

// Importance matrices for check_quantize_weighted: one value per column, random and
// adversarial (zeros everywhere or in stretches, one column only, huge and tiny ranges).
inline std::vector<named_row> test_importance(std::int64_t n, std::int64_t block, unsigned seed) {
    std::mt19937 rng(seed);
    std::uniform_real_distribution<float> unit(0.0f, 1.0f);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    auto make = [&](auto f) {
        std::vector<float> v(static_cast<std::size_t>(n));
        for (std::int64_t i = 0; i < n; ++i) v[static_cast<std::size_t>(i)] = f(i);
        return v;
    };
    std::vector<named_row> m;
    m.push_back({"uniform", make([&](std::int64_t) { return unit(rng); })});
    m.push_back({"log-normal", make([&](std::int64_t) { return std::exp(3.0f * normal(rng)); })});
    m.push_back({"ones", make([](std::int64_t) { return 1.0f; })});
    m.push_back({"zeros", make([](std::int64_t) { return 0.0f; })});
    m.push_back({"zero-blocks", make([&](std::int64_t i) { return (i / block) % 2 == 0 ? 0.0f : unit(rng); })});
    m.push_back({"sparse", make([&](std::int64_t) { return unit(rng) < 0.8f ? 0.0f : unit(rng) * 100.0f; })});
    m.push_back({"one-column", make([](std::int64_t i) { return i == 5 ? 1.0f : 0.0f; })});
    m.push_back({"tiny", make([&](std::int64_t) { return unit(rng) * 1e-30f; })});
    m.push_back({"huge", make([&](std::int64_t) { return unit(rng) * 1e20f; })});
    m.push_back({"squares", make([&](std::int64_t) { const float a = normal(rng); return a * a; })});
    return m;
}

// Quantized bytes of the importance-matrix path, quantize_row(x, y, n, importance) row by
// row, against ggml_quantize_chunk(type, rows, nrows, n, imatrix) for several row counts,
// every row distribution of test_rows and every importance of test_importance. Formats
// whose ggml quantizer ignores the imatrix (Q8_0) have no 4-argument quantize_row: their
// plain quantize_row must equal ggml's weighted output.
template <class Block>
void check_quantize_weighted(const oracle::ggml& g) {
    using traits = block_traits<Block>;
    const int id = type_int(traits::id);
    int cases = 0, equal = 0, changed = 0;
    for (std::int64_t n : test_lengths(traits::block_size)) {
        const auto rows = test_rows(n, traits::block_size, 555u + unsigned(n));
        const auto imps = test_importance(n, traits::block_size, 777u + unsigned(n));
        for (std::int64_t nrows : {std::int64_t(1), std::int64_t(3), std::int64_t(rows.size())}) {
            for (std::size_t first = 0; first + std::size_t(nrows) <= rows.size(); first += std::size_t(nrows)) {
                std::vector<float> x;
                for (std::int64_t r = 0; r < nrows; ++r)
                    x.insert(x.end(), rows[first + std::size_t(r)].v.begin(), rows[first + std::size_t(r)].v.end());
                for (const named_row& imp : imps) {
                    auto ours = blocks_for<Block>(n * nrows);
                    auto theirs = blocks_for<Block>(n * nrows);
                    const std::int64_t per_row = n / traits::block_size;
                    for (std::int64_t r = 0; r < nrows; ++r) {
                        if constexpr (requires { quantize_row(x.data(), ours.data(), n, imp.v.data()); })
                            quantize_row(x.data() + r * n, ours.data() + r * per_row, n, imp.v.data());
                        else
                            quantize_row(x.data() + r * n, ours.data() + r * per_row, n);
                    }
                    const std::size_t bytes = g.quantize_chunk(id, x.data(), theirs.data(), 0, nrows, n, imp.v.data());
                    CHECK(bytes == theirs.size() * sizeof(Block));
                    const bool same = std::memcmp(ours.data(), theirs.data(), ours.size() * sizeof(Block)) == 0;
                    CHECK_MESSAGE(same, "weighted quantize_row differs from ggml_quantize_chunk: rows from "
                                            << rows[first].name << " (" << nrows << " rows), importance " << imp.name
                                            << ", n " << n);
                    // how often the importance changes the result at all (it must, somewhere)
                    auto plain = blocks_for<Block>(n * nrows);
                    for (std::int64_t r = 0; r < nrows; ++r)
                        quantize_row(x.data() + r * n, plain.data() + r * per_row, n);
                    changed += std::memcmp(plain.data(), ours.data(), ours.size() * sizeof(Block)) != 0;
                    ++cases;
                    equal += same;
                }
            }
        }
    }
    if constexpr (requires(std::vector<float> v, std::vector<Block> b) { quantize_row(v.data(), b.data(), 0, v.data()); })
        CHECK_MESSAGE(changed > cases / 4, "the importance matrix changed only " << changed << "/" << cases << " results");
    MESSAGE(qinfer::type_name(traits::id) << ": importance-matrix quantization identical to ggml_quantize_chunk for "
                                          << equal << "/" << cases << " cases (" << changed
                                          << " differ from the plain quantize_row)");
}

// Dequantized floats (scalar, xsimd and public paths) bit for bit against ggml's to_float
// (or the named function where ggml's traits have none).
template <class Block>
void check_dequantize(const oracle::ggml& g, const char* ref_symbol = nullptr) {
    using traits = block_traits<Block>;
    const int id = type_int(traits::id);
    auto ref = ref_symbol ? g.base_symbol<oracle::to_float_fn>(ref_symbol) : g.get_type_traits(id)->to_float;
    int rows = 0, equal = 0;
    for (std::int64_t n : test_lengths(traits::block_size)) {
        for (const named_row& row : test_rows(n, traits::block_size, 99u + unsigned(n))) {
            auto q = blocks_for<Block>(n);
            quantize_row(row.v.data(), q.data(), n);
            std::vector<float> scalar(row.v.size()), simd(row.v.size()), pub(row.v.size()), theirs(row.v.size());
            qinfer::detail::scalar::dequantize_row(q.data(), scalar.data(), n);
            qinfer::detail::simd::dequantize_row(q.data(), simd.data(), n);
            dequantize_row(q.data(), pub.data(), n);
            CHECK_MESSAGE(same_bits(scalar.data(), simd.data(), n), "xsimd dequantize differs from scalar: " << row.name);
            CHECK_MESSAGE(same_bits(scalar.data(), pub.data(), n), "dequantize_row differs from scalar: " << row.name);
            bool same = true;
            if (ref) {
                ref(q.data(), theirs.data(), n);
                same = same_bits(scalar.data(), theirs.data(), n);
                CHECK_MESSAGE(same, "dequantize differs from ggml: row " << row.name << ", n " << n);
            } else {
                // ggml has no to_float for F32: the identity is the oracle.
                same = same_bits(scalar.data(), row.v.data(), n);
                CHECK_MESSAGE(same, "dequantize is not the identity: " << row.name);
            }
            ++rows;
            equal += same;
        }
    }
    MESSAGE(qinfer::type_name(traits::id) << ": dequantize bits identical to ggml for " << equal << "/" << rows
                                          << " rows (scalar == xsimd == public path)");
}

// Activation quantization (the operand of dot products) against ggml-cpu's from_float.
template <class Operand>
void check_activations(const oracle::ggml& g) {
    using traits = block_traits<Operand>;
    const int id = type_int(traits::id);
    auto ref = g.get_type_traits_cpu(id)->from_float;
    REQUIRE_MESSAGE(static_cast<bool>(ref), "ggml-cpu has no from_float for type " << id);
    int rows = 0, equal = 0;
    for (std::int64_t n : test_lengths(traits::block_size)) {
        for (const named_row& row : test_rows(n, traits::block_size, 7u + unsigned(n))) {
            auto ours = blocks_for<Operand>(n);
            auto theirs = blocks_for<Operand>(n);
            quantize_activations(row.v.data(), ours.data(), n);
            ref(row.v.data(), theirs.data(), n);
            const bool same = std::memcmp(ours.data(), theirs.data(), ours.size() * sizeof(Operand)) == 0;
            CHECK_MESSAGE(same, "quantize_activations differs from ggml-cpu from_float: " << row.name << ", n " << n);
            ++rows;
            equal += same;
        }
    }
    MESSAGE(qinfer::type_name(traits::id) << ": activation quantization identical to ggml-cpu (" << g.cpu_variant
                                          << ") for " << equal << "/" << rows << " rows");
}

}  // namespace qtest
