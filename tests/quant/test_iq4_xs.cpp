#include <qinfer/quant/iq4_xs.hpp>

#include "quant/harness_dot.hpp"

TEST_CASE("iq4_xs matches ggml") {
    const oracle::ggml* g = oracle::get();
    if (!g) return;
    qtest::check_quantize<qinfer::block_iq4_xs>(*g, true);
    qtest::check_quantize_weighted<qinfer::block_iq4_xs>(*g);
    qtest::check_quantize<qinfer::block_iq4_xs>(*g, false);
    qtest::check_dequantize<qinfer::block_iq4_xs>(*g);
    qtest::check_dot<qinfer::block_iq4_xs>(*g);
    qtest::check_dot_lengths<qinfer::block_iq4_xs>(*g);
}
