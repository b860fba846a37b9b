// qinfer-run — generate text from a GGUF model.
//
//   qinfer-run [-m model.gguf] [-p prompt] [-n tokens] [--temp T] [--top-k K] [--top-p P]
//              [--min-p P] [--repeat-penalty R] [--seed S] [-t threads] [-c ctx] [--chat] [--trace]
//
// Without -m it uses the default model: $QINFER_MODEL, else the small model trained on the King
// James Bible that is committed in examples/models/ (see examples/models/README.md), else a
// small random model it writes itself (and says so: its text is gibberish, but every code path
// runs).
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <random>
#include <string>

#include <qinfer/qinfer.hpp>

namespace {

void usage(std::FILE* to) {
    std::fprintf(to,
                 "usage: qinfer-run [options]\n"
                 "  -m, --model FILE        GGUF model (default: see below)\n"
                 "  -p, --prompt TEXT       prompt (default: \"And God said\")\n"
                 "  -n, --n-predict N       tokens to generate (default 64)\n"
                 "      --temp T            temperature, 0 = greedy (default 0)\n"
                 "      --top-k K           (default 40)\n"
                 "      --top-p P           (default 0.95)\n"
                 "      --min-p P           (default 0.05)\n"
                 "      --repeat-penalty R  (default 1.0 = off)\n"
                 "      --seed S            random seed (default 42)\n"
                 "  -t, --threads N         threads (default: all cores)\n"
                 "  -c, --ctx-size N        context size (default: model's, at most 4096)\n"
                 "      --chat              wrap the prompt in the model's chat template\n"
                 "      --trace             print each layer's output RMS and first values per position\n"
                 "  -h, --help\n"
                 "Default model: $QINFER_MODEL, else %s if present, else a synthetic random model.\n",
                 QINFER_DEFAULT_MODEL);
}

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
    try {
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            auto value = [&]() -> std::string {
                if (i + 1 >= argc) throw qinfer::error("option " + a + " needs a value");
                return argv[++i];
            };
            auto number = [&]() {
                const std::string v = value();
                char* end = nullptr;
                const double d = std::strtod(v.c_str(), &end);
                if (end == v.c_str() || *end) throw qinfer::error("option " + a + ": '" + v + "' is not a number");
                return d;
            };
            if (a == "-m" || a == "--model") model_path = value();
            else if (a == "-p" || a == "--prompt") prompt = value();
            else if (a == "-n" || a == "--n-predict") gen.max_tokens = int(number());
            else if (a == "--temp") gen.sampling.temperature = float(number());
            else if (a == "--top-k") gen.sampling.top_k = int(number());
            else if (a == "--top-p") gen.sampling.top_p = float(number());
            else if (a == "--min-p") gen.sampling.min_p = float(number());
            else if (a == "--repeat-penalty") gen.sampling.repeat_penalty = float(number());
            else if (a == "--seed") gen.sampling.seed = std::uint64_t(number());
            else if (a == "-t" || a == "--threads") threads = int(number());
            else if (a == "-c" || a == "--ctx-size") n_ctx = std::int64_t(number());
            else if (a == "--chat") chat = true;
            else if (a == "--trace") trace = true;
            else if (a == "-h" || a == "--help") { usage(stdout); return 0; }
            else { usage(stderr); std::fprintf(stderr, "qinfer-run: unknown option %s\n", a.c_str()); return 2; }
        }
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
        if (!chat) std::cout << prompt << std::flush;
        const auto r = qinfer::generate(s, text, gen, [](std::string_view t) {
            std::cout << t << std::flush;
            return true;
        });
        std::cout << std::endl;
        const double pp = r.prompt_seconds > 0 ? double(r.prompt_tokens.size()) / r.prompt_seconds : 0;
        const double tg = r.generate_seconds > 0 ? double(r.tokens.size()) / r.generate_seconds : 0;
        std::fprintf(stderr, "qinfer-run: prompt %zu tokens, %.1f t/s; generated %zu tokens, %.1f t/s (%s); %d threads\n",
                     r.prompt_tokens.size(), pp, r.tokens.size(), tg, r.stop_reason.c_str(), s.n_threads());
    } catch (const std::exception& e) {
        std::fprintf(stderr, "qinfer-run: %s\n", e.what());
        return 1;
    }
    return 0;
}
