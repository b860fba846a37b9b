// qinfer-perplexity — perplexity of a model over a text file, computed as llama-perplexity
// does (see qinfer/eval/perplexity.hpp), and the KL divergence of one model's next-token
// distributions from another's over the same text.
//
//   qinfer-perplexity -m model.gguf -f text.txt [-c 512] [-b N] [-t N] [--chunks N]
//   qinfer-perplexity -m base.gguf  -f text.txt --kl-divergence-base base.kld     (save)
//   qinfer-perplexity -m quant.gguf --kl-divergence --kl-divergence-base base.kld (compare)
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <sstream>
#include <string>

#include <qinfer/eval/perplexity.hpp>
#include <qinfer/qinfer.hpp>

#include "common/args.hpp"

namespace {

// Progress on stderr: a redrawn bar on a terminal, one line per chunk otherwise.
struct progress {
    bool tty = isatty(2) != 0;
    double total_s = 0;
    void operator()(std::int64_t c, std::int64_t n, double sec, const qinfer::eval::nll_stats& nll) {
        total_s += sec;
        const double eta = total_s / double(c + 1) * double(n - c - 1);
        const int width = 30, done = int(double(width) * double(c + 1) / double(n));
        std::string bar(std::size_t(done), '#');
        bar.append(std::size_t(width - done), ' ');
        std::fprintf(stderr, "%s[%s] chunk %lld/%lld, %.2f s/chunk, ETA %.0f s, PPL so far %.4f%s", tty ? "\r" : "",
                     bar.c_str(), (long long)(c + 1), (long long)n, total_s / double(c + 1), eta, nll.ppl(),
                     tty && c + 1 < n ? "" : "\n");
        std::fflush(stderr);
        std::printf("[%lld]%.4f,", (long long)(c + 1), nll.ppl());
        std::fflush(stdout);
    }
};

std::string read_text(const std::string& path) {
    if (!std::filesystem::exists(path)) throw qinfer::error(path + ": no such file");
    std::ifstream in(path, std::ios::binary);
    if (!in) throw qinfer::error(path + ": cannot open");
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

}  // namespace

int main(int argc, char** argv) {
    std::string model_path, text_path, kld_path;
    bool kld_mode = false;
    qinfer::eval::perplexity_options opt;
    int threads = 0;
    qinfer_tools::arg_parser args("qinfer-perplexity", "-m FILE.gguf -f TEXT [options]");
    args.text({"-m", "--model"}, "FILE", "GGUF model", model_path)
        .text({"-f", "--file"}, "FILE", "text to score (tokenized with BOS)", text_path)
        .integer({"-c", "--ctx-size"}, "N", "tokens per chunk (default 512); the text needs 2*N tokens", opt.n_ctx, 0)
        .integer({"-b", "--batch-size"}, "N", "tokens per evaluation call (default: N of -c)", opt.n_batch, 0);
    qinfer_tools::add_threads_option(args, threads);
    args.integer({"--chunks"}, "N", "score at most N chunks (default: all)", opt.max_chunks, 1)
        .text({"--kl-divergence-base"}, "F",
              "without --kl-divergence: also save the log-probabilities of every scored position to F\n"
              "                            (qinfer's format, see include/qinfer/eval/perplexity.hpp)",
              kld_path)
        .flag({"--kl-divergence"}, "compare the model with the base saved in F (the tokens and chunk size\n"
                                   "                            come from F; -f and -c are not needed)",
              [&] { kld_mode = true; })
        .ignore_gpu_options()
        .epilogue("Per-chunk running perplexity goes to stdout as llama-perplexity prints it ([1]x,[2]y,...),")
        .epilogue("progress to stderr.");
    if (const int rc = args.parse_or_exit_code(argc, argv); rc >= 0) return rc;
    try {
        if (model_path.empty()) throw qinfer::error("no model given (-m FILE.gguf); see --help");
        if (kld_mode && kld_path.empty()) throw qinfer::error("--kl-divergence needs --kl-divergence-base FILE (saved logits of the base model)");
        if (!kld_mode && text_path.empty()) throw qinfer::error("no text given (-f FILE); see --help");
        if (!std::filesystem::exists(model_path)) throw qinfer::error(model_path + ": no such file");

        qinfer::eval::kld_base base;
        if (kld_mode) {
            try {
                base = qinfer::eval::kld_base::read(kld_path);  // before loading the model: fail fast
            } catch (const qinfer::error& e) {
                if (std::string_view(e.what()).find("not a qinfer KL-divergence base file") == std::string_view::npos) throw;
                throw qinfer::error(std::string(e.what()) + "; write one with --kl-divergence-base FILE without --kl-divergence");
            }
            opt.n_ctx = base.n_ctx;
        }
        const std::string text = kld_mode ? std::string() : read_text(text_path);
        auto model = std::make_shared<const qinfer::model>(model_path);
        const auto& cfg = model->config();
        std::fprintf(stderr, "qinfer-perplexity: %s: %s, %lld layers, dim %lld, vocab %lld; kernels: %s\n", model_path.c_str(),
                     cfg.arch.c_str(), (long long)cfg.n_layer, (long long)cfg.n_embd, (long long)cfg.n_vocab,
                     std::string(qinfer::isa_name(qinfer::active_isa())).c_str());
        qinfer::session_options so;
        so.n_threads = threads;
        so.n_ctx = opt.n_ctx;
        qinfer::session s(model, so);
        progress prog;
        const qinfer::eval::chunk_callback cb = std::ref(prog);

        if (kld_mode) {
            if (std::int64_t(base.n_vocab) != cfg.n_vocab)
                throw qinfer::error(kld_path + ": vocabulary mismatch: the base logits have " + std::to_string(base.n_vocab) +
                                    " tokens, the model " + model_path + " has " + std::to_string(cfg.n_vocab));
            std::fprintf(stderr, "qinfer-perplexity: KL divergence against %s: %u chunks of %u tokens, %lld scored per chunk\n",
                         kld_path.c_str(), base.n_chunk, base.n_ctx, (long long)base.scored_per_chunk());
            const auto r = qinfer::eval::kl_divergence(s, base, opt.max_chunks, opt.n_batch, cb);
            std::printf("\n");
            std::vector<float> k = r.kld_values;
            std::sort(k.begin(), k.end());
            const auto pct = [&](double q) { return k.empty() ? 0.0 : double(k[std::size_t(q * double(k.size() - 1) + 0.5)]); };
            std::printf("chunks %lld, n_ctx %lld, %lld scored positions\n", (long long)r.n_chunks, (long long)r.n_ctx, (long long)r.count);
            std::printf("PPL(model)      : %10.4f +/- %.5f\n", r.nll.ppl(), r.nll.ppl_error());
            std::printf("PPL(base)       : %10.4f +/- %.5f\n", r.nll_base.ppl(), r.nll_base.ppl_error());
            std::printf("PPL ratio       : %10.6f\n", r.nll.ppl() / r.nll_base.ppl());
            std::printf("Mean KLD        : %10.4e +/- %.2e\n", r.mean_kld(), r.mean_kld_error());
            std::printf("Median KLD      : %10.4e\n", pct(0.5));
            std::printf("99.0%% KLD       : %10.4e\n", pct(0.99));
            std::printf("Maximum KLD     : %10.4e\n", r.max_kld);
            std::printf("Same top token  : %10.3f %% (%lld of %lld)\n", r.same_top_percent(), (long long)r.same_top, (long long)r.count);
        } else {
            const auto tokens = qinfer::eval::tokenize_for_perplexity(*model, text);
            std::int64_t n_chunks = 0;
            try {
                n_chunks = qinfer::eval::chunk_count(tokens.size(), opt);
            } catch (const qinfer::error& e) {
                std::string what = e.what();
                if (const auto at = what.find("smaller n_ctx"); at != std::string::npos) what.replace(at, 13, "smaller -c");
                throw qinfer::error(text_path + ": " + what);
            }
            std::fprintf(stderr, "qinfer-perplexity: %s: %zu tokens; %lld chunks of %lld tokens (the second half of each scored)\n",
                         text_path.c_str(), tokens.size(), (long long)n_chunks, (long long)opt.n_ctx);
            const auto r = kld_path.empty() ? qinfer::eval::perplexity(s, tokens, opt, cb)
                                            : qinfer::eval::save_kld_base(s, tokens, kld_path, opt, cb);
            std::printf("\nFinal estimate: PPL = %.4f +/- %.5f\n", r.ppl(), r.ppl_error());
            if (!kld_path.empty())
                std::fprintf(stderr, "qinfer-perplexity: saved the log-probabilities of %lld positions (vocab %lld) to %s\n",
                             (long long)r.nll.count, (long long)cfg.n_vocab, kld_path.c_str());
        }
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "qinfer-perplexity: %s\n", e.what());
        return 1;
    }
    return 0;
}
