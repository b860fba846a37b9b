// tests/model/reference.hpp — llama.cpp's answers for a model file (through node-llama-cpp,
// see llama_reference.mjs) and the metrics qinfer's answers are held to.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <qinfer/model/session.hpp>

#include "oracle/ggml_oracle.hpp"

namespace mtest {

namespace fs = std::filesystem;

struct ref_case {
    std::string name;
    std::string prompt;                 // tokenized by llama.cpp, unless `tokens` is set
    std::vector<std::int32_t> tokens;
    bool add_bos = true;
    int n_predict = 64;
    // A context shift after the tokens (keep >= 0): erase [keep, keep + discard), then
    // evaluate `then`; the result's probs are one row per token of `then`.
    int shift_keep = -1, shift_discard = 0;
    std::vector<std::int32_t> then = {};
};

struct ref_result {
    std::vector<std::int32_t> prompt;     // as evaluated, BOS included
    std::vector<std::int32_t> generated;  // llama.cpp's greedy continuation
    std::vector<float> probs;             // one row of n_vocab per evaluated position
    std::int64_t n_vocab = 0;
    std::int64_t positions() const { return std::int64_t(probs.size()) / n_vocab; }
};

inline std::string source_dir() { return QINFER_SOURCE_DIR; }

inline std::string json_string(const std::string& s) {
    std::string o = "\"";
    for (char c : s) {
        if (c == '"' || c == '\\') o += '\\';
        if (static_cast<unsigned char>(c) < 0x20) { o += ' '; continue; }
        o += c;
    }
    return o + "\"";
}

// Whether node and node-llama-cpp are present; otherwise a skip message (or a failure when
// the oracle is required).
inline bool node_oracle_available() {
    const std::string pkg = oracle::lib_dir() + "/node_modules/node-llama-cpp/package.json";
    const bool ok = fs::exists(pkg) && std::system("node --version > /dev/null 2>&1") == 0;
    if (ok) return true;
    QTEST_UNAVAILABLE("node-llama-cpp oracle (" << pkg << ", node)");
    return false;
}

inline std::vector<std::int32_t> parse_ids(const std::string& line) {
    std::vector<std::int32_t> ids;
    std::istringstream in(line);
    for (std::int32_t v; in >> v;) ids.push_back(v);
    return ids;
}

// Runs llama.cpp on `model` for every case; results in case order. `kv_type` (a ggml type
// name, e.g. "F32") replaces llama.cpp's default fp16 KV cache.
inline std::vector<ref_result> run_reference(const std::string& model, const std::vector<ref_case>& cases,
                                             std::int64_t n_vocab, const fs::path& out_dir, int n_ctx = 256,
                                             const std::string& kv_type = "") {
    fs::create_directories(out_dir);
    std::ostringstream spec;
    spec << "{\"oracle_dir\": " << json_string(oracle::lib_dir()) << ", \"model\": " << json_string(model)
         << ", \"n_ctx\": " << n_ctx << ", \"threads\": 2, ";
    if (!kv_type.empty()) spec << "\"kv_type\": " << json_string(kv_type) << ", ";
    spec << "\"cases\": [";
    for (std::size_t i = 0; i < cases.size(); ++i) {
        const ref_case& c = cases[i];
        spec << (i ? ", " : "") << "{\"name\": " << json_string(c.name) << ", \"add_bos\": " << (c.add_bos ? "true" : "false")
             << ", \"n_predict\": " << c.n_predict << ", \"n_vocab\": " << n_vocab;
        if (!c.tokens.empty()) {
            spec << ", \"tokens\": [";
            for (std::size_t j = 0; j < c.tokens.size(); ++j) spec << (j ? ", " : "") << c.tokens[j];
            spec << "]";
        } else {
            spec << ", \"prompt\": " << json_string(c.prompt);
        }
        if (c.shift_keep >= 0) {
            spec << ", \"shift\": {\"keep\": " << c.shift_keep << ", \"discard\": " << c.shift_discard << ", \"then\": [";
            for (std::size_t j = 0; j < c.then.size(); ++j) spec << (j ? ", " : "") << c.then[j];
            spec << "]}";
        }
        spec << "}";
    }
    spec << "]}";
    const fs::path spec_path = out_dir / "spec.json";
    std::ofstream(spec_path) << spec.str();
    const std::string cmd = "node " + source_dir() + "/tests/model/llama_reference.mjs " + spec_path.string() + " " +
                            out_dir.string() + " > " + (out_dir / "node.log").string() + " 2>&1";
    const int rc = std::system(cmd.c_str());
    if (rc != 0) {
        std::ifstream log(out_dir / "node.log");
        std::stringstream ss;
        ss << log.rdbuf();
        FAIL("llama.cpp reference run failed (" << cmd << "): " << ss.str());
    }
    std::vector<ref_result> out;
    for (const ref_case& c : cases) {
        ref_result r;
        r.n_vocab = n_vocab;
        std::ifstream tok(out_dir / (c.name + ".tokens"));
        std::string l1, l2;
        std::getline(tok, l1);
        std::getline(tok, l2);
        r.prompt = parse_ids(l1);
        r.generated = parse_ids(l2);
        std::ifstream pb(out_dir / (c.name + ".probs"), std::ios::binary);
        pb.seekg(0, std::ios::end);
        const auto bytes = std::size_t(pb.tellg());
        pb.seekg(0);
        r.probs.resize(bytes / sizeof(float));
        pb.read(reinterpret_cast<char*>(r.probs.data()), std::streamsize(bytes));
        const std::int64_t rows = c.shift_keep >= 0 ? std::int64_t(c.then.size())
                                                    : std::int64_t(r.prompt.size() + r.generated.size()) - 1;
        REQUIRE_MESSAGE(r.positions() == rows, "unexpected reference output for " << c.name);
        out.push_back(std::move(r));
    }
    return out;
}

inline void softmax(const float* logits, std::int64_t n, std::vector<double>& p) {
    p.resize(std::size_t(n));
    const float max = *std::max_element(logits, logits + n);
    double sum = 0;
    for (std::int64_t i = 0; i < n; ++i) sum += (p[std::size_t(i)] = std::exp(double(logits[i]) - max));
    for (auto& v : p) v /= sum;
}

// How far qinfer's next-token distributions are from llama.cpp's over a whole sequence.
struct agreement {
    double max_abs = 0;     // max over positions and tokens of |p_qinfer - p_llama|
    double max_kl = 0;      // max over positions of KL(p_llama || p_qinfer), nats
    int argmax_differs = 0; // positions whose most likely token differs where llama.cpp's own
                            // top-2 margin is wider than `tie` (a real disagreement)
    int near_ties = 0;      // positions whose top-2 margin is within `tie` (either pick is right)
    int positions = 0;
};

// llama.cpp's margin between its two most likely tokens at a position.
inline double top2_margin(const float* q, std::int64_t n) {
    float a = 0, b = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        if (q[i] > a) { b = a; a = q[i]; }
        else if (q[i] > b) b = q[i];
    }
    return double(a) - double(b);
}

