// Round trips llama.cpp guarantees (its test-tokenizer-1-spm, run on llama-spm; the BPE
// variant is disabled upstream): every token's text, and every code point's UTF-8, re-encoded
// with special-token parsing and decoded again, gives back the same text.
#include "text/support.hpp"

using namespace ttest;

TEST_CASE("SPM round trip: decode(encode(s)) == s for every token text and every code point (llama-spm)") {
    const text::tokenizer* tok = tokenizer_for("vocab/ggml-vocab-llama-spm.gguf");
    if (!tok) return;
    std::size_t tokens_ok = 0;
    for (std::int32_t id = 0; id < static_cast<std::int32_t>(tok->size()); ++id) {
        const std::int32_t one[] = {id};
        const std::string s = tok->decode(one, false, /*unparse_special=*/true);
        const std::string back = tok->decode(tok->encode(s, false, /*parse_special=*/true), false, true);
        if (back == s) ++tokens_ok;
        else CHECK_MESSAGE(back == s, "token " << id);
    }
    std::size_t cpts = 0, cpts_ok = 0;
    for (std::uint32_t cp = 0; cp < 0x110000; ++cp) {
        if ((cp >= 0xD800 && cp <= 0xDFFF) || (cp >= 0x40000 && cp <= 0xE0000) || cp == 0x2581) continue;
        std::string s;
        text::append_utf8(s, cp);
        ++cpts;
        const std::string back = tok->decode(tok->encode(s, false, true), false, true);
        if (back == s) ++cpts_ok;
        else CHECK_MESSAGE(back == s, "code point " << cp);
    }
    MESSAGE("llama-spm round trip: " << tokens_ok << " / " << tok->size() << " tokens, " << cpts_ok << " / " << cpts
                                     << " code points");
    CHECK(tokens_ok == tok->size());
    CHECK(cpts_ok == cpts);
}
