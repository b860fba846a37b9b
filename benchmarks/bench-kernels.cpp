// bench-kernels — per format: dequantize and dot throughput, qinfer against ggml's own
// functions from llama.cpp's shared libraries, measured in the same run.
//
//   bench-kernels [--seconds S] [--format NAME] [--markdown]
// The oracle libraries are the ones the test suite installs (build/oracle); run
// `ctest -R oracle-install` once first. Timing is informative, never a test.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <qinfer/core/cpu.hpp>
#include <qinfer/quant/dispatch.hpp>

#include "oracle/ggml_oracle.hpp"

namespace {

using clock_type = std::chrono::steady_clock;

// Best of several timed repetitions of f (each at least `seconds`/reps long): the least
// disturbed sample on a shared machine.
template <class F>
double best_seconds_per_call(F&& f, double seconds) {
    double best = 1e30;
    for (int rep = 0; rep < 5; ++rep) {
        long calls = 0;
        const auto t0 = clock_type::now();
        double el = 0;
        do {
            f();
            ++calls;
            el = std::chrono::duration<double>(clock_type::now() - t0).count();
        } while (el < seconds / 5);
        best = std::min(best, el / double(calls));
    }
    return best;
}

struct row_result {
    std::string name;
    double deq_ours = 0, deq_ggml = 0, dot_ours = 0, dot_ggml = 0;  // GB/s
};

}  // namespace

int main(int argc, char** argv) {
    double seconds = 1.0;
    std::string only;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "--seconds" && i + 1 < argc) seconds = std::atof(argv[++i]);
        else if (a == "--format" && i + 1 < argc) only = argv[++i];
        else {
            std::printf("usage: bench-kernels [--seconds S] [--format NAME]\n");
            return a == "--help" ? 0 : 2;
        }
    }
    const oracle::ggml& g = oracle::load();
    if (!g.loaded()) {
        std::fprintf(stderr, "bench-kernels: llama.cpp oracle unavailable: %s\n", g.why_missing.c_str());
        return 1;
    }
    using qinfer::type_id;
    const type_id formats[] = {type_id::f32, type_id::f16, type_id::bf16, type_id::q4_0, type_id::q4_1, type_id::q5_0,
                               type_id::q5_1, type_id::q8_0, type_id::q2_K, type_id::q3_K, type_id::q4_K, type_id::q5_K,
                               type_id::q6_K, type_id::iq4_nl, type_id::iq4_xs, type_id::mxfp4};
    const std::int64_t cols = 4096, rows = 64, n = cols * rows;
    std::mt19937 rng(42);
    std::normal_distribution<float> normal;
    std::vector<float> x(static_cast<std::size_t>(n)), act(static_cast<std::size_t>(cols)), out(static_cast<std::size_t>(n));
    for (auto& v : x) v = normal(rng);
    for (auto& v : act) v = normal(rng);

    std::printf("qinfer kernels vs ggml (llama.cpp %s, cpu variant %s); qinfer tier: %s\n", "v0.4.0 / npm 3.21.1",
                g.cpu_variant.c_str(), std::string(qinfer::isa_name(qinfer::active_isa())).c_str());
    std::printf("matrix %lld x %lld; dequantize = GB/s of floats written, dot = GB/s of weights read\n\n",
                (long long)rows, (long long)cols);
    std::printf("| format | dequant qinfer | dequant ggml | ratio | dot qinfer | dot ggml | ratio |\n");
    std::printf("|---|---:|---:|---:|---:|---:|---:|\n");
    for (type_id id : formats) {
        const std::string name(qinfer::type_name(id));
        if (!only.empty() && only != name) continue;
        qinfer::visit_type(id, [&]<class Block>() {
          if constexpr (qinfer::weight_block<Block>) {
            using Operand = typename qinfer::block_traits<Block>::dot_operand;
            const std::int64_t wblocks = cols / qinfer::block_traits<Block>::block_size;
            const std::int64_t ablocks = cols / qinfer::block_traits<Operand>::block_size;
            std::vector<Block> w(static_cast<std::size_t>(rows * wblocks));
            std::vector<Operand> a(static_cast<std::size_t>(ablocks));
            for (std::int64_t r = 0; r < rows; ++r) qinfer::quantize_row(x.data() + r * cols, w.data() + r * wblocks, cols);
            qinfer::quantize_activations(act.data(), a.data(), cols);
            const auto* traits = g.get_type_traits(int(id));
            const auto* cpu = g.get_type_traits_cpu(int(id));
            const double wbytes = double(w.size() * sizeof(Block));
            row_result res{name};
            volatile float sink = 0;
            const double t_deq_ours = best_seconds_per_call([&] { qinfer::dequantize_row(w.data(), out.data(), n); }, seconds);
            double t_deq_ggml = 0;
            if (traits->to_float) t_deq_ggml = best_seconds_per_call([&] { traits->to_float(w.data(), out.data(), n); }, seconds);
            const double t_dot_ours = best_seconds_per_call([&] {
                float s = 0;
                for (std::int64_t r = 0; r < rows; ++r) s += qinfer::dot(w.data() + r * wblocks, a.data(), cols);
                sink = s;
            }, seconds);
            const double t_dot_ggml = best_seconds_per_call([&] {
                float s = 0;
                for (std::int64_t r = 0; r < rows; ++r) {
                    float v;
                    cpu->vec_dot(int(cols), &v, 0, w.data() + r * wblocks, 0, a.data(), 0, 1);
                    s += v;
                }
                sink = s;
            }, seconds);
            (void)sink;
            const double fbytes = double(n) * sizeof(float);
            auto gbs = [](double bytes, double t) { return t > 0 ? bytes / t / 1e9 : 0.0; };
            const double dq = gbs(fbytes, t_deq_ours), dg = gbs(fbytes, t_deq_ggml);
            const double vq = gbs(wbytes, t_dot_ours), vg = gbs(wbytes, t_dot_ggml);
            if (dg > 0)
                std::printf("| %s | %.1f | %.1f | %.2fx | %.1f | %.1f | %.2fx |\n", name.c_str(), dq, dg, dq / dg, vq, vg, vq / vg);
            else
                std::printf("| %s | %.1f | (copy) | - | %.1f | %.1f | %.2fx |\n", name.c_str(), dq, vq, vg, vq / vg);
            std::fflush(stdout);
          }
        });
    }
    return 0;
}
