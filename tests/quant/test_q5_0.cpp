#include <qinfer/quant/q5_0.hpp>

#include "quant/harness_dot.hpp"

namespace {

// Row lengths whose block counts leave remainders after the kernels' 2- and 4-block steps
// (the harness's lengths are 1, 3 and 128 blocks): every tier within the harness tolerance
// of ggml's vec_dot and of the scalar twin.
void check_odd_lengths(const oracle::ggml& g) {
    using W = qinfer::block_q5_0;
    using A = qinfer::block_traits<W>::dot_operand;
    const auto* cpu = g.get_type_traits_cpu(qtest::type_int(qinfer::block_traits<W>::id));
    std::mt19937 rng(2024);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    int rows = 0, close = 0;
    for (std::int64_t nb : {2, 5, 6, 7, 9, 13, 130}) {
        const std::int64_t n = 32 * nb;
        std::vector<float> x(static_cast<std::size_t>(n)), y(x.size()), wf(x.size()), af(x.size());
        for (auto& v : x) v = normal(rng);
        for (auto& v : y) v = normal(rng);
        auto w = qtest::blocks_for<W>(n);
        auto a = qtest::blocks_for<A>(n);
        qinfer::quantize_row(x.data(), w.data(), n);
        qinfer::quantize_activations(y.data(), a.data(), n);
        qinfer::detail::scalar::dequantize_row(w.data(), wf.data(), n);
        qinfer::detail::scalar::dequantize_row(a.data(), af.data(), n);
        double scale = 0;
        for (std::size_t i = 0; i < wf.size(); ++i) scale += std::fabs(double(wf[i]) * double(af[i]));
        float theirs = 0;
        cpu->vec_dot(int(n), &theirs, 0, w.data(), 0, a.data(), 0, 1);
        const float scalar = qinfer::detail::scalar::dot(w.data(), a.data(), n);
        bool ok = qtest::dot_close(scalar, theirs, scale);
#if QINFER_X86_DISPATCH
        qinfer::set_isa(qinfer::isa::avx512);
        if (qinfer::active_isa() >= qinfer::isa::avx2)
            ok = ok && qtest::dot_close(qinfer::detail::avx2::dot(w.data(), a.data(), n), theirs, scale);
        if (qinfer::active_isa() >= qinfer::isa::avx512)
            ok = ok && qtest::dot_close(qinfer::detail::avx512::dot(w.data(), a.data(), n), theirs, scale);
#endif
        CHECK_MESSAGE(ok, "q5_0 dot off at " << nb << " blocks");
        ++rows;
        close += ok;
    }
    MESSAGE("q5_0: dot on every tier within tolerance of ggml for " << close << "/" << rows << " rows of 2..130 blocks");
}

}  // namespace

TEST_CASE("q5_0 matches ggml") {
    const oracle::ggml* g = oracle::get();
    if (!g) return;
    qtest::check_quantize<qinfer::block_q5_0>(*g, true);
    qtest::check_quantize<qinfer::block_q5_0>(*g, false);
    qtest::check_dequantize<qinfer::block_q5_0>(*g);
    qtest::check_dot<qinfer::block_q5_0>(*g);
    check_odd_lengths(*g);
}
