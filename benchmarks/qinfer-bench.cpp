// qinfer-bench — prompt-processing and generation speed, llama-bench style.
//
//   qinfer-bench -m model.gguf [-p 512] [-n 128] [-t threads] [-r repetitions] [-o md|json]
// pp: the prompt evaluated as one batch from an empty context; tg: tokens generated one at a
// time after a one-token prompt. Token ids are fixed pseudo-random values, so the test
// measures the model, not the tokenizer. Reports mean ± standard deviation over repetitions.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <qinfer/qinfer.hpp>

#include "../examples/common/args.hpp"

namespace {

struct result {
    std::string test;
    int n = 0;
    double mean = 0, sd = 0;  // tokens per second
};

result summarize(std::string test, int n, const std::vector<double>& seconds) {
    result r{std::move(test), n};
    std::vector<double> tps;
    for (double s : seconds) tps.push_back(double(n) / s);
    for (double v : tps) r.mean += v / double(tps.size());
    for (double v : tps) r.sd += (v - r.mean) * (v - r.mean);
    r.sd = tps.size() > 1 ? std::sqrt(r.sd / double(tps.size() - 1)) : 0.0;
    return r;
}

}  // namespace

int main(int argc, char** argv) {
    std::string path, format = "md";
    int n_prompt = 512, n_gen = 128, threads = 0, reps = 3;
    // llama-bench's names: -p and -n are token counts here, -r repetitions.
    qinfer_tools::arg_parser args("qinfer-bench", "-m model.gguf [options]");
    args.text({"-m", "--model"}, "FILE", "GGUF model", path)
        .integer({"-p", "--n-prompt"}, "N", "prompt tokens for the pp test, 0 = skip (default 512)", n_prompt, 0)
        .integer({"-n", "--n-gen"}, "N", "generated tokens for the tg test, 0 = skip (default 128)", n_gen, 0);
    qinfer_tools::add_threads_option(args, threads);
    args.integer({"-r", "--repetitions"}, "N", "repetitions (default 3)", reps, 1)
        .text({"-o", "--output"}, "md|json", "output format (default md)", format)
        .ignore_gpu_options();
    if (const int rc = args.parse_or_exit_code(argc, argv); rc >= 0) return rc;
    try {
        if (path.empty()) throw qinfer::error("-m model.gguf is required");
        if (format != "md" && format != "json") throw qinfer::error("-o must be md or json");
        using clock = std::chrono::steady_clock;
        const auto t_load = clock::now();
        auto model = std::make_shared<const qinfer::model>(path);
        const double load_s = std::chrono::duration<double>(clock::now() - t_load).count();
        const auto& c = model->config();
        qinfer::session_options so;
        so.n_threads = threads;
        so.n_ctx = std::max(n_prompt, n_gen + 1) + 1;
        qinfer::session s(model, so);
        std::vector<std::int32_t> tokens(std::size_t(std::max(n_prompt, n_gen + 1)));
        std::uint32_t x = 12345;
        for (auto& t : tokens) t = std::int32_t((x = x * 1664525u + 1013904223u) >> 8) % std::int32_t(c.n_vocab);
        std::vector<result> results;
        if (n_prompt > 0) {
            s.eval(std::span(tokens.data(), 8));  // warm-up: page in the weights
            std::vector<double> secs;
            for (int r = 0; r < reps; ++r) {
                s.reset();
                const auto t0 = clock::now();
                s.eval(std::span(tokens.data(), std::size_t(n_prompt)));
                secs.push_back(std::chrono::duration<double>(clock::now() - t0).count());
                std::fprintf(stderr, ".");
            }
            results.push_back(summarize("pp" + std::to_string(n_prompt), n_prompt, secs));
        }
        if (n_gen > 0) {
            std::vector<double> secs;
            for (int r = 0; r < reps; ++r) {
                s.reset();
                s.eval(std::span(tokens.data(), 1));
                const auto t0 = clock::now();
                for (int i = 0; i < n_gen; ++i) s.eval(std::span(tokens.data() + 1 + i, 1));
                secs.push_back(std::chrono::duration<double>(clock::now() - t0).count());
                std::fprintf(stderr, ".");
            }
            results.push_back(summarize("tg" + std::to_string(n_gen), n_gen, secs));
        }
        std::fprintf(stderr, "\n");
        const double size_gib = double(model->file().file_bytes().size()) / (1024.0 * 1024.0 * 1024.0);
        if (format == "json") {
            std::printf("[\n");
            for (std::size_t i = 0; i < results.size(); ++i)
                std::printf("  {\"model\": \"%s\", \"arch\": \"%s\", \"size_gib\": %.3f, \"threads\": %d, \"test\": \"%s\", "
                            "\"t_s\": %.3f, \"t_s_sd\": %.3f, \"load_s\": %.3f, \"isa\": \"%s\"}%s\n",
                            path.c_str(), c.arch.c_str(), size_gib, s.n_threads(), results[i].test.c_str(), results[i].mean,
                            results[i].sd, load_s, std::string(qinfer::isa_name(qinfer::active_isa())).c_str(),
                            i + 1 < results.size() ? "," : "");
            std::printf("]\n");
        } else {
            std::printf("| model | size | threads | isa | test | t/s |\n|---|---:|---:|---|---|---:|\n");
            for (const result& r : results)
                std::printf("| %s %s | %.2f GiB | %d | %s | %s | %.2f ± %.2f |\n", c.arch.c_str(), path.c_str(), size_gib,
                            s.n_threads(), std::string(qinfer::isa_name(qinfer::active_isa())).c_str(), r.test.c_str(), r.mean,
                            r.sd);
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "qinfer-bench: %s\n", e.what());
        return 1;
    }
    return 0;
}
