// qinfer-chat — interactive chat with a GGUF model, in the model's own chat template.
//
//   qinfer-chat -m model.gguf [-sys TEXT] [-n 256] [--temp T] [--top-k K] [--top-p P]
//               [--min-p P] [--repeat-penalty R] [-s S] [-t threads] [-c ctx] [-v]
//               (qinfer-chat --help lists every option; names as llama.cpp's, examples/common/args.hpp)
//
// One line of input is one user message; the reply streams as it is generated. The whole
// conversation stays in one session: each turn only the new part of the formatted
// conversation is evaluated (qinfer/app/chat_session.hpp). Commands: /reset forgets the
// conversation (keeps --system), /undo takes back the last turn, /exit or end of input
// (Ctrl-D) quits. Works with stdin not
// a terminal:  printf 'hello\n/exit\n' | qinfer-chat -m model.gguf
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <iostream>
#include <limits>
#include <string>

#include <qinfer/qinfer.hpp>
#include <qinfer/app/chat_session.hpp>

#include "common/args.hpp"

int main(int argc, char** argv) {
    std::string model_path, system;
    qinfer::generate_options gen;
    qinfer::sampler_params& sp = gen.sampling;
    sp.seed = 42;
    int& max_tokens = gen.max_tokens;
    max_tokens = 256;
    int threads = 0;
    std::int64_t n_ctx = 0;
    bool verbose = false;
    qinfer_tools::arg_parser args("qinfer-chat", "-m FILE.gguf [options]");
    args.text({"-m", "--model"}, "FILE", "GGUF model with a chat template (key tokenizer.chat_template)", model_path)
        .text({"-sys", "--system-prompt", "--system"}, "TEXT", "system message", system)
        .integer({"-n", "--n-predict"}, "N", "most tokens per reply, -1 = until end of text or a full context (default 256)",
                 max_tokens, -1);
    qinfer_tools::add_sampling_options(args, sp);
    qinfer_tools::add_threads_option(args, threads);
    qinfer_tools::add_ctx_option(args, n_ctx, "context size (default: model's, at most 4096)");
    args.flag({"-v", "--verbose"}, "per-turn token counts and speed on stderr", [&] { verbose = true; })
        .ignore_gpu_options()
        .epilogue("Type a message and press Enter. /reset starts over, /exit or Ctrl-D quits.");
    if (const int rc = args.parse_or_exit_code(argc, argv); rc >= 0) return rc;
    // max_tokens < 0: the reply runs until the end of the turn or a full context
    try {
        if (model_path.empty()) throw qinfer::error("no model given (-m FILE.gguf); see --help");
        if (!std::filesystem::exists(model_path)) throw qinfer::error(model_path + ": no such file");
        auto model = std::make_shared<const qinfer::model>(model_path);
        qinfer::text::chat_template tmpl;
        try {
            tmpl = qinfer::chat_session::template_of(*model);
        } catch (const qinfer::error& e) {
            if (e.code() != qinfer::errc::unsupported) throw;
            throw qinfer::error(std::string(e.what()) + "; qinfer-chat needs one (use qinfer-run for plain completion)");
        }
        const auto& cfg = model->config();
        qinfer::session_options so;
        so.n_threads = threads;
        so.n_ctx = n_ctx;
        qinfer::session s(model, so);
        std::fprintf(stderr, "qinfer-chat: %s: %s, %lld layers, vocab %lld, template %s, context %lld; /reset, /undo, /exit or Ctrl-D\n",
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
            if (line == "/undo") {
                std::fprintf(stderr, "qinfer-chat: %s\n", chat.undo() ? "last turn taken back" : "nothing to undo");
                continue;
            }
            if (line.empty()) continue;
            const auto t0 = std::chrono::steady_clock::now();
            qinfer::generate_result r;
            try {
                r = chat.reply(line, gen, [](std::string_view t) {
                    std::cout << t << std::flush;
                    return true;
                });
            } catch (const qinfer::error& e) {  // e.g. the conversation outgrew the context: the chat goes on
                std::fprintf(stderr, "qinfer-chat: %s\n", e.what());
                if (e.code() == qinfer::errc::context_full) std::fprintf(stderr, "qinfer-chat: /reset, or a larger -c\n");
                continue;
            }
            std::cout << std::endl;
            if (verbose) {
                const double sec = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                std::fprintf(stderr, "qinfer-chat: evaluated %zu new prompt tokens (context %zu), generated %zu (%s), %.2f s\n",
                             chat.last_prompt_evaluated(), chat.evaluated().size(), r.tokens.size(), qinfer::to_string(r.stop_reason), sec);
            }
            if (r.stop_reason == qinfer::stop_reason::context_full)
                std::fprintf(stderr, "qinfer-chat: the context (%lld tokens) is full; /reset to start over\n", (long long)s.n_ctx());
        }
    } catch (const std::exception& e) {
        std::fflush(stdout);
        std::fprintf(stderr, "qinfer-chat: %s\n", e.what());
        return 1;
    }
    return 0;
}
