#include <qinfer/quant/q2_k.hpp>

#include "quant/harness_dot.hpp"

TEST_CASE("q2_K matches ggml") {
    const oracle::ggml* g = oracle::get();
    if (!g) return;
    qtest::check_quantize<qinfer::block_q2_K>(*g, true);
    qtest::check_quantize_weighted<qinfer::block_q2_K>(*g);
    qtest::check_quantize<qinfer::block_q2_K>(*g, false);
    qtest::check_dequantize<qinfer::block_q2_K>(*g);
    qtest::check_dot<qinfer::block_q2_K>(*g);
    qtest::check_dot_lengths<qinfer::block_q2_K>(*g);
}
