// Every pre-tokenizer name qinfer accepts, checked against llama.cpp: the gpt-2 vocabulary,
// cut to its first 2000 tokens and the merges that build them (so that loading is quick), is
// rewritten with each tokenizer.ggml.pre value, and both libraries load the same file. This covers the regex lists that have no vocabulary file in the reference
// data (llama3 / llama-bpe, qwen2, qwen35, command-r, ...), and the flags each name implies.
// Also SPM flags (add_space_prefix, add_eos) the reference vocabularies do not vary.
#include "text/llama_oracle.hpp"
#include "text/support.hpp"

#include <qinfer/gguf/writer.hpp>

#include <functional>

#include <unistd.h>

using namespace ttest;

namespace {

// A copy of `base` with some keys replaced, written to a temporary file.
struct derived_gguf {
    std::filesystem::path path;
    derived_gguf(const std::filesystem::path& base, const std::string& tag,
                 const std::function<void(qinfer::gguf::writer&, const qinfer::gguf::reader&)>& edit) {
        const qinfer::gguf::reader r(base);
        qinfer::gguf::writer w;
        for (const auto& e : r.metadata()) w.set(std::string(e.key), e.value);
        edit(w, r);
        path = std::filesystem::temp_directory_path() /
               ("qinfer-text-" + std::to_string(::getpid()) + "-" + tag + ".gguf");
        w.write(path);
    }
    ~derived_gguf() { std::filesystem::remove(path); }
};

// Strings aimed at the pre-tokenizer regexes' edges, then random ones.
std::vector<std::string> regex_edge_cases() {
    return {"", " ", "  ", "a", " a", "  a", "   a", "a ", "a  ", "\n", " \n", "  \n ", "\n\n \n", "\r\n\r\n", "\t\ta",
            " \t\n x", "x\n", "x \n", "x  \ny", "1", "12", "123", "1234", "12345", "1234567", " 1234", "a1234b",
            "\xD9\xA3\xD9\xA4\xD9\xA5\xD9\xA6", "\xC2\xB2\xC2\xB3", "''", "'s'", "'S's", "'ll've", "x'LL", "'", " '",
            "!!", " !!", " !!\n\n", "!!\r\n", "a!!b", "(a)", " (", "\n =", "' era", "e\xCC\x81", " \xCC\x81",
            "\xCC\x81\xCC\x81" "a", "\xE4\xB8\xAD\xE6\x96\x87" "abc", "abc\xE4\xB8\xAD", "\xEA\xB0\x80\xEA\xB0\x81 x",
            "\xE3\x80\x80x", "x\xE3\x80\x80", "\xE3\x80\x81\xE3\x80\x82", "\xEF\xBC\x81\xEF\xBC\x81 a", "\xE2\x80\x9Cq\xE2\x80\x9D",
            "\xC2\xA0\xC2\xA0", "a\xC2\xA0" "b", "\xE2\x80\x83 \xE2\x80\x83", "x \xC2\x85", "$$", " $5", "<=>", "^~|`",
            "\xE2\x82\xAC 5", "\xF0\x9F\xA6\x99\xF0\x9F\xA6\x99 x", "\xFF\xFE", "a\xC3", "\xCD\xB8\xCD\xB8", "\x01\x02",
            "Hello, y'all! How are you \xF0\x9F\x98\x81 ?\xE6\x88\x91\xE6\x83\xB3\xE5\x9C\xA8" "apple\xE5\xB7\xA5\xE4\xBD\x9C" "1314151\xE5\xA4\xA9\xEF\xBD\x9E"};
}

// gpt-2's tokens 0..1999 (256 bytes, then one token per merge in rank order) and
// <|endoftext|>, with the merges that form them.
void small_gpt2(qinfer::gguf::writer& w, const qinfer::gguf::reader& r) {
    std::vector<std::string_view> tokens = r.require_array<std::string_view>("tokenizer.ggml.tokens");
    std::vector<std::string_view> merges = r.require_array<std::string_view>("tokenizer.ggml.merges");
    const std::string_view eot = tokens.back();
    tokens.resize(2000);
    tokens.push_back(eot);
    merges.resize(2000 - 256);
    std::vector<std::int32_t> types(tokens.size(), 1);
    types.back() = 3;
    w.set("tokenizer.ggml.tokens", tokens);
    w.set("tokenizer.ggml.merges", merges);
    w.set("tokenizer.ggml.token_type", types);
    w.set("tokenizer.ggml.bos_token_id", std::uint32_t{2000});
    w.set("tokenizer.ggml.eos_token_id", std::uint32_t{2000});
}

void compare_on_strings(const text::tokenizer& tok, const llama_oracle::vocab& ref, const std::string& what, int n_random) {
    std::vector<std::string> inputs = regex_edge_cases();
    const std::vector<std::string> pool = fragment_pool(tok);
    std::mt19937 rng(7);
    for (int i = 0; i < n_random; ++i) inputs.push_back(random_text(rng, pool));
    std::size_t ok = 0;
    for (const std::string& s : inputs) {
        bool same = true;
        for (int mode = 0; mode < 4; ++mode) {
            const bool add = mode & 1, parse = mode & 2;
            const auto want = ref.tokenize(s, add, parse);
            const auto got = tok.encode(s, add, parse);
            if (got != want) {
                same = false;
                INFO(what << ": text [" << s << "] add_special=" << add << " parse_special=" << parse);
                CHECK(show(got) == show(want));
            }
            if (ref.detokenize(want, false, true) != tok.decode(want, false, true)) {
                same = false;
                INFO(what << ": decode of " << show(want));
                CHECK(ref.detokenize(want, false, true) == tok.decode(want, false, true));
            }
        }
        ok += same;
    }
    MESSAGE(what << ": " << ok << " / " << inputs.size() << " strings encode and decode as in llama.cpp");
    CHECK(ok == inputs.size());
}

}  // namespace

