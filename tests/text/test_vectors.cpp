// llama.cpp's tokenizer test vectors (models/ggml-vocab-*.gguf.inp / .out, the expected ids
// produced by the reference Hugging Face tokenizers, which llama.cpp's test-tokenizer-0 passes):
// every string of every SPM / BPE vocabulary must encode to exactly those ids.
#include "text/support.hpp"

using namespace ttest;

TEST_CASE("llama.cpp tokenizer test vectors") {
    for (const std::string& name : vector_vocabs()) {
        CAPTURE(name);
        const std::string base = "vocab/ggml-vocab-" + name + ".gguf";
        const auto inp = refdata(base + ".inp");
        const auto out = refdata(base + ".out");
        const text::tokenizer* tok = tokenizer_for(base);
        if (!inp || !out || !tok) continue;
        const std::vector<vector_case> cases = read_vectors(*inp, *out);
        std::size_t passed = 0;
        for (const vector_case& c : cases) {
            const std::vector<std::int32_t> got = tok->encode(c.text, /*add_special=*/false, /*parse_special=*/false);
            if (got == c.ids) {
                ++passed;
            } else {
                INFO("text: [" << c.text << "]");
                CHECK(show(got) == show(c.ids));
            }
        }
        MESSAGE(name << ": " << passed << " / " << cases.size() << " test vectors pass");
        CHECK(cases.size() > 0);
        CHECK(passed == cases.size());
    }
}
