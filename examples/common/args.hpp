// examples/common/args.hpp — the command-line parser the qinfer tools share (qinfer-run,
// qinfer-chat, qinfer-perplexity, qinfer-bench), with llama.cpp's option names and meanings
// where llama.cpp has the option.
//
// A tool registers its options (names, value name, help, what to do with the value), then
// calls parse(). Values are checked: a bad one is an error naming the option and the value
// ("qinfer-run: --top-k: 'abc' is not an integer"), an unknown option is an error followed
// by the usage, never an exception from std::stoi or a silent zero.
#pragma once

#include <cerrno>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <limits>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <qinfer/sampling/sampler.hpp>

namespace qinfer_tools {

// A command-line mistake; what() is the message without the tool's name.
struct usage_error : std::runtime_error {
    using std::runtime_error::runtime_error;
};

inline long long parse_integer(const std::string& option, const std::string& v, long long lo, long long hi) {
    errno = 0;
    char* end = nullptr;
    const long long n = std::strtoll(v.c_str(), &end, 10);
    if (v.empty() || end == v.c_str() || *end) throw usage_error(option + ": '" + v + "' is not an integer");
    if (errno == ERANGE || n < lo || n > hi)
        throw usage_error(option + ": '" + v + "' is out of range (" + std::to_string(lo) + " to " + std::to_string(hi) + ")");
    return n;
}

inline double parse_number(const std::string& option, const std::string& v) {
    char* end = nullptr;
    const double d = std::strtod(v.c_str(), &end);
    if (v.empty() || end == v.c_str() || *end || !std::isfinite(d)) throw usage_error(option + ": '" + v + "' is not a number");
    return d;
}

inline std::string read_file(const std::string& option, const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw usage_error(option + ": cannot read '" + path + "'");
    std::ostringstream ss;
    ss << in.rdbuf();
    return ss.str();
}

// "0.95" rather than "0.950000" in the usage's defaults.
inline std::string short_number(double d) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", d);
    return buf;
}

class arg_parser {
public:
    enum class outcome { run, help };

    explicit arg_parser(std::string tool, std::string synopsis = "[options]")
        : tool_(std::move(tool)), synopsis_(std::move(synopsis)) {}

    const std::string& tool() const { return tool_; }

    // An option without a value. `names` are the spellings ("-v", "--verbose").
    arg_parser& flag(std::vector<std::string> names, std::string help, std::function<void()> on) {
        opts_.push_back({std::move(names), "", std::move(help), [on = std::move(on)](const std::string&, const std::string&) { on(); }});
        return *this;
    }
    // An option with a value (the next argument), handed over as text.
    arg_parser& value(std::vector<std::string> names, std::string metavar, std::string help,
                      std::function<void(const std::string&)> on) {
        return checked(std::move(names), std::move(metavar), std::move(help),
                       [on = std::move(on)](const std::string&, const std::string& v) { on(v); });
    }
    // The same, told which spelling was used (for messages): on(option, value).
    arg_parser& checked(std::vector<std::string> names, std::string metavar, std::string help,
                        std::function<void(const std::string&, const std::string&)> on) {
        opts_.push_back({std::move(names), std::move(metavar), std::move(help), std::move(on)});
        return *this;
    }
    arg_parser& text(std::vector<std::string> names, std::string metavar, std::string help, std::string& out) {
        return value(std::move(names), std::move(metavar), std::move(help), [&out](const std::string& v) { out = v; });
    }
    // An integer option in [lo, hi].
    template <class Int>
    arg_parser& integer(std::vector<std::string> names, std::string metavar, std::string help, Int& out,
                        long long lo = std::numeric_limits<int>::min(), long long hi = std::numeric_limits<int>::max()) {
        return checked(std::move(names), std::move(metavar), std::move(help),
                       [&out, lo, hi](const std::string& o, const std::string& v) { out = Int(parse_integer(o, v, lo, hi)); });
    }
    template <class Real>
    arg_parser& number(std::vector<std::string> names, std::string metavar, std::string help, Real& out) {
        return checked(std::move(names), std::move(metavar), std::move(help),
                       [&out](const std::string& o, const std::string& v) { out = Real(parse_number(o, v)); });
    }
    // A line after the option list in the usage.
    arg_parser& epilogue(std::string line) {
        epilogue_.push_back(std::move(line));
        return *this;
    }

    // Options accepted for compatibility with llama.cpp's command lines and ignored: the GPU
    // placement options, each with its value. One note on stderr says they were ignored.
    arg_parser& ignore_gpu_options() {
        for (std::vector<std::string> names : {std::vector<std::string>{"-ngl", "--n-gpu-layers"}, {"-sm", "--split-mode"},
                                               {"-mg", "--main-gpu"}, {"-ts", "--tensor-split"}})
            ignored_.push_back(std::move(names));
        return *this;
    }

    std::string usage() const {
        std::string u = "usage: " + tool_ + " " + synopsis_ + "\n";
        for (const auto& o : opts_) {
            std::string left = "  ";
            if (o.names.size() == 1 && o.names[0].rfind("--", 0) == 0) left += "    ";
            for (std::size_t i = 0; i < o.names.size(); ++i) left += (i ? ", " : "") + o.names[i];
            if (!o.metavar.empty()) left += " " + o.metavar;
            left += left.size() < 28 ? std::string(28 - left.size(), ' ') : "  ";
            u += left + o.help + "\n";
        }
        u += "  -h, --help                show this help\n";
        if (!ignored_.empty()) {
            u += "  accepted and ignored (qinfer runs on the CPU):";
            for (const auto& names : ignored_)
                for (const auto& n : names) u += " " + n;
            u += " (each with its value)\n";
        }
        for (const auto& line : epilogue_) u += line + "\n";
        return u;
    }