TEST_CASE("every supported tokenizer.ggml.pre name behaves as in llama.cpp") {
    const llama_oracle::api* api = llama_oracle::get();
    const auto base = refdata("vocab/ggml-vocab-gpt-2.gguf");
    if (!api || !base) return;
    for (const char* pre : {"default", "llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0",
                            "lfm2", "jina-v5-nano", "dbrx", "smaug-bpe", "glm4", "chatglm-bpe", "deepseek-llm",
                            "deepseek-coder", "falcon", "gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es",
                            "jina-v2-de", "a.x-4.0", "mellum", "modern-bert", "mpt", "olmo", "jais", "exaone4", "trillion",
                            "granite-docling", "starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2",
                            "command-r", "smollm", "qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "hunyuan", "grok-2",
                            "solar-open", "stablelm2", "megrez", "qwen35"}) {
        const std::string pre_name = pre;
        CAPTURE(pre_name);
        const derived_gguf file(*base, pre, [&](qinfer::gguf::writer& w, const qinfer::gguf::reader& r) {
            small_gpt2(w, r);
            w.set("tokenizer.ggml.pre", pre);
        });
        const text::tokenizer tok(file.path);
        const llama_oracle::vocab ref(*api, file.path);
        REQUIRE(ref.ok());
        llama_oracle::check_vocab_facts(*api, ref, tok);
        // The main families get more random strings.
        const std::string_view p = pre;
        const bool main = p == "default" || p == "llama-bpe" || p == "qwen2" || p == "qwen35" || p == "deepseek-llm" ||
                          p == "deepseek-coder" || p == "falcon" || p == "starcoder" || p == "gpt-2";
        compare_on_strings(tok, ref, std::string("pre=") + pre, main ? 1000 : 40);
    }
}

TEST_CASE("a pre-tokenizer name qinfer does not implement is rejected, as llama.cpp rejects unknown ones") {
    const auto base = refdata("vocab/ggml-vocab-gpt-2.gguf");
    if (!base) return;
    const derived_gguf file(*base, "unknown-pre", [](qinfer::gguf::writer& w, const qinfer::gguf::reader& r) {
        small_gpt2(w, r);
        w.set("tokenizer.ggml.pre", "no-such-pre");
    });
    CHECK_THROWS_WITH_AS(text::tokenizer{file.path}, doctest::Contains("no-such-pre"), qinfer::error);
    if (const llama_oracle::api* api = llama_oracle::get()) {
        const llama_oracle::vocab ref(*api, file.path);
        CHECK_FALSE(ref.ok());
    }
}

TEST_CASE("SPM flags from the file: add_space_prefix, add_bos, add_eos, explicit special ids") {
    const llama_oracle::api* api = llama_oracle::get();
    const auto base = refdata("vocab/ggml-vocab-llama-spm.gguf");
    if (!api || !base) return;
    struct variant {
        const char* tag;
        std::function<void(qinfer::gguf::writer&, const qinfer::gguf::reader&)> edit;
    };
    const std::vector<variant> variants = {
        {"no-prefix", [](qinfer::gguf::writer& w, const qinfer::gguf::reader&) { w.set("tokenizer.ggml.add_space_prefix", false); }},
        {"eos", [](qinfer::gguf::writer& w, const qinfer::gguf::reader&) {
             w.set("tokenizer.ggml.add_eos_token", true);
             w.set("tokenizer.ggml.add_bos_token", false);
         }},
        {"defaults", [](qinfer::gguf::writer& w, const qinfer::gguf::reader&) {  // no flags, no ids: llama.cpp's SPM defaults
             w.erase("tokenizer.ggml.add_bos_token");
             w.erase("tokenizer.ggml.add_eos_token");
             w.erase("tokenizer.ggml.bos_token_id");
             w.erase("tokenizer.ggml.eos_token_id");
             w.erase("tokenizer.ggml.unknown_token_id");
         }},
        {"ids", [](qinfer::gguf::writer& w, const qinfer::gguf::reader&) {
             w.set("tokenizer.ggml.bos_token_id", std::uint32_t{2});
             w.set("tokenizer.ggml.eos_token_id", std::uint32_t{99999});  // out of range: default kept
             w.set("tokenizer.ggml.eot_token_id", std::uint32_t{13});
             w.set("tokenizer.ggml.add_eos_token", true);
         }},
    };
    for (const variant& v : variants) {
        CAPTURE(v.tag);
        const derived_gguf file(*base, std::string("spm-") + v.tag, v.edit);
        const text::tokenizer tok(file.path);
        const llama_oracle::vocab ref(*api, file.path);
        REQUIRE(ref.ok());
        llama_oracle::check_vocab_facts(*api, ref, tok);
        compare_on_strings(tok, ref, std::string("spm ") + v.tag, 200);
    }
}

