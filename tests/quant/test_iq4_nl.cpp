#include <qinfer/quant/iq4_nl.hpp>

#include "quant/harness_dot.hpp"

namespace {

// ggml's quantize_row_iq4_nl_ref (ggml_get_type_traits(IQ4_NL)->from_float_ref, also
// ggml-cpu's from_float) is a cheaper algorithm than ggml_quantize_chunk's, so qinfer
// exposes it separately as quantize_row_ref; check it byte for byte here.
//
// One exception: ggml leaves the indices of an all-zero block (d = 0) as its scratch buffer
// held them, which for the blocks before the first non-zero one is uninitialized stack
// memory (it varies from call to call). Only d is compared in those leading blocks; their
// decoded values are zeros either way.
bool same_blocks(const std::vector<qinfer::block_iq4_nl>& a, const std::vector<qinfer::block_iq4_nl>& b) {
    bool leading = true;
    for (std::size_t i = 0; i < a.size(); ++i) {
        leading = leading && a[i].d.bits == 0 && b[i].d.bits == 0;
        const bool same = leading ? true : std::memcmp(&a[i], &b[i], sizeof(a[i])) == 0;
        if (!same) return false;
    }
    return true;
}

void check_quantize_ref(const oracle::ggml& g) {
    using qinfer::block_iq4_nl;
    const int id = qtest::type_int(qinfer::type_id::iq4_nl);
    const auto ref = g.get_type_traits(id)->from_float_ref;
    const auto cpu = g.get_type_traits_cpu(id)->from_float;
    REQUIRE(static_cast<bool>(ref));
    int rows = 0, equal = 0;
    for (std::int64_t n : qtest::test_lengths(32)) {
        for (const qtest::named_row& row : qtest::test_rows(n, 32, 4321u + unsigned(n))) {
            auto ours = qtest::blocks_for<block_iq4_nl>(n);
            auto theirs = qtest::blocks_for<block_iq4_nl>(n);
            auto theirs_cpu = qtest::blocks_for<block_iq4_nl>(n);
            qinfer::quantize_row_ref(row.v.data(), ours.data(), n);
            ref(row.v.data(), theirs.data(), n);
            bool same = same_blocks(ours, theirs);
            CHECK_MESSAGE(same, "quantize_row_ref differs from ggml's quantize_row_iq4_nl_ref: row " << row.name << ", n " << n);
            if (cpu) {
                cpu(row.v.data(), theirs_cpu.data(), n);
                const bool same_cpu = same_blocks(ours, theirs_cpu);
                CHECK_MESSAGE(same_cpu, "quantize_row_ref differs from ggml-cpu's from_float: row " << row.name << ", n " << n);
                same = same && same_cpu;
            }
            ++rows;
            equal += same;
        }
    }
    MESSAGE("iq4_nl: quantize_row_ref bytes identical to ggml's quantize_row_iq4_nl_ref and ggml-cpu from_float for "
            << equal << "/" << rows << " rows (indices of leading all-zero blocks excepted: uninitialized in ggml)");
}

}  // namespace

TEST_CASE("iq4_nl matches ggml") {
    const oracle::ggml* g = oracle::get();
    if (!g) return;
    qtest::check_quantize<qinfer::block_iq4_nl>(*g, true);
    qtest::check_quantize_weighted<qinfer::block_iq4_nl>(*g);
    check_quantize_ref(*g);
    qtest::check_dequantize<qinfer::block_iq4_nl>(*g);
    qtest::check_dot<qinfer::block_iq4_nl>(*g);
    qtest::check_dot_lengths<qinfer::block_iq4_nl>(*g);
}