    // Parses argv; throws usage_error on a mistake. outcome::help: the usage went to stdout.
    outcome parse(int argc, char** argv) {
        std::vector<std::string> ignored_seen;
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            if (a == "-h" || a == "--help") {
                std::fputs(usage().c_str(), stdout);
                return outcome::help;
            }
            auto next = [&]() -> std::string {
                if (i + 1 >= argc) throw usage_error(a + " needs a value");
                return argv[++i];
            };
            if (const option* o = find(a)) {
                o->on(a, o->metavar.empty() ? std::string() : next());
                continue;
            }
            if (is_ignored(a)) {
                next();
                ignored_seen.push_back(a);
                continue;
            }
            throw usage_error(a.size() > 1 && a[0] == '-' ? "unknown option " + a : "unexpected argument '" + a + "'");
        }
        if (!ignored_seen.empty()) {
            std::string list;
            for (const auto& n : ignored_seen) list += (list.empty() ? "" : ", ") + n;
            std::fprintf(stderr, "%s: note: ignoring %s (qinfer runs on the CPU)\n", tool_.c_str(), list.c_str());
        }
        return outcome::run;
    }

    // The usual main() around parse: returns -1 to go on, else the exit status (0 after
    // --help; 2 after a mistake, with the message and, for an unknown option, the usage).
    int parse_or_exit_code(int argc, char** argv) {
        try {
            return parse(argc, argv) == outcome::help ? 0 : -1;
        } catch (const usage_error& e) {
            const std::string what = e.what();
            if (what.rfind("unknown option", 0) == 0 || what.rfind("unexpected argument", 0) == 0)
                std::fputs(usage().c_str(), stderr);
            std::fprintf(stderr, "%s: %s\n", tool_.c_str(), what.c_str());
            return 2;
        }
    }

private:
    struct option {
        std::vector<std::string> names;
        std::string metavar;  // empty: a flag
        std::string help;
        std::function<void(const std::string&, const std::string&)> on;  // (spelling used, value)
    };
    const option* find(const std::string& a) const {
        for (const auto& o : opts_)
            for (const auto& n : o.names)
                if (n == a) return &o;
        return nullptr;
    }
    bool is_ignored(const std::string& a) const {
        for (const auto& names : ignored_)
            for (const auto& n : names)
                if (n == a) return true;
        return false;
    }

    std::string tool_, synopsis_;
    std::vector<option> opts_;
    std::vector<std::vector<std::string>> ignored_;
    std::vector<std::string> epilogue_;
};

// The sampling options of llama.cpp's common arguments, into `p`; the usage shows the values
// `p` holds now as the defaults. -s/--seed -1 draws a random seed.
inline void add_sampling_options(arg_parser& args, qinfer::sampler_params& p) {
    args.number({"--temp"}, "T", "temperature, 0 = greedy (default " + short_number(p.temperature) + ")", p.temperature)
        .integer({"--top-k"}, "K", "keep the K most likely tokens, 0 = off (default " + std::to_string(p.top_k) + ")", p.top_k)
        .number({"--top-p"}, "P", "keep the most likely tokens up to probability P, 1 = off (default " + short_number(p.top_p) + ")",
                p.top_p)
        .number({"--min-p"}, "P", "drop tokens below P times the most likely, 0 = off (default " + short_number(p.min_p) + ")",
                p.min_p)
        .number({"--repeat-penalty"}, "R", "penalize repeated tokens, 1 = off (default " + short_number(p.repeat_penalty) + ")",
                p.repeat_penalty)
        .integer({"--repeat-last-n"}, "N", "tokens the penalties look back on, 0 = off (default " + std::to_string(p.repeat_last_n) + ")",
                 p.repeat_last_n, 0)
        .number({"--presence-penalty"}, "P", "subtract P once from tokens seen (default " + short_number(p.presence_penalty) + ")",
                p.presence_penalty)
        .number({"--frequency-penalty"}, "F", "subtract F per occurrence (default " + short_number(p.frequency_penalty) + ")",
                p.frequency_penalty)
        .checked({"-s", "--seed"}, "S", "random seed, -1 = random (default " + std::to_string(p.seed) + ")",
                 [&p](const std::string& o, const std::string& v) {
            if (v == "-1") {
                std::random_device rd;
                p.seed = (std::uint64_t(rd()) << 32) ^ rd();
                return;
            }
            p.seed = std::uint64_t(parse_integer(o, v, 0, std::numeric_limits<long long>::max()));
        });
}

// -t/--threads and -c/--ctx-size, as every tool that runs a model has them.
inline void add_threads_option(arg_parser& args, int& threads) {
    args.integer({"-t", "--threads"}, "N", "threads (default: all cores)", threads, 0);
}
inline void add_ctx_option(arg_parser& args, std::int64_t& n_ctx, const std::string& help) {
    args.integer({"-c", "--ctx-size"}, "N", help, n_ctx, 0);
}

}  // namespace qinfer_tools
