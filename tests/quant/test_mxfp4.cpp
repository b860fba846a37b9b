#include <qinfer/quant/mxfp4.hpp>

#include <limits>

#include "quant/harness_dot.hpp"

namespace {

using qinfer::block_mxfp4;

// ggml-cpu's from_float for MXFP4 (what converts tensors to MXFP4 at run time) must give
// the bytes of quantize_row too: ggml has one MXFP4 quantizer.
void check_quantize_cpu(const oracle::ggml& g) {
    const auto cpu = g.get_type_traits_cpu(qtest::type_int(qinfer::type_id::mxfp4))->from_float;
    REQUIRE(static_cast<bool>(cpu));
    int rows = 0, equal = 0;
    for (std::int64_t n : qtest::test_lengths(32)) {
        for (const qtest::named_row& row : qtest::test_rows(n, 32, 4321u + unsigned(n))) {
            auto ours = qtest::blocks_for<block_mxfp4>(n);
            auto theirs = qtest::blocks_for<block_mxfp4>(n);
            qinfer::quantize_row(row.v.data(), ours.data(), n);
            cpu(row.v.data(), theirs.data(), n);
            const bool same = std::memcmp(ours.data(), theirs.data(), ours.size() * sizeof(block_mxfp4)) == 0;
            CHECK_MESSAGE(same, "quantize_row differs from ggml-cpu's from_float: row " << row.name << ", n " << n);
            ++rows;
            equal += same;
        }
    }
    MESSAGE("mxfp4: quantize bytes identical to ggml-cpu from_float for " << equal << "/" << rows << " rows");
}

// Blocks chosen for the exponent and the nearest-code search: largest magnitudes at, just
// under and just over powers of two (where log2f's rounding decides the exponent),
// subnormal and near-FLT_MAX maxima (exponents that wrap or reach the top), NaNs among
// finite values, exact midpoints between two levels, and signed zeros.
void check_quantize_edges(const oracle::ggml& g) {
    const int id = qtest::type_int(qinfer::type_id::mxfp4);
    std::vector<float> x;
    auto block = [&](float amax, auto f) {
        for (int j = 0; j < 32; ++j) x.push_back(j == 5 ? amax : f(j));
    };
    std::mt19937 rng(77);
    std::uniform_real_distribution<float> unit(-1.0f, 1.0f);
    for (int p = -149; p <= 127; p += 3) {
        const float m = std::ldexp(1.0f, p);
        for (float amax : {m, std::nextafter(m, 0.0f), std::nextafter(m, 2 * m), -m})
            block(amax, [&](int) { return unit(rng) * std::fabs(amax); });
    }
    block(std::numeric_limits<float>::max(), [&](int) { return unit(rng) * 3e38f; });
    block(std::numeric_limits<float>::denorm_min(), [](int) { return 0.0f; });
    block(1.0f, [](int j) { return j % 3 == 0 ? std::numeric_limits<float>::quiet_NaN() : 0.25f * float(j % 4); });
    const float d = 0.125f;  // amax 1 -> scale 2^-3: midpoints between levels, both signs
    block(1.0f, [&](int j) { return (j % 2 ? -1.0f : 1.0f) * d * (float(j % 13) + 0.5f); });
    block(1.0f, [&](int j) { return j % 2 ? -0.0f : 0.0f; });
    block(-12.0f, [&](int j) { return -d * 8.0f * float(j % 16) / 15.0f; });
    const std::int64_t n = std::int64_t(x.size());
    auto ours = qtest::blocks_for<block_mxfp4>(n);
    auto theirs = qtest::blocks_for<block_mxfp4>(n);
    qinfer::quantize_row(x.data(), ours.data(), n);
    g.quantize_chunk(id, x.data(), theirs.data(), 0, 1, n, nullptr);
    int equal = 0;
    for (std::size_t i = 0; i < ours.size(); ++i) {
        const bool same = std::memcmp(&ours[i], &theirs[i], sizeof(block_mxfp4)) == 0;
        CHECK_MESSAGE(same, "edge block " << i << ": e " << int(ours[i].e) << " vs ggml " << int(theirs[i].e));
        equal += same;
    }
    MESSAGE("mxfp4: edge-case blocks quantized identically to ggml for " << equal << "/" << ours.size());
}

#if QINFER_X86_DISPATCH
QINFER_TARGET_AVX2 void store_scales(const block_mxfp4* w, const qinfer::block_q8_0* a, float* d8, float* d2) {
    using cb = qinfer::detail::mxfp4::codebook;
    _mm256_storeu_ps(d8, cb::scales8(w, a));
    _mm_storeu_ps(d2, cb::scales2(w, a));
}
#endif

// Every exponent byte 0..255 (subnormal scales, 2^127, the E8M0 NaN code 255) with random
// codes: dequantized bits against ggml's to_float, the scalar dot against ggml's generic
// kernel exactly, and every tier against ggml's vec_dot.
void check_all_exponents(const oracle::ggml& g) {
    const int id = qtest::type_int(qinfer::type_id::mxfp4);
    const auto* cpu = g.get_type_traits_cpu(id);
    const auto generic = g.generic_symbol<oracle::vec_dot_fn>("ggml_vec_dot_mxfp4_q8_0_generic");
    const auto to_float = g.get_type_traits(id)->to_float;
    REQUIRE(static_cast<bool>(to_float));
    std::mt19937 rng(99);
    const std::int64_t nb = 256, n = 32 * nb;
    std::vector<block_mxfp4> w(nb);
    for (std::int64_t i = 0; i < nb; ++i) {
        w[i].e = static_cast<std::uint8_t>(i);
        for (auto& q : w[i].qs) q = static_cast<std::uint8_t>(rng());
    }
    std::vector<float> ours(n), theirs(n), act(n);
    qinfer::detail::scalar::dequantize_row(w.data(), ours.data(), n);
    to_float(w.data(), theirs.data(), n);
    CHECK_MESSAGE(qtest::same_bits(ours.data(), theirs.data(), n), "dequantize differs from ggml over exponents 0..255");
    qinfer::detail::simd::dequantize_row(w.data(), theirs.data(), n);
    CHECK_MESSAGE(qtest::same_bits(ours.data(), theirs.data(), n), "xsimd dequantize differs from scalar over exponents 0..255");
    // Windows of 32 consecutive exponents; activations 1e-5 times smaller against the
    // exponents >= 160 keep every dot finite (ggml's kernels sum in different orders, so an
    // overflow would give inf in one and NaN in another).
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (std::int64_t j = 0; j < n; ++j) act[j] = normal(rng) * (j / 32 >= 160 ? 1e-5f : 1.0f);
    std::vector<qinfer::block_q8_0> a(nb);
    qinfer::quantize_activations(act.data(), a.data(), n);
    int windows = 0, exact = 0, close = 0;
    for (std::int64_t first = 0; first + 32 <= nb; first += 16) {
        const std::int64_t m = 32 * 32;
        const float s = qinfer::detail::scalar::dot(w.data() + first, a.data() + first, m);
        float gen = 0, theirs_dot = 0;
        if (generic) generic(int(m), &gen, 0, w.data() + first, 0, a.data() + first, 0, 1);
        cpu->vec_dot(int(m), &theirs_dot, 0, w.data() + first, 0, a.data() + first, 0, 1);
        const bool same = std::memcmp(&gen, &s, sizeof s) == 0;
        CHECK_MESSAGE((same || !generic), "scalar dot " << s << " != ggml generic " << gen << " at exponents " << first << "+");
        double scale = 0;
        std::vector<float> af(m);
        qinfer::detail::scalar::dequantize_row(a.data() + first, af.data(), m);
        for (std::int64_t j = 0; j < m; ++j) {  // in double: 12 * 2^127 is no float
            const block_mxfp4& b = w[first + j / 32];
            const int k = j % 32, code = k < 16 ? b.qs[k] & 0x0f : b.qs[k - 16] >> 4;
            scale += std::fabs(std::ldexp(double(qinfer::detail::mxfp4::levels[code]), int(b.e) - 128) * double(af[j]));
        }
        bool ok = std::isfinite(theirs_dot) && qtest::dot_close(s, theirs_dot, scale);
#if QINFER_X86_DISPATCH
        qinfer::set_isa(qinfer::isa::avx512);
        if (qinfer::active_isa() >= qinfer::isa::avx2)
            ok = ok && qtest::dot_close(qinfer::detail::avx2::dot(w.data() + first, a.data() + first, m), theirs_dot, scale);
        if (qinfer::active_isa() >= qinfer::isa::avx512)
            ok = ok && qtest::dot_close(qinfer::detail::avx512::dot(w.data() + first, a.data() + first, m), theirs_dot, scale);
#endif
        CHECK_MESSAGE(ok, "dot " << s << " vs ggml " << theirs_dot << " (scale " << scale << ") at exponents " << first << ".." << first + 31);
        ++windows;
        exact += same;
        close += ok;
    }
#if QINFER_X86_DISPATCH
    // The block scales the AVX2 and AVX-512 kernels compute several at a time (scales8 is
    // what the AVX-512 kernel uses; it needs only AVX2, so it is checked on AVX2 machines
    // too): the bits of the scalar da * dw for every exponent.
    qinfer::set_isa(qinfer::isa::avx512);
    if (qinfer::active_isa() >= qinfer::isa::avx2) {
        using cb = qinfer::detail::mxfp4::codebook;
        int same = 0;
        for (std::int64_t i = 0; i < nb; i += 8) {
            alignas(32) float d8[8], d2[4];
            store_scales(w.data() + i, a.data() + i, d8, d2);
            for (int k = 0; k < 8; ++k) {
                const float want = qinfer::to_float(a[i + k].d) * qinfer::detail::mxfp4::scale_of(w[i + k].e);
                const float one = cb::scale(w[i + k], a[i + k]);
                const bool ok = std::memcmp(&want, &d8[k], 4) == 0 && std::memcmp(&want, &one, 4) == 0 &&
                                (k >= 2 || std::memcmp(&want, &d2[k], 4) == 0);
                CHECK_MESSAGE(ok, "vector block scale differs from scalar at exponent " << (i + k));
                same += ok;
            }
        }
        MESSAGE("mxfp4: x86 block scales (scale, scales2, scales8) equal the scalar ones for " << same << "/" << nb << " exponents");
    }
#endif
    MESSAGE("mxfp4: exponents 0..255 dequantize bit-identical to ggml; dot on " << windows << " exponent windows: "
            << exact << " equal to ggml generic, " << close << " within tolerance on every tier");
}

}  // namespace

TEST_CASE("mxfp4 matches ggml") {
    const oracle::ggml* g = oracle::get();
    if (!g) return;
    qtest::check_quantize<block_mxfp4>(*g, true);
    qtest::check_quantize<block_mxfp4>(*g, false);  // quantize_row_mxfp4_ref: the same function
    check_quantize_cpu(*g);
    qtest::check_quantize_weighted<block_mxfp4>(*g);  // ggml ignores the imatrix
    check_quantize_edges(*g);
    qtest::check_dequantize<block_mxfp4>(*g);
    check_all_exponents(*g);
    qtest::check_dot<block_mxfp4>(*g);
    qtest::check_dot_lengths<block_mxfp4>(*g);
}