// Teacher-forces llama.cpp's sequence (prompt + its greedy tokens) through `s` and compares
// the distribution at every position.
inline agreement compare(qinfer::session& s, const ref_result& ref, double tie) {
    std::vector<std::int32_t> seq = ref.prompt;
    seq.insert(seq.end(), ref.generated.begin(), ref.generated.end() - 1);
    s.reset();
    const auto logits = s.eval_all(seq);
    agreement a;
    std::vector<double> p;
    for (std::int64_t pos = 0; pos < ref.positions(); ++pos) {
        softmax(logits.data() + pos * ref.n_vocab, ref.n_vocab, p);
        const float* q = ref.probs.data() + pos * ref.n_vocab;
        double kl = 0;
        std::int64_t best_ours = 0, best_ref = 0;
        for (std::int64_t i = 0; i < ref.n_vocab; ++i) {
            const double pi = p[std::size_t(i)], qi = q[i];
            a.max_abs = std::max(a.max_abs, std::fabs(pi - qi));
            if (qi > 0) kl += qi * (std::log(qi) - std::log(std::max(pi, 1e-30)));
            if (pi > p[std::size_t(best_ours)]) best_ours = i;
            if (qi > q[best_ref]) best_ref = i;
        }
        a.max_kl = std::max(a.max_kl, kl);
        const bool tied = top2_margin(q, ref.n_vocab) <= tie;
        a.near_ties += tied;
        a.argmax_differs += best_ours != best_ref && !tied;
        ++a.positions;
    }
    return a;
}

// Whether qinfer's free-running greedy continuation `ours` agrees with llama.cpp's: token for
// token, except that at a near-tie of llama.cpp's (top-2 margin <= tie) either choice is
// right and the sequences may part there, ending the comparison.
inline bool same_greedy(const std::vector<std::int32_t>& ours, const ref_result& ref, double tie, int* compared = nullptr) {
    const std::size_t np = ref.prompt.size();
    for (std::size_t i = 0; i < ref.generated.size(); ++i) {
        if (compared) *compared = int(i);
        if (i >= ours.size()) return false;
        if (ours[i] == ref.generated[i]) continue;
        const float* q = ref.probs.data() + std::int64_t(np - 1 + i) * ref.n_vocab;
        return top2_margin(q, ref.n_vocab) <= tie;
    }
    if (compared) *compared = int(ref.generated.size());
    return true;
}

// qinfer's own greedy continuation of ref.prompt (free-running, n tokens).
inline std::vector<std::int32_t> greedy(qinfer::session& s, const std::vector<std::int32_t>& prompt, std::size_t n) {
    s.reset();
    auto logits = s.eval(prompt);
    std::vector<std::int32_t> out;
    while (out.size() < n) {
        const auto best = std::int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
        out.push_back(best);
        if (out.size() == n) break;
        logits = s.eval(std::span<const std::int32_t>(&out.back(), 1));
    }
    return out;
}

}  // namespace mtest
