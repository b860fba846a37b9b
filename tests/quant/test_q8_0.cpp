#include <qinfer/quant/q8_0.hpp>

#include "quant/harness_dot.hpp"

TEST_CASE("q8_0 matches ggml") {
    const oracle::ggml* g = oracle::get();
    if (!g) return;
    qtest::check_quantize<qinfer::block_q8_0>(*g, true);
    qtest::check_quantize_weighted<qinfer::block_q8_0>(*g);
    qtest::check_quantize<qinfer::block_q8_0>(*g, false);
    qtest::check_dequantize<qinfer::block_q8_0>(*g);
    qtest::check_activations<qinfer::block_q8_0>(*g);
    qtest::check_dot<qinfer::block_q8_0>(*g);
    qtest::check_dot_lengths<qinfer::block_q8_0>(*g);
}
