// qinfer-run — generate text from a GGUF model.
//
//   qinfer-run [-m model.gguf] [-p prompt | -f file] [-n tokens] [--temp T] [--top-k K] [--top-p P]
//              [--min-p P] [--repeat-penalty R] [-s seed] [-r stop]... [-t threads] [-c ctx]
//              [--chat] [--trace]          (qinfer-run --help lists every option)
//
// Options follow llama.cpp's llama-cli / llama-completion where they exist (examples/common/args.hpp).
// Without -m it uses the default model: $QINFER_MODEL, else the small model trained on the King
// James Bible that is committed in examples/models/ (see examples/models/README.md), else a
// small random model it writes itself (and says so: its text is noise, but every code path
// runs).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>

#include <qinfer/qinfer.hpp>

#include "common/args.hpp"

namespace {

// A tiny llama-architecture model with random weights and a byte-level SentencePiece
// vocabulary, for machines with no model at all. Its output is noise by construction.
std::string write_synthetic_default() {
    namespace fs = std::filesystem;
    const fs::path path = fs::temp_directory_path() / "qinfer-synthetic-default.gguf";
    qinfer::gguf::writer w;
    w.set("general.architecture", "llama");
    w.set("general.name", "qinfer synthetic (random weights)");
    const std::int64_t d = 64, ff = 128, layers = 2, heads = 4;
    w.set("llama.context_length", std::uint32_t(256));
    w.set("llama.embedding_length", std::uint32_t(d));
    w.set("llama.block_count", std::uint32_t(layers));
    w.set("llama.feed_forward_length", std::uint32_t(ff));
    w.set("llama.attention.head_count", std::uint32_t(heads));
    w.set("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    std::vector<std::string> tokens = {"<unk>", "<s>", "</s>"};
    std::vector<float> scores = {0, 0, 0};
    std::vector<std::int32_t> types = {2, 3, 3};
    char buf[8];
    for (int b = 0; b < 256; ++b) {
        std::snprintf(buf, sizeof buf, "<0x%02X>", b);
        tokens.push_back(buf);
        scores.push_back(0);
        types.push_back(6);
    }
    for (char c = 'a'; c <= 'z'; ++c) {
        tokens.push_back(std::string("\xE2\x96\x81") + c);
        scores.push_back(-1);
        types.push_back(1);
    }
    w.set("tokenizer.ggml.model", "llama");
    w.set("tokenizer.ggml.tokens", tokens);
    w.set("tokenizer.ggml.scores", scores);
    w.set("tokenizer.ggml.token_type", types);
    w.set("tokenizer.ggml.bos_token_id", std::uint32_t(1));
    w.set("tokenizer.ggml.eos_token_id", std::uint32_t(2));
    const std::int64_t vocab = std::int64_t(tokens.size());
    std::mt19937 rng(7);
    std::normal_distribution<float> normal;
    auto add = [&](const std::string& name, std::vector<std::int64_t> ne, float sd, float mean = 0) {
        std::int64_t n = 1;
        for (auto x : ne) n *= x;
        std::vector<float> v(static_cast<std::size_t>(n));
        for (auto& x : v) x = mean + sd * normal(rng);
        w.add_tensor(name, qinfer::type_id::f32, ne, std::as_bytes(std::span<const float>(v)));
    };
    add("token_embd.weight", {d, vocab}, 1.0f);
    add("output_norm.weight", {d}, 0.0f, 1.0f);
    add("output.weight", {d, vocab}, 0.5f);
    for (std::int64_t l = 0; l < layers; ++l) {
        const std::string b = "blk." + std::to_string(l) + ".";
        add(b + "attn_norm.weight", {d}, 0.0f, 1.0f);
        for (const char* m : {"attn_q", "attn_k", "attn_v", "attn_output"}) add(b + m + ".weight", {d, d}, 0.125f);
        add(b + "ffn_norm.weight", {d}, 0.0f, 1.0f);
        add(b + "ffn_gate.weight", {d, ff}, 0.125f);
        add(b + "ffn_up.weight", {d, ff}, 0.125f);
        add(b + "ffn_down.weight", {ff, d}, 0.09f);
    }
    w.write(path);
    return path.string();
}

std::string default_model() {
    if (const char* env = std::getenv("QINFER_MODEL"); env && *env) return env;
    if (std::filesystem::exists(QINFER_DEFAULT_MODEL)) return QINFER_DEFAULT_MODEL;
    const std::string path = write_synthetic_default();
    std::fprintf(stderr,
                 "qinfer-run: no model given and no trained default found; wrote a synthetic model with random\n"
                 "            weights to %s (its text is noise). Use -m FILE.gguf for real text.\n",
                 path.c_str());
    return path;
}

}  // namespace

int main(int argc, char** argv) {
    std::string model_path, prompt = "And God said";
    qinfer::generate_options gen;
    gen.max_tokens = 64;
    gen.sampling.temperature = 0.0f;
    gen.sampling.seed = 42;
    int threads = 0;
    std::int64_t n_ctx = 0;
    bool chat = false, trace = false;
    qinfer_tools::arg_parser args("qinfer-run");
    args.text({"-m", "--model"}, "FILE", "GGUF model (default: see below)", model_path)
        .text({"-p", "--prompt"}, "TEXT", "prompt (default: \"And God said\")", prompt)
        .checked({"-f", "--file"}, "FILE", "read the prompt from FILE",
                 [&](const std::string& o, const std::string& v) { prompt = qinfer_tools::read_file(o, v); })
        .integer({"-n", "--n-predict"}, "N", "tokens to generate, -1 = until end of text or a full context (default 64)",
                 gen.max_tokens, -1);
    qinfer_tools::add_sampling_options(args, gen.sampling);
    args.value({"-r", "--reverse-prompt"}, "TEXT", "stop before TEXT is generated (repeatable)",
               [&](const std::string& v) { gen.stop.push_back(v); })
        .value({"--stop"}, "TEXT", "the same as -r", [&](const std::string& v) { gen.stop.push_back(v); });
    qinfer_tools::add_threads_option(args, threads);
    qinfer_tools::add_ctx_option(args, n_ctx, "context size (default: model's, at most 4096)");
    args.flag({"--chat"}, "wrap the prompt in the model's chat template", [&] { chat = true; })
        .flag({"--trace"}, "print each layer's output RMS and first values per position", [&] { trace = true; })
        .ignore_gpu_options()
        .epilogue(std::string("Default model: $QINFER_MODEL, else ") + QINFER_DEFAULT_MODEL +
                  " if present, else a synthetic random model.");
    if (const int rc = args.parse_or_exit_code(argc, argv); rc >= 0) return rc;
    try {
        if (model_path.empty()) model_path = default_model();
        auto model = std::make_shared<const qinfer::model>(model_path);
        const auto& cfg = model->config();
        std::fprintf(stderr, "qinfer-run: %s: %s, %lld layers, dim %lld, vocab %lld; kernels: %s\n", model_path.c_str(),
                     cfg.arch.c_str(), (long long)cfg.n_layer, (long long)cfg.n_embd, (long long)cfg.n_vocab,
                     std::string(qinfer::isa_name(qinfer::active_isa())).c_str());
        qinfer::session_options so;
        so.n_threads = threads;
        so.n_ctx = n_ctx;
        qinfer::session s(model, so);
        if (trace) {
            s.set_trace([](const qinfer::trace_event& e) {
                if (e.stage != "l_out" && e.stage != "result_norm") return;
                double ss = 0;
                for (float v : e.values) ss += double(v) * v;
                std::fprintf(stderr, "trace pos %4lld layer %2d %-11s rms %10.5f  first", (long long)e.pos, e.layer,
                             std::string(e.stage).c_str(), std::sqrt(ss / double(e.values.size())));
                for (std::size_t i = 0; i < 4 && i < e.values.size(); ++i) std::fprintf(stderr, " %+.5f", e.values[i]);
                std::fprintf(stderr, "\n");
            });
        }
        std::string text = prompt;
        if (chat) {
            const auto tmpl = model->file().get<std::string_view>("tokenizer.chat_template");
            if (!tmpl) throw qinfer::error(model_path + ": --chat needs a chat template (key tokenizer.chat_template)");
            const qinfer::text::chat_message msg{"user", prompt};
            text = qinfer::text::apply_chat_template(qinfer::text::detect_chat_template(*tmpl), std::span(&msg, 1), true);
            gen.parse_special = true;
        }
        // gen.max_tokens < 0: until the end of text or a full context
        if (!chat) std::cout << prompt << std::flush;
        const auto r = qinfer::generate(s, text, gen, [](std::string_view t) {
            std::cout << t << std::flush;
            return true;
        });
        std::cout << std::endl;
        const double pp = r.prompt_seconds > 0 ? double(r.prompt_tokens.size()) / r.prompt_seconds : 0;
        const double tg = r.generate_seconds > 0 ? double(r.tokens.size()) / r.generate_seconds : 0;
        std::fprintf(stderr, "qinfer-run: prompt %zu tokens, %.1f t/s; generated %zu tokens, %.1f t/s (%s); %d threads\n",
                     r.prompt_tokens.size(), pp, r.tokens.size(), tg,
                     qinfer::to_string(r.stop_reason), s.n_threads());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "qinfer-run: %s\n", e.what());
        return 1;
    }
    return 0;
}
