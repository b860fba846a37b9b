// qinfer-chat — interactive chat with a GGUF model, in the model's own chat template.
//
//   qinfer-chat -m model.gguf [--system TEXT] [-n 256] [--temp T] [--top-k K] [--top-p P]
//               [--min-p P] [--repeat-penalty R] [--seed S] [-t threads] [-c ctx]
//
// One line of input is one user message; the reply streams as it is generated. The whole
// conversation stays in one session: each turn only the new part of the formatted
// conversation is evaluated (qinfer/text/chat_session.hpp). Commands: /reset forgets the
// conversation (keeps --system), /exit or end of input (Ctrl-D) quits. Works with stdin not
// a terminal:  printf 'hello\n/exit\n' | qinfer-chat -m model.gguf
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <string>

#include <qinfer/qinfer.hpp>
#include <qinfer/text/chat_session.hpp>

namespace {

void usage(std::FILE* to) {
    std::fprintf(to,
                 "usage: qinfer-chat -m FILE.gguf [options]\n"
                 "  -m, --model FILE        GGUF model with a chat template (key tokenizer.chat_template)\n"
                 "      --system TEXT       system message\n"
                 "  -n, --n-predict N       most tokens per reply (default 256)\n"
                 "      --temp T            temperature, 0 = greedy (default 0.8)\n"
                 "      --top-k K           (default 40)\n"
                 "      --top-p P           (default 0.95)\n"
                 "      --min-p P           (default 0.05)\n"
                 "      --repeat-penalty R  (default 1.0 = off)\n"
                 "      --seed S            random seed (default 42)\n"
                 "  -t, --threads N         threads (default: all cores)\n"
                 "  -c, --ctx-size N        context size (default: model's, at most 4096)\n"
                 "  -v, --verbose           per-turn token counts and speed on stderr\n"
                 "  -h, --help\n"
                 "Type a message and press Enter. /reset starts over, /exit or Ctrl-D quits.\n");
}

}  // namespace

int main(int argc, char** argv) {
    std::string model_path, system;
    qinfer::sampler_params sp;
    sp.seed = 42;
    int max_tokens = 256, threads = 0;
    std::int64_t n_ctx = 0;
    bool verbose = false;
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
            else if (a == "--system") system = value();
            else if (a == "-n" || a == "--n-predict") max_tokens = int(number());
            else if (a == "--temp") sp.temperature = float(number());
            else if (a == "--top-k") sp.top_k = int(number());
            else if (a == "--top-p") sp.top_p = float(number());
            else if (a == "--min-p") sp.min_p = float(number());
            else if (a == "--repeat-penalty") sp.repeat_penalty = float(number());
            else if (a == "--seed") sp.seed = std::uint64_t(number());
            else if (a == "-t" || a == "--threads") threads = int(number());
            else if (a == "-c" || a == "--ctx-size") n_ctx = std::int64_t(number());
            else if (a == "-v" || a == "--verbose") verbose = true;
            else if (a == "-h" || a == "--help") { usage(stdout); return 0; }
            else { usage(stderr); std::fprintf(stderr, "qinfer-chat: unknown option %s\n", a.c_str()); return 2; }
        }
        if (model_path.empty()) throw qinfer::error("no model given (-m FILE.gguf); see --help");
        if (!std::filesystem::exists(model_path)) throw qinfer::error(model_path + ": no such file");
        auto model = std::make_shared<const qinfer::model>(model_path);
        const qinfer::text::chat_template tmpl = qinfer::chat_session::template_of(*model);
        const auto& cfg = model->config();
        qinfer::session_options so;
        so.n_threads = threads;
        so.n_ctx = n_ctx;
        qinfer::session s(model, so);
        std::fprintf(stderr, "qinfer-chat: %s: %s, %lld layers, vocab %lld, template %s, context %lld; /reset, /exit or Ctrl-D\n",
                     model_path.c_str(), cfg.arch.c_str(), (long long)cfg.n_layer, (long long)cfg.n_vocab,
                     std::string(qinfer::text::name(tmpl.format)).c_str(), (long long)s.n_ctx());
        qinfer::chat_session chat(s, tmpl);
        chat.set_system(system);

        const bool interactive = isatty(0) != 0;
        std::string line;
        for (;;) {
            if (interactive) { std::cout << "> " << std::flush; }
            if (!std::getline(std::cin, line)) {
                if (interactive) std::cout << std::endl;
                break;
            }
            if (!line.empty() && line.back() == '\r') line.pop_back();
            if (line == "/exit" || line == "/quit") break;
            if (line == "/reset") {
                chat.reset();
                std::fprintf(stderr, "qinfer-chat: conversation reset\n");
                continue;
            }
            if (line.empty()) continue;
            const auto t0 = std::chrono::steady_clock::now();
            qinfer::chat_session::reply_result r;
            try {
                r = chat.reply(line, sp, max_tokens, [](std::string_view t) {
                    std::cout << t << std::flush;
                    return true;
                });
            } catch (const qinfer::error& e) {  // e.g. the conversation outgrew the context: the chat goes on
                std::fprintf(stderr, "qinfer-chat: %s\n", e.what());
                continue;
            }
            std::cout << std::endl;
            if (verbose) {
                const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                std::fprintf(stderr, "qinfer-chat: evaluated %zu new prompt tokens (context %zu), generated %zu (%s), %.2f s\n",
                             chat.last_prompt_evaluated(), chat.evaluated().size(), r.tokens.size(), r.stop_reason.c_str(), sec);
            }
            if (r.stop_reason == "context full")
                std::fprintf(stderr, "qinfer-chat: the context (%lld tokens) is full; /reset to start over\n", (long long)s.n_ctx());
        }
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "qinfer-chat: %s\n", e.what());
        return 1;
    }
    return 0;
}
