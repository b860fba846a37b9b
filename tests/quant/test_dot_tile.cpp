// dot_tile (R weight rows x C activation rows at once, the prefill kernels) must give the
// very bits of `dot` for every cell, whatever the tile shape, the strides and the row length
// (including the < 4 leftover blocks), so a token's logits do not depend on its batch.
// `dot` itself is checked against ggml in the per-format tests.
#include <qinfer/quant/dispatch.hpp>

#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <doctest/doctest.h>

namespace {

template <class Block, int R, int C>
void check_shape(const std::vector<Block>& w, std::int64_t ldw,
                 const std::vector<typename qinfer::block_traits<Block>::dot_operand>& a, std::int64_t lda,
                 std::int64_t n) {
    const std::int64_t ldy = R + 1;  // outputs of one activation row: wider than the tile
    float tile[C * (R + 1)];
    std::fill(std::begin(tile), std::end(tile), -1.0f);
    qinfer::dot_tile<R, C>(w.data(), ldw, a.data(), lda, n, tile, ldy);
    for (int r = 0; r < R; ++r)
        for (int c = 0; c < C; ++c) {
            const float want = qinfer::dot(w.data() + r * ldw, a.data() + c * lda, n);
            const float got = tile[c * ldy + r];
            INFO("R=" << R << " C=" << C << " n=" << n << " cell (" << r << ", " << c << ")");
            CHECK(std::memcmp(&want, &got, sizeof want) == 0);
        }
}

template <class Block>
void check_tiles() {
    using Operand = typename qinfer::block_traits<Block>::dot_operand;
    constexpr std::int64_t qk = qinfer::block_traits<Block>::block_size;
    std::mt19937 rng(1234);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (std::int64_t blocks : {1, 2, 3, 4, 5, 7, 8, 9, 12, 64}) {
        // F16 (one weight per "block") gets lengths around its 64-weight steps, with tails.
        const std::int64_t n = qk == 1 ? blocks * 64 + blocks % 5 : blocks * qk;
        const std::int64_t ldw = n / qk + 3, lda = n / qinfer::block_traits<Operand>::block_size + 1;
        std::vector<float> x(static_cast<std::size_t>(n));
        std::vector<Block> w(static_cast<std::size_t>(4 * ldw));
        std::vector<Operand> a(static_cast<std::size_t>(4 * lda));
        for (int r = 0; r < 4; ++r) {
            for (auto& v : x) v = normal(rng);
            qinfer::quantize_row(x.data(), w.data() + r * ldw, n);
        }
        for (int c = 0; c < 4; ++c) {
            for (auto& v : x) v = normal(rng) * (c + 1);
            qinfer::quantize_activations(x.data(), a.data() + c * lda, n);
        }
        check_shape<Block, 1, 1>(w, ldw, a, lda, n);
        check_shape<Block, 1, 4>(w, ldw, a, lda, n);
        check_shape<Block, 4, 1>(w, ldw, a, lda, n);
        check_shape<Block, 2, 3>(w, ldw, a, lda, n);
        check_shape<Block, 3, 2>(w, ldw, a, lda, n);
        check_shape<Block, 4, 4>(w, ldw, a, lda, n);
    }
}

}  // namespace

TEST_CASE("dot_tile gives the bits of dot: q4_0") { check_tiles<qinfer::block_q4_0>(); }
TEST_CASE("dot_tile gives the bits of dot: q8_0") { check_tiles<qinfer::block_q8_0>(); }
TEST_CASE("dot_tile gives the bits of dot: q4_K") { check_tiles<qinfer::block_q4_K>(); }
TEST_CASE("dot_tile gives the bits of dot: q6_K") { check_tiles<qinfer::block_q6_K>(); }
TEST_CASE("dot_tile gives the bits of dot: f16") { check_tiles<qinfer::fp16>(); }
