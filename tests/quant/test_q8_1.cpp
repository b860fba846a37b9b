#include <qinfer/quant/q8_1.hpp>

#include "quant/harness.hpp"

namespace {

// ggml has no to_float for Q8_1 (nothing dequantizes it): every dequantization path is
// checked bit for bit against d * qs computed here from blocks ggml itself quantized.
void check_q8_1_dequantize(const oracle::ggml& g) {
    auto ref = g.base_symbol<oracle::from_float_fn>("quantize_row_q8_1_ref");
    REQUIRE(static_cast<bool>(ref));
    int rows = 0, equal = 0;
    for (std::int64_t n : qtest::test_lengths(32)) {
        for (const qtest::named_row& row : qtest::test_rows(n, 32, 99u + unsigned(n))) {
            auto q = qtest::blocks_for<qinfer::block_q8_1>(n);
            ref(row.v.data(), q.data(), n);
            std::vector<float> expect(row.v.size()), scalar(row.v.size()), simd(row.v.size()), pub(row.v.size());
            for (std::int64_t i = 0; i < n; ++i) {
                const auto& b = q[static_cast<std::size_t>(i / 32)];
                expect[static_cast<std::size_t>(i)] = float(b.qs[i % 32]) * qinfer::to_float(b.d);
            }
            qinfer::detail::scalar::dequantize_row(q.data(), scalar.data(), n);
            qinfer::detail::simd::dequantize_row(q.data(), simd.data(), n);
            qinfer::dequantize_row(q.data(), pub.data(), n);
            const bool same = qtest::same_bits(scalar.data(), expect.data(), n) &&
                              qtest::same_bits(simd.data(), expect.data(), n) && qtest::same_bits(pub.data(), expect.data(), n);
            CHECK_MESSAGE(same, "q8_1 dequantize differs from d * qs: row " << row.name << ", n " << n);
            ++rows;
            equal += same;
        }
    }
    MESSAGE("q8_1: dequantize bits identical to d * qs of ggml's blocks for " << equal << "/" << rows
            << " rows (scalar == xsimd == public path; ggml has no to_float for Q8_1)");
}

}  // namespace

TEST_CASE("q8_1 matches ggml") {
    const oracle::ggml* g = oracle::get();
    if (!g) return;
    // ggml_quantize_chunk does not take Q8_1 (an activation type): the reference quantizer
    // is exported by name and is also the type's from_float_ref.
    qtest::check_quantize<qinfer::block_q8_1>(*g, false, "quantize_row_q8_1_ref");
    qtest::check_quantize<qinfer::block_q8_1>(*g, false);
    check_q8_1_dequantize(*g);
    qtest::check_activations<qinfer::block_q8_1>(*g);
}
