#include <qinfer/quant/q5_1.hpp>

#include "quant/harness_dot.hpp"

TEST_CASE("q5_1 matches ggml") {
    const oracle::ggml* g = oracle::get();
    if (!g) return;
    qtest::check_quantize<qinfer::block_q5_1>(*g, true);
    qtest::check_quantize_weighted<qinfer::block_q5_1>(*g);
    qtest::check_quantize<qinfer::block_q5_1>(*g, false);
    qtest::check_dequantize<qinfer::block_q5_1>(*g);
    qtest::check_dot<qinfer::block_q5_1>(*g);
    qtest::check_dot_lengths<qinfer::block_q5_1>(*g);
}
