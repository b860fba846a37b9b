#include <qinfer/quant/q8_0.hpp>
#include <qinfer/quant/q8_1.hpp>

#include <limits>
#include <vector>

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

// Non-finite activations (a model with NaN or infinite weights produces them) quantize to
// defined values, NaN to -128 as ggml's x86 convert-and-saturating-pack gives it. A plain
// float-to-int8 cast was undefined behaviour there (found by tests/fuzz/model_fuzz.cpp).
TEST_CASE("q8_0 / q8_1: NaN and infinite inputs quantize without undefined behaviour") {
    std::vector<float> x(32, 1.0f);
    x[3] = std::numeric_limits<float>::quiet_NaN();
    qinfer::block_q8_0 a[1];
    qinfer::quantize_activations(x.data(), a, 32);
    CHECK(a[0].qs[0] == 127);
    CHECK(a[0].qs[3] == -128);
    qinfer::quantize_row(x.data(), a, 32);
    CHECK(a[0].qs[0] == 127);
    CHECK(a[0].qs[3] == -128);
    qinfer::block_q8_1 b[1];
    qinfer::quantize_activations(x.data(), b, 32);
    CHECK(b[0].qs[0] == 127);
    CHECK(b[0].qs[3] == -128);
    qinfer::quantize_row(x.data(), b, 32);
    CHECK(b[0].qs[3] == -128);
    x[5] = std::numeric_limits<float>::infinity();  // scale infinite: inf * 0 = NaN
    qinfer::quantize_activations(x.data(), a, 32);
    CHECK(a[0].qs[5] == -128);
    CHECK(a[0].qs[0] == 0);
}
