// Tokenizing a 1 MB text gives llama.cpp's ids for it. The time is printed, not checked
// (timing is never pass/fail: a loaded or sanitized build is slower); a quadratic merge
// queue or pre-tokenizer would show as minutes here, against about a second.
#include "text/llama_oracle.hpp"
#include "text/support.hpp"

#include <chrono>

using namespace ttest;

namespace {

// ~1 MB of prose-like text: words, numbers, punctuation, newlines, some non-ASCII.
std::string megabyte_text() {
    static const char* words[] = {"the", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "tokenizer", "llama",
                                  "Hello", "World", "it's", "don't", "we'll", "2024", "3.14159", "e.g.", "(see", "below)",
                                  "na\xC3\xAFve", "caf\xC3\xA9", "\xD0\xBC\xD0\xB8\xD1\x80", "\xE4\xB8\xAD\xE6\x96\x87",
                                  "\xF0\x9F\xA6\x99", "--", "x=y+z;", "    indented", "\t", "ok!", "what?", "\"quoted\""};
    std::mt19937 rng(99);
    std::string s;
    s.reserve(1 << 20);
    while (s.size() < (1u << 20)) {
        s += words[rng() % std::size(words)];
        s += rng() % 13 == 0 ? "\n" : rng() % 17 == 0 ? "\n\n" : " ";
    }
    return s;
}

}  // namespace

TEST_CASE("1 MB of text tokenizes with llama.cpp's ids (time printed)") {
    const std::string text = megabyte_text();
    const llama_oracle::api* api = llama_oracle::load().loaded() ? &llama_oracle::load() : nullptr;
    for (const std::string rel : {"vocab/ggml-vocab-llama-spm.gguf", "vocab/ggml-vocab-gpt-2.gguf",
                                  "vocab/ggml-vocab-deepseek-llm.gguf", "vocab/ggml-vocab-falcon.gguf"}) {
        CAPTURE(rel);
        const text::tokenizer* tok = tokenizer_for(rel);
        if (!tok) continue;
        const auto t0 = std::chrono::steady_clock::now();
        const std::vector<std::int32_t> ids = tok->encode(text, false, false);
        const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        MESSAGE(rel << ": " << text.size() << " bytes -> " << ids.size() << " tokens in " << secs * 1000 << " ms");
        CHECK(tok->decode(ids) == text);  // these vocabularies can spell all of it
        if (api && (rel.find("spm") != std::string::npos || rel.find("gpt-2") != std::string::npos)) {
            const llama_oracle::vocab ref(*api, std::filesystem::path(QINFER_REFDATA_DIR) / rel);
            REQUIRE(ref.ok());
            CHECK(ids == ref.tokenize(text, false, false));
        }
    }
}
