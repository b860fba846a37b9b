// tests/quant/harness_dot.hpp — the dot-product half of the conformance procedure.
// Include it after the format header under test: the kernels' namespaces
// (detail::scalar / avx2 / avx512) are looked up where this template is defined.
#pragma once

#include "quant/harness.hpp"

namespace qtest {

inline bool dot_close(double ours, double theirs, double scale) {
    if (!std::isfinite(theirs) || !std::isfinite(ours))
        return std::isnan(theirs) == std::isnan(ours) && (std::isnan(theirs) || ours == theirs);
    return std::fabs(ours - theirs) <= dot_tolerance * scale + 1e-35;
}

// dot(weights, activations): the scalar twin must equal ggml's generic C kernel exactly
// (same operation order); every tier must be within dot_tolerance of ggml's own vec_dot.
template <class Block>
void check_dot(const oracle::ggml& g) {
    using traits = block_traits<Block>;
    using Operand = typename traits::dot_operand;
    const int id = type_int(traits::id);
    const auto* cpu = g.get_type_traits_cpu(id);
    REQUIRE(static_cast<bool>(cpu->vec_dot));
    REQUIRE(cpu->vec_dot_type == type_int(block_traits<Operand>::id));
    const std::string generic_name = "ggml_vec_dot_" + std::string(qinfer::type_name(traits::id)) + "_" +
                                     std::string(qinfer::type_name(block_traits<Operand>::id)) + "_generic";
    const auto generic = g.generic_symbol<oracle::vec_dot_fn>(generic_name.c_str());
    const qinfer::isa best = [] { qinfer::set_isa(qinfer::isa::avx512); return qinfer::active_isa(); }();
    int rows = 0, exact = 0, close = 0;
    for (std::int64_t n : test_lengths(traits::block_size)) {
        const auto w_rows = test_rows(n, traits::block_size, 555u + unsigned(n));
        const auto a_rows = test_rows(n, traits::block_size, 777u + unsigned(n));
        for (std::size_t r = 0; r < w_rows.size(); ++r) {
            const named_row& wr = w_rows[r];
            const named_row& ar = a_rows[(r + 1) % a_rows.size()];  // pair different shapes
            auto w = blocks_for<Block>(n);
            auto a = blocks_for<Operand>(n);
            quantize_row(wr.v.data(), w.data(), n);
            quantize_activations(ar.v.data(), a.data(), n);
            std::vector<float> wf(wr.v.size()), af(ar.v.size());
            qinfer::detail::scalar::dequantize_row(w.data(), wf.data(), n);
            qinfer::detail::scalar::dequantize_row(a.data(), af.data(), n);
            double scale = 0;
            for (std::size_t i = 0; i < wf.size(); ++i) scale += std::fabs(double(wf[i]) * double(af[i]));

            float theirs = 0;
            cpu->vec_dot(int(n), &theirs, 0, w.data(), 0, a.data(), 0, 1);
            const float scalar = qinfer::detail::scalar::dot(w.data(), a.data(), n);
            bool ok = dot_close(scalar, theirs, scale);
            CHECK_MESSAGE(ok, "scalar dot " << scalar << " vs ggml " << theirs << " (" << wr.name << " x " << ar.name << ", n " << n << ")");
            if (generic) {
                float gen = 0;
                generic(int(n), &gen, 0, w.data(), 0, a.data(), 0, 1);
                const bool same = std::memcmp(&gen, &scalar, sizeof(float)) == 0 || (std::isnan(gen) && std::isnan(scalar));
                CHECK_MESSAGE(same, "scalar dot " << scalar << " != ggml generic " << gen << " (" << wr.name << ", n " << n << ")");
                exact += same;
            }
#if QINFER_X86_DISPATCH
            if (best >= qinfer::isa::avx2) {
                const float v = qinfer::detail::avx2::dot(w.data(), a.data(), n);
                const bool c = dot_close(v, theirs, scale) && dot_close(v, scalar, scale);
                CHECK_MESSAGE(c, "avx2 dot " << v << " vs ggml " << theirs << " (" << wr.name << ", n " << n << ")");
                ok = ok && c;
            }
            if (best >= qinfer::isa::avx512) {
                const float v = qinfer::detail::avx512::dot(w.data(), a.data(), n);
                const bool c = dot_close(v, theirs, scale) && dot_close(v, scalar, scale);
                CHECK_MESSAGE(c, "avx512 dot " << v << " vs ggml " << theirs << " (" << wr.name << ", n " << n << ")");
                ok = ok && c;
            }
#endif
            const float pub = dot(w.data(), a.data(), n);
            CHECK(dot_close(pub, theirs, scale));
            ++rows;
            close += ok;
        }
    }
    MESSAGE(qinfer::type_name(traits::id) << " x " << qinfer::type_name(block_traits<Operand>::id) << ": dot within "
            << dot_tolerance << " of ggml (" << g.cpu_variant << ") for " << close << "/" << rows
            << " rows on tiers up to " << qinfer::isa_name(best) << "; scalar == ggml generic exactly for " << exact
            << "/" << rows << std::string(generic ? "" : " (ggml exports no generic kernel)"));
}

// Row lengths whose block counts leave remainders after the kernels' 2- and 4-block steps
// (check_dot's lengths are 1, 3 and 16+ blocks): every tier within the tolerance of ggml's
// vec_dot.
template <class Block>
void check_dot_lengths(const oracle::ggml& g) {
    using traits = block_traits<Block>;
    using Operand = typename traits::dot_operand;
    const auto* cpu = g.get_type_traits_cpu(type_int(traits::id));
    std::mt19937 rng(2024);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    int rows = 0, close = 0;
    for (std::int64_t nb : {2, 5, 6, 7, 9, 13, 130}) {
        const std::int64_t n = traits::block_size * nb;
        std::vector<float> x(static_cast<std::size_t>(n)), y(x.size()), wf(x.size()), af(x.size());
        for (auto& v : x) v = normal(rng);
        for (auto& v : y) v = normal(rng);
        auto w = blocks_for<Block>(n);
        auto a = blocks_for<Operand>(n);
        quantize_row(x.data(), w.data(), n);
        quantize_activations(y.data(), a.data(), n);
        qinfer::detail::scalar::dequantize_row(w.data(), wf.data(), n);
        qinfer::detail::scalar::dequantize_row(a.data(), af.data(), n);
        double scale = 0;
        for (std::size_t i = 0; i < wf.size(); ++i) scale += std::fabs(double(wf[i]) * double(af[i]));
        float theirs = 0;
        cpu->vec_dot(int(n), &theirs, 0, w.data(), 0, a.data(), 0, 1);
        bool ok = dot_close(qinfer::detail::scalar::dot(w.data(), a.data(), n), theirs, scale);
#if QINFER_X86_DISPATCH
        qinfer::set_isa(qinfer::isa::avx512);
        if (qinfer::active_isa() >= qinfer::isa::avx2)
            ok = ok && dot_close(qinfer::detail::avx2::dot(w.data(), a.data(), n), theirs, scale);
        if (qinfer::active_isa() >= qinfer::isa::avx512)
            ok = ok && dot_close(qinfer::detail::avx512::dot(w.data(), a.data(), n), theirs, scale);
#endif
        CHECK_MESSAGE(ok, qinfer::type_name(traits::id) << " dot off at " << nb << " blocks");
        ++rows;
        close += ok;
    }
    MESSAGE(qinfer::type_name(traits::id) << ": dot on every tier within tolerance of ggml for " << close << "/" << rows
                                          << " rows of 2..130 blocks");
}

}  // namespace qtest
