#include <qinfer/quant/q8_k.hpp>

#include "quant/harness.hpp"

TEST_CASE("q8_K matches ggml") {
    const oracle::ggml* g = oracle::get();
    if (!g) return;
    // ggml_quantize_chunk does not take Q8_K (it is an activation type): the reference
    // quantizer and dequantizer are exported by name.
    qtest::check_quantize<qinfer::block_q8_K>(*g, false, "quantize_row_q8_K_ref");
    qtest::check_dequantize<qinfer::block_q8_K>(*g, "dequantize_row_q8_K");
    qtest::check_activations<qinfer::block_q8_K>(*g);
}
