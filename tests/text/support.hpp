// tests/text/support.hpp — shared helpers for the text tests: reference files, llama.cpp's
// tokenizer test vectors and a cache of loaded tokenizers.
#pragma once

#include <doctest/doctest.h>

#include "skip.hpp"

#include <qinfer/text/tokenizer.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

namespace ttest {

namespace text = qinfer::text;

// A file under the reference data directory, or nullopt after a skip message (a failure in CI).
using qtest::refdata;

inline std::string read_file(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    std::ostringstream s;
    s << f.rdbuf();
    return s.str();
}

// The vocabulary files llama.cpp ships test vectors for (SPM and BPE ones).
inline const std::vector<std::string>& vector_vocabs() {
    static const std::vector<std::string> names = {"llama-spm", "phi-3", "gpt-2", "deepseek-coder", "deepseek-llm",
                                                   "falcon", "mpt", "refact", "starcoder"};
    return names;
}

// Every SPM / BPE vocabulary file in the reference data (with or without vectors).
inline const std::vector<std::string>& all_vocab_files() {
    static const std::vector<std::string> files = {
        "vocab/ggml-vocab-llama-spm.gguf", "vocab/ggml-vocab-phi-3.gguf",     "vocab/ggml-vocab-baichuan.gguf",
        "vocab/ggml-vocab-gpt-2.gguf",     "vocab/ggml-vocab-deepseek-coder.gguf", "vocab/ggml-vocab-deepseek-llm.gguf",
        "vocab/ggml-vocab-falcon.gguf",    "vocab/ggml-vocab-mpt.gguf",       "vocab/ggml-vocab-refact.gguf",
        "vocab/ggml-vocab-starcoder.gguf", "vocab/ggml-vocab-gpt-neox.gguf",  "models/stories260K.gguf"};
    return files;
}

struct vector_case {
    std::string text;
    std::vector<std::int32_t> ids;
};

// llama.cpp's .inp / .out pair (format in vocab/NOTICE.txt).
inline std::vector<vector_case> read_vectors(const std::filesystem::path& inp, const std::filesystem::path& out) {
    const std::string raw = read_file(inp);
    const std::string sep = "\n__ggml_vocab_test__\n";
    std::vector<std::string> texts;
    for (std::size_t pos = 0; pos < raw.size();) {
        const std::size_t next = raw.find(sep, pos);
        if (next == std::string::npos) {
            texts.push_back(raw.substr(pos));
            break;
        }
        texts.push_back(raw.substr(pos, next - pos));
        pos = next + sep.size();
    }
    std::vector<std::string> lines;
    std::ifstream f(out);
    for (std::string line; std::getline(f, line);) lines.push_back(line);
    REQUIRE(texts.size() == lines.size());
    std::vector<vector_case> cases;
    for (std::size_t i = 0; i < texts.size(); ++i) {
        vector_case c{texts[i], {}};
        std::istringstream ids(lines[i]);
        for (std::int32_t id; ids >> id;) c.ids.push_back(id);
        cases.push_back(std::move(c));
    }
    return cases;
}

// Tokenizers are slow-ish to build (hash maps of 50k-100k entries): build each file once.
inline const text::tokenizer* tokenizer_for(const std::string& rel) {
    static std::map<std::string, std::unique_ptr<text::tokenizer>> cache;
    if (auto it = cache.find(rel); it != cache.end()) return it->second.get();
    const auto p = refdata(rel);
    if (!p) return nullptr;
    return (cache[rel] = std::make_unique<text::tokenizer>(*p)).get();
}

inline std::string show(const std::vector<std::int32_t>& ids) {
    std::string s;
    for (std::int32_t id : ids) s += std::to_string(id) + " ";
    return s;
}


// Fragments the random strings are assembled from: each exercises a branch of a pre-tokenizer
// regex, a Unicode class or a special-token rule.
inline std::vector<std::string> fragment_pool(const text::tokenizer& tok) {
    std::vector<std::string> pool = {
        // ASCII
        "a", "Z", "hello", "World", "x", " ", "  ", "   ", "\t", "\n", "\r", "\r\n", "\n\n", "\v", "\f", " \n ",
        "0", "7", "42", "123", "2024", "31415926", ".", ",", "!", "?", "'", "\"", "(", ")", "[", "]", "{", "}", "-",
        "_", "/", "\\", ":", ";", "$", "+", "<", "=", ">", "^", "~", "|", "`", "#", "%", "&", "*", "@",
        "...", "!!!", "?!", "->", "::", "==", "//", "/*", "*/",
        // contractions, both cases
        "'s", "'t", "'re", "'ve", "'m", "'ll", "'d", "'S", "'T", "'RE", "'Ve", "'M", "'LL", "'D", "'x", "' ",
        " 's", "don't", "I'm", "we'll",
        // control characters that are and are not whitespace
        std::string("\x00", 1), "\x01", "\x1b", "\x1c", "\x1f", "\x7f",
        // non-ASCII whitespace and separators
        "\xC2\x85", "\xC2\xA0", "\xE1\x9A\x80", "\xE2\x80\x80", "\xE2\x80\x83", "\xE2\x80\x8A", "\xE2\x80\xA8",
        "\xE2\x80\xA9", "\xE2\x80\xAF", "\xE2\x81\x9F", "\xE3\x80\x80", "\xE2\x80\x8B" /*ZWSP (Cf)*/,
        // letters of many scripts, marks
        "\xC3\xA9", "\xC3\x84pfel", "\xC3\x9F", "\xC5\xBF", "\xCE\xB1\xCE\xB2\xCE\xB3", "\xD0\x9F\xD1\x80\xD0\xB8",
        "\xD0\xBD\xD0\xB5\xD1\x89\xD0\xBE", "\xE4\xB8\xAD\xE6\x96\x87", "\xE6\x88\x91\xE6\x83\xB3", "\xEA\xB0\x80",
        "\xED\x9E\xA3", "\xE3\x81\x82", "\xE3\x82\xA2", "\xD8\xB9\xD8\xB1\xD8\xA8\xD9\x8A", "\xE0\xA4\xB9\xE0\xA4\xBF",
        "\xE0\xB8\x81\xE0\xB8\xB3", "\xE1\x9E\x80\xE1\x9E\xB6", "e\xCC\x81", "\xCC\x81", "\xCC\x80\xCC\x81",
        "\xE0\xA4\x82", "\xE1\xBA\xA1", "C\xE1\xBB\xAD" "a", "\xE2\x84\xAA" /*Kelvin*/, "\xC4\xB0" /*I dot*/,
        "\xEF\xBC\xA1", "\xE1\xBC\x80", "\xF0\x90\x90\x80" /*Deseret*/, "\xF0\xA0\x80\x80" /*CJK ext B*/,
        "\xF0\xAE\xAF\xB0" /*CJK ext I (15.1)*/, "\xE2\xBF\xBC" /*IDC, 15.1*/,
        // numbers that are not ASCII digits
        "\xC2\xB2", "\xC2\xBD", "\xE2\x85\xAB", "\xD9\xA3", "\xEF\xBC\x93", "\xE2\x91\xA0", "\xF0\x9D\x9F\x8E",
        // punctuation and symbols
        "\xE2\x80\x94", "\xE2\x80\x9C", "\xE2\x80\x99", "\xE2\x80\xA6", "\xE3\x80\x82", "\xE3\x80\x81", "\xEF\xBC\x81",
        "\xEF\xBD\x9E", "\xC2\xA7", "\xC2\xAB", "\xE2\x82\xAC", "\xC2\xA9", "\xE2\x88\x91", "\xE2\x86\x92",
        "\xCB\x86", "\xEF\xBF\xBD",
        // emoji, ZWJ sequences, variation selectors
        "\xF0\x9F\xA6\x99", "\xF0\x9F\x9A\x80", "\xF0\x9F\x98\xB6\xE2\x80\x8D\xF0\x9F\x8C\xAB\xEF\xB8\x8F",
        "\xE2\x9C\x85", "\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD",
        // unassigned, private use
        "\xCD\xB8", "\xEE\x80\x80", "\xF3\xB0\x80\x80",
        // SentencePiece's space mark written in the input
        "\xE2\x96\x81", "\xE2\x96\x81\xE2\x96\x81",
        // malformed UTF-8
        "\xFF", "\xC3", "\xE2\x82", "\xF0\x9F\xA6", "\x80", "\xBF\xBF", "\xC0\x80", "\xED\xA0\x80", "\xF8\x88\x80\x80\x80",
        // common special-token spellings (whether or not this vocabulary has them)
        "<s>", "</s>", "<unk>", "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|user|>", "<|end|>", "<0x0A>",
    };
    // This vocabulary's own special tokens, and some ordinary tokens (their decoded text).
    std::mt19937 rng(1234);
    for (std::size_t id = 0; id < tok.size(); ++id) {
        const std::uint32_t a = tok.vocab().attr(static_cast<std::int32_t>(id));
        if ((a & (text::attr_control | text::attr_user_defined | text::attr_unknown)) && pool.size() < 400)
            pool.push_back(tok.vocab().tokens[id]);
    }
    for (int i = 0; i < 60; ++i)
        pool.push_back(tok.token_to_piece(static_cast<std::int32_t>(rng() % tok.size()), true));
    return pool;
}

inline std::string random_text(std::mt19937& rng, const std::vector<std::string>& pool) {
    std::string s;
    const int n = static_cast<int>(rng() % 12);
    for (int i = 0; i < n; ++i) {
        const std::string& f = pool[rng() % pool.size()];
        const int reps = rng() % 8 == 0 ? 1 + static_cast<int>(rng() % 6) : 1;  // runs: "    ", "3333", ...
        for (int r = 0; r < reps; ++r) s += f;
    }
    return s;
}


}  // namespace ttest
