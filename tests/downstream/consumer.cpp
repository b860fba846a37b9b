// A downstream program that uses qinfer the way a user project would. scripts/check-downstream.sh
// builds it after find_package(qinfer), after add_subdirectory(qinfer), from the generated
// single header, and with `pkg-config --cflags qinfer`; the last two include only
// <qinfer/qinfer.hpp> (-DQINFER_DOWNSTREAM_UMBRELLA).
//
//   consumer MODEL.gguf [PROMPT]   load the model, open a session, print a few greedy tokens
//   consumer                       no model: quantize/dequantize a row, write a GGUF in memory
//                                  and read it back; prints OK or what mismatched (exit 1)
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <exception>
#include <iostream>
#include <memory>
#include <random>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#ifdef QINFER_DOWNSTREAM_UMBRELLA
#include <qinfer/qinfer.hpp>  // the umbrella header: the amalgamated single header, or the installed one
#else
#include <qinfer/app/generate.hpp>     // model, session, generate
#include <qinfer/gguf/reader.hpp>
#include <qinfer/gguf/writer.hpp>
#include <qinfer/quant/q8_0.hpp>
#endif

#ifndef QINFER_DOWNSTREAM_WAY
#define QINFER_DOWNSTREAM_WAY "unknown"
#endif

// The public names are aliases of the versioned inline namespace.
static_assert(std::is_same_v<qinfer::session, qinfer::v0::session>);
static_assert(std::is_same_v<qinfer::gguf::reader, qinfer::v0::gguf::reader>);

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
    if (!ok) {
        std::fprintf(stderr, "consumer: MISMATCH: %s\n", what.c_str());
        ++failures;
    }
}

// Exercises quantization and the GGUF writer/reader without any model file.
void self_test() {
    constexpr std::int64_t n = 256;  // 8 Q8_0 blocks
    std::vector<float> x(n);
    std::mt19937 rng(1234);
    std::normal_distribution<float> normal(0.0f, 2.0f);
    for (auto& v : x) v = normal(rng);

    std::vector<qinfer::block_q8_0> q(n / 32);
    qinfer::quantize_row(x.data(), q.data(), n);
    std::vector<float> y(n);
    qinfer::dequantize_row(q.data(), y.data(), n);
    double max_err = 0;
    for (std::int64_t b = 0; b < n / 32; ++b) {
        const float d = qinfer::to_float(q[b].d);
        for (int j = 0; j < 32; ++j) {
            const std::int64_t i = b * 32 + j;
            check(y[i] == q[b].qs[j] * d, "dequantized value " + std::to_string(i) + " is not qs * d");
            const double err = std::fabs(double(x[i]) - y[i]);
            check(err <= 0.51 * d + 1e-6, "quantization error " + std::to_string(err) + " at " + std::to_string(i) +
                                              " exceeds half a step (" + std::to_string(d / 2) + ")");
            max_err = std::max(max_err, err);
        }
    }
    std::printf("q8_0 round trip of %lld values: max error %.5f\n", (long long)n, max_err);

    qinfer::gguf::writer w;
    w.set("general.architecture", "downstream");
    w.set("downstream.answer", std::uint32_t(42));
    const std::int64_t ne[] = {n};
    w.add_tensor("row.weight", qinfer::type_id::q8_0, ne, std::as_bytes(std::span<const qinfer::block_q8_0>(q)));
    const std::vector<std::byte> file = w.bytes();

    const auto r = qinfer::gguf::reader::from_memory(file, "<downstream>");
    check(r.get<std::string_view>("general.architecture") == std::string_view("downstream"), "general.architecture");
    check(r.get<std::uint32_t>("downstream.answer") == 42u, "downstream.answer");
    check(r.tensors().size() == 1, "tensor count");
    const auto& t = r.tensor("row.weight");
    check(t.type == qinfer::type_id::q8_0 && t.ne[0] == n, "tensor type / shape");
    const auto want = std::as_bytes(std::span<const qinfer::block_q8_0>(q));
    const auto got = t.bytes();
    check(got.size() == want.size() && std::equal(got.begin(), got.end(), want.begin()), "tensor bytes");
    if (got.size() == want.size()) {
        std::vector<float> z(n);
        qinfer::dequantize_row(reinterpret_cast<const qinfer::block_q8_0*>(got.data()), z.data(), n);
        check(z == y, "dequantized tensor read back from the GGUF");
    }
    std::printf("gguf: wrote %zu bytes, read back %zu keys and tensor %s\n", file.size(), r.metadata_count(),
                std::string(t.name).c_str());
}

void generate(const char* path, const char* prompt) {
    auto m = std::make_shared<const qinfer::model>(path);
    qinfer::session_options so;
    so.n_threads = 2;
    qinfer::session s(m, so);
    qinfer::generate_options opt;
    opt.max_tokens = 8;
    opt.sampling.temperature = 0.0f;  // greedy: the same tokens every run
    std::cout << prompt << std::flush;
    const auto r = qinfer::generate(s, prompt, opt, [](std::string_view t) {
        std::cout << t << std::flush;
        return true;
    });
    std::cout << "\n";
    std::printf("generated %zu tokens (%s)\n", r.tokens.size(), qinfer::to_string(r.stop_reason));
    check(!r.tokens.empty(), "no token generated");
}

}  // namespace

int main(int argc, char** argv) {
    std::printf("qinfer %s via %s\n", QINFER_VERSION_STRING, QINFER_DOWNSTREAM_WAY);
#ifdef QINFER_DOWNSTREAM_EXPECTED_VERSION
    check(std::string(QINFER_DOWNSTREAM_EXPECTED_VERSION) == QINFER_VERSION_STRING,
          std::string("package version ") + QINFER_DOWNSTREAM_EXPECTED_VERSION + " != QINFER_VERSION_STRING " +
              QINFER_VERSION_STRING);
#endif
    try {
        if (argc > 1) generate(argv[1], argc > 2 ? argv[2] : "Once upon a time");
        else self_test();
    } catch (const std::exception& e) {
        std::fprintf(stderr, "consumer: %s\n", e.what());
        return 1;
    }
    if (failures) return 1;
    std::printf("OK\n");
    return 0;
}
