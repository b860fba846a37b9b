#include <qinfer/quant/bf16.hpp>

#include "quant/harness_dot.hpp"

namespace {

bool same_or_both_nan(float x, float y) {
    return std::memcmp(&x, &y, sizeof x) == 0 || (std::isnan(x) && std::isnan(y));
}

// ggml exports no *_generic kernel for BF16: its x64 build's ggml_vec_dot_bf16 is plain C
// (float products summed in double), the order detail::scalar::dot follows.
void check_dot_bf16_baseline(const oracle::ggml& g) {
    const auto base = g.generic_symbol<oracle::vec_dot_fn>("ggml_vec_dot_bf16");
    if (!base) {
        MESSAGE("bf16: ggml's x64 build is not loaded; scalar dot not compared bit for bit");
        return;
    }
    int rows = 0, exact = 0;
    for (std::int64_t n : qtest::test_lengths(1)) {
        const auto w_rows = qtest::test_rows(n, 1, 555u + unsigned(n));
        const auto a_rows = qtest::test_rows(n, 1, 777u + unsigned(n));
        for (std::size_t r = 0; r < w_rows.size(); ++r) {
            std::vector<qinfer::bf16> w(w_rows[r].v.size()), a(w.size());
            qinfer::quantize_row(w_rows[r].v.data(), w.data(), n);
            qinfer::quantize_activations(a_rows[(r + 1) % a_rows.size()].v.data(), a.data(), n);
            float theirs = 0;
            base(int(n), &theirs, 0, w.data(), 0, a.data(), 0, 1);
            const float ours = qinfer::detail::scalar::dot(w.data(), a.data(), n);
            const bool same = same_or_both_nan(ours, theirs);
            CHECK_MESSAGE(same, "scalar bf16 dot " << ours << " != ggml x64 " << theirs << " (" << w_rows[r].name << ", n " << n << ")");
            ++rows;
            exact += same;
        }
    }
    MESSAGE("bf16: scalar dot == ggml x64 ggml_vec_dot_bf16 exactly for " << exact << "/" << rows << " rows");
}

// Floats that probe float -> bf16 rounding: every bf16 value, its neighbours, the exact
// midpoints (ties) and their neighbours, NaNs with assorted payloads, subnormals, random bits.
std::vector<float> probe_floats() {
    std::vector<std::uint32_t> bits;
    for (std::uint32_t h = 0; h < 0x10000u; ++h) {
        const std::uint32_t f = h << 16;
        bits.insert(bits.end(), {f, f + 1, f - 1, f + 0x8000u, f + 0x7fffu, f + 0x8001u});
    }
    std::mt19937 rng(43);
    for (int i = 0; i < 200000; ++i) bits.push_back(rng());
    if (bits.size() % 2 == 0) bits.push_back(0x3f800000u);  // odd length: exercise the tails
    std::vector<float> out(bits.size());
    std::memcpy(out.data(), bits.data(), bits.size() * sizeof(float));
    return out;
}

// Every conversion path of every tier against ggml, value by value.
void check_conversions(const oracle::ggml& g) {
    const int id = qtest::type_int(qinfer::type_id::bf16);
    auto to_float = g.get_type_traits(id)->to_float;
    auto from_float_cpu = g.get_type_traits_cpu(id)->from_float;
    REQUIRE(static_cast<bool>(to_float));
    REQUIRE(static_cast<bool>(from_float_cpu));

    std::vector<qinfer::bf16> all(0x10000);
    for (std::uint32_t h = 0; h < 0x10000u; ++h) all[h].bits = std::uint16_t(h);
    std::vector<float> theirs(all.size()), ours(all.size());
    to_float(all.data(), theirs.data(), std::int64_t(all.size()));
    qinfer::detail::scalar::dequantize_row(all.data(), ours.data(), std::int64_t(all.size()));
    CHECK_MESSAGE(qtest::same_bits(ours.data(), theirs.data(), std::int64_t(all.size())), "scalar bf16 -> float differs from ggml");
    qinfer::detail::simd::dequantize_row(all.data(), ours.data(), std::int64_t(all.size()));
    CHECK_MESSAGE(qtest::same_bits(ours.data(), theirs.data(), std::int64_t(all.size())), "xsimd bf16 -> float differs from ggml");

    const std::vector<float> probes = probe_floats();
    const auto np = std::int64_t(probes.size());
    std::vector<qinfer::bf16> ref(probes.size()), act(probes.size()), mine(probes.size());
    g.quantize_chunk(id, probes.data(), ref.data(), 0, 1, np, nullptr);
    from_float_cpu(probes.data(), act.data(), np);
    auto same16 = [&](const std::vector<qinfer::bf16>& a, const std::vector<qinfer::bf16>& b) {
        return std::memcmp(a.data(), b.data(), a.size() * sizeof(qinfer::bf16)) == 0;
    };
    CHECK_MESSAGE(same16(ref, act), "ggml's reference and CPU bf16 roundings differ: quantize_activations needs its own path");
    qinfer::detail::scalar::quantize_row(probes.data(), mine.data(), np);
    CHECK_MESSAGE(same16(mine, ref), "scalar float -> bf16 differs from ggml_fp32_to_bf16_row_ref");

    int tiers = 0;
    for (qinfer::isa tier : {qinfer::isa::scalar, qinfer::isa::avx2, qinfer::isa::avx512}) {
        qinfer::set_isa(tier);
        if (qinfer::active_isa() != tier) continue;
        ++tiers;
        qinfer::dequantize_row(all.data(), ours.data(), std::int64_t(all.size()));
        CHECK_MESSAGE(qtest::same_bits(ours.data(), theirs.data(), std::int64_t(all.size())),
                      "bf16 -> float differs from ggml on tier " << qinfer::isa_name(tier));
        qinfer::quantize_row(probes.data(), mine.data(), np);
        CHECK_MESSAGE(same16(mine, ref), "quantize_row differs from ggml on tier " << qinfer::isa_name(tier));
        qinfer::quantize_activations(probes.data(), mine.data(), np);
        CHECK_MESSAGE(same16(mine, act), "quantize_activations differs from ggml-cpu on tier " << qinfer::isa_name(tier));
    }
    qinfer::set_isa(qinfer::isa::avx512);
    MESSAGE("bf16: all 65536 bf16 -> float and " << np << " probe floats -> bf16 (ties, NaNs, subnormals) "
            "checked against ggml on " << tiers << " tiers");
}


// Lengths that leave remainders after the kernels' 32- and 64-element steps (the harness's
// are 1, 3 and 4096): every tier within the harness tolerance of ggml's vec_dot.
void check_odd_lengths(const oracle::ggml& g) {
    using T = qinfer::bf16;
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
            // the kernel for AVX-512 CPUs without BF16 instructions, not dispatched to here
            ok = ok && qtest::dot_close(qinfer::detail::avx512::dot_f32_lanes(w.data(), a.data(), n), theirs, scale);
        }
#endif
        CHECK_MESSAGE(ok, "bf16 dot off at n " << n);
        ++rows;
        close += ok;
    }
    MESSAGE("bf16: dot on every tier within tolerance of ggml for " << close << "/" << rows << " rows of 31..4133 elements" << " (both AVX-512 kernels)");
}

}  // namespace

TEST_CASE("bf16 matches ggml") {
    const oracle::ggml* g = oracle::get();
    if (!g) return;
    qtest::check_quantize<qinfer::bf16>(*g, true);
    qtest::check_quantize<qinfer::bf16>(*g, false);
    qtest::check_dequantize<qinfer::bf16>(*g);
    qtest::check_activations<qinfer::bf16>(*g);
    qtest::check_dot<qinfer::bf16>(*g);
    qtest::check_dot_lengths<qinfer::bf16>(*g);
    check_dot_bf16_baseline(*g);
    check_odd_lengths(*g);
    check_conversions(*g);
}
