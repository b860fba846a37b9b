#include <qinfer/quant/f32.hpp>

// The harness calls quantize_row / dequantize_row / quantize_activations / dot unqualified
// and relies on argument-dependent lookup, which finds nothing for the `float` "blocks" of
// F32: make qinfer's overloads visible to its templates' ordinary lookup instead.
using qinfer::dequantize_row;
using qinfer::dot;
using qinfer::quantize_activations;
using qinfer::quantize_row;

#include "quant/harness_dot.hpp"

namespace {

// ggml exports no *_generic kernel for F32: its x64 build's ggml_vec_dot_f32 is plain C
// (float products summed in double), the order detail::scalar::dot follows.
void check_dot_f32_baseline(const oracle::ggml& g) {
    const auto base = g.generic_symbol<oracle::vec_dot_fn>("ggml_vec_dot_f32");
    if (!base) {
        MESSAGE("f32: ggml's x64 build is not loaded; scalar dot not compared bit for bit");
        return;
    }
    int rows = 0, exact = 0;
    for (std::int64_t n : qtest::test_lengths(1)) {
        const auto w_rows = qtest::test_rows(n, 1, 555u + unsigned(n));
        const auto a_rows = qtest::test_rows(n, 1, 777u + unsigned(n));
        for (std::size_t r = 0; r < w_rows.size(); ++r) {
            const auto& w = w_rows[r].v;
            const auto& a = a_rows[(r + 1) % a_rows.size()].v;
            float theirs = 0;
            base(int(n), &theirs, 0, w.data(), 0, a.data(), 0, 1);
            const float ours = qinfer::detail::scalar::dot(w.data(), a.data(), n);
            const bool same = std::memcmp(&ours, &theirs, sizeof ours) == 0 || (std::isnan(ours) && std::isnan(theirs));
            CHECK_MESSAGE(same, "scalar f32 dot " << ours << " != ggml x64 " << theirs << " (" << w_rows[r].name << ", n " << n << ")");
            ++rows;
            exact += same;
        }
    }
    MESSAGE("f32: scalar dot == ggml x64 ggml_vec_dot_f32 exactly for " << exact << "/" << rows << " rows");
}


// Lengths that leave remainders after the kernels' 32- and 64-element steps (the harness's
// are 1, 3 and 4096): every tier within the harness tolerance of ggml's vec_dot.
void check_odd_lengths(const oracle::ggml& g) {
    using T = float;
    const auto* cpu = g.get_type_traits_cpu(qtest::type_int(qinfer::block_traits<T>::id));
    std::mt19937 rng(2024);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    int rows = 0, close = 0;
    for (std::int64_t n : {31, 37, 100, 129, 4133}) {
        std::vector<float> x(static_cast<std::size_t>(n)), y(x.size()), wf(x.size()), af(x.size());
        for (auto& v : x) v = normal(rng);
        for (auto& v : y) v = normal(rng);
        std::vector<T> w(x.size()), a(x.size());
        qinfer::quantize_row(x.data(), w.data(), n);
        qinfer::quantize_activations(y.data(), a.data(), n);
        qinfer::detail::scalar::dequantize_row(w.data(), wf.data(), n);
        qinfer::detail::scalar::dequantize_row(a.data(), af.data(), n);
        double scale = 0;
        for (std::size_t i = 0; i < wf.size(); ++i) scale += std::fabs(double(wf[i]) * double(af[i]));
        float theirs = 0;
        cpu->vec_dot(int(n), &theirs, 0, w.data(), 0, a.data(), 0, 1);
        bool ok = qtest::dot_close(qinfer::detail::scalar::dot(w.data(), a.data(), n), theirs, scale);
#if QINFER_X86_DISPATCH
        qinfer::set_isa(qinfer::isa::avx512);
        if (qinfer::active_isa() >= qinfer::isa::avx2)
            ok = ok && qtest::dot_close(qinfer::detail::avx2::dot(w.data(), a.data(), n), theirs, scale);
        if (qinfer::active_isa() >= qinfer::isa::avx512) {
            ok = ok && qtest::dot_close(qinfer::detail::avx512::dot(w.data(), a.data(), n), theirs, scale);
        }
#endif
        CHECK_MESSAGE(ok, "f32 dot off at n " << n);
        ++rows;
        close += ok;
    }
    MESSAGE("f32: dot on every tier within tolerance of ggml for " << close << "/" << rows << " rows of 31..4133 elements");
}

}  // namespace

TEST_CASE("f32 matches ggml") {
    const oracle::ggml* g = oracle::get();
    if (!g) return;
    // ggml_quantize_chunk copies F32 rows; ggml has no from_float_ref or to_float for F32
    // (the harness then checks dequantization against the identity).
    qtest::check_quantize<float>(*g, true);
    qtest::check_dequantize<float>(*g);
    qtest::check_activations<float>(*g);
    qtest::check_dot<float>(*g);
    qtest::check_dot_lengths<float>(*g);
    check_dot_f32_baseline(*g);
    check_odd_lengths(*g);
}