TEST_CASE("special tokens found by their text, end-of-generation set, lstrip / rstrip by model name") {
    // llama.cpp finds eot / eom / FIM tokens by their text when the file does not name them,
    // takes the first its hash map iterates to when several qualify, marks them control, and
    // derives the end-of-generation set (with workarounds for gpt-oss and gemma4 vocabularies).
    const llama_oracle::api* api = llama_oracle::get();
    const auto base = refdata("vocab/ggml-vocab-gpt-2.gguf");
    if (!api || !base) return;
    struct variant {
        const char* tag;
        const char* name;                 // general.name
        std::vector<std::string> extra;   // appended tokens
        std::vector<std::int32_t> types;  // their token types
    };
    const std::vector<variant> variants = {
        {"eot-candidates", "x", {"<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "<EOT>", "[EOT]", "<|eom_id|>"}, {1, 3, 4, 3, 1, 1, 3}},
        {"fim", "x", {"<|fim_prefix|>", "<fim_suffix>", "<MID>", "<|fim_pad|>", "<|repo_name|>", "<reponame>", "<|file_sep|>", "<PRE>", "<SUF>", "<|unused_3|>", "unused"}, {1, 1, 3, 4, 1, 3, 1, 1, 1, 3, 1}},
        {"gpt-oss", "x", {"<|return|>", "<|call|>", "<|end|>", "<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"}, {3, 3, 3, 3, 3, 3, 3}},
        {"gemma4-like", "x", {"</s>", "<|tool_response>", "<eos>", "<turn|>"}, {3, 3, 3, 3}},
        {"phi3-rstrip", "My-Phi-3-mini", {"<|user|>", "<|assistant|>", "<unk>", "<s>", "</s>", "<x>"}, {3, 3, 2, 3, 4, 4}},
        {"modern-bert-lstrip", "modern-bert-base", {"[MASK]", "<x>"}, {4, 4}},
    };
    for (const variant& vt : variants) {
        CAPTURE(vt.tag);
        const derived_gguf file(*base, vt.tag, [&](qinfer::gguf::writer& w, const qinfer::gguf::reader& r) {
            small_gpt2(w, r);
            std::vector<std::string> tokens;
            for (std::string_view t : r.require_array<std::string_view>("tokenizer.ggml.tokens")) {
                if (tokens.size() == 2000) break;
                tokens.emplace_back(t);
            }
            tokens.emplace_back("<|endoftext|>");
            std::vector<std::int32_t> types(tokens.size(), 1);
            types.back() = 3;
            for (std::size_t i = 0; i < vt.extra.size(); ++i) {
                tokens.push_back(vt.extra[i]);
                types.push_back(vt.types[i]);
            }
            w.set("tokenizer.ggml.tokens", tokens);
            w.set("tokenizer.ggml.token_type", types);
            w.set("general.name", vt.name);
            w.set("tokenizer.ggml.pre", "gpt-2");
        });
        const text::tokenizer tok(file.path);
        const llama_oracle::vocab ref(*api, file.path);
        REQUIRE(ref.ok());
        llama_oracle::check_vocab_facts(*api, ref, tok);
        std::vector<std::string> texts;
        for (const std::string& t : vt.extra)
            for (const char* around : {"", " ", "  ", "\n", " \t "})
                texts.push_back(std::string("a") + around + t + around + "b" + around + t);
        std::size_t ok = 0;
        for (const std::string& s : texts) {
            bool same = true;
            for (int mode = 0; mode < 4; ++mode) {
                const auto want = ref.tokenize(s, mode & 1, mode & 2);
                const auto got = tok.encode(s, mode & 1, mode & 2);
                if (got != want) {
                    same = false;
                    INFO("text [" << s << "] mode " << mode);
                    CHECK(show(got) == show(want));
                }
                for (int dm = 0; dm < 4; ++dm)
                    if (ref.detokenize(want, dm & 1, dm & 2) != tok.decode(want, dm & 1, dm & 2)) {
                        same = false;
                        CHECK(ref.detokenize(want, dm & 1, dm & 2) == tok.decode(want, dm & 1, dm & 2));
                    }
            }
            ok += same;
        }
        CHECK(ok == texts.size());
    }
}
