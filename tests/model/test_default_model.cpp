// qinfer's committed default model (examples/models/, trained by scripts/train-default-model.py
// on the King James Bible) against llama.cpp: its tokenizer, and its greedy continuations.
#include <filesystem>

#include <qinfer/model/session.hpp>

#include "model/reference.hpp"

namespace {
const std::string default_model = std::string(QINFER_SOURCE_DIR) + "/examples/models/qinfer-kjv-3m-f16.gguf";
}

TEST_CASE("default model: tokenizer, distributions and greedy tokens match llama.cpp") {
    REQUIRE_MESSAGE(std::filesystem::exists(default_model), default_model << " is missing");
    if (!mtest::node_oracle_available()) return;
    auto m = std::make_shared<const qinfer::model>(default_model);
    const std::int64_t n_vocab = m->config().n_vocab;
    const std::vector<mtest::ref_case> cases = {
        // greedy continuations
        {"god", "And God said", {}, true, 64},
        {"beginning", "In the beginning", {}, true, 64},
        {"shepherd", "The LORD is my shepherd; I shall not want.", {}, true, 64},
        // tokenizer: text outside the corpus too (digits, odd spacing, characters with no
        // piece of their own, which fall back to bytes)
        {"tok1",
         "Then answered Peter and said unto him, Behold, we have forsaken all, and followed thee; "
         "what shall we have therefore? (Matthew 19:27)",
         {}, true, 1},
        {"tok2",
         "  Two  spaces,\ttabs, caf\xC3\xA9s and na\xC3\xAFve r\xC3\xA9sum\xC3\xA9s \xE2\x80\x94 1234567890 "
         "QUIZ xylophone jazz {braces} [brackets] <angles> 100% #hash @at ~tilde \xF0\x9F\x98\x80!",
         {}, true, 1},
    };
    const auto refs = mtest::run_reference(default_model, cases, n_vocab, "model-ref/default-model");
    qinfer::session_options opt;
    opt.n_ctx = 256;
    opt.n_threads = 2;
    qinfer::session s(m, opt);
    for (std::size_t i = 0; i < cases.size(); ++i) {
        const auto& ref = refs[i];
        // json_string() (reference.hpp) hands llama.cpp control characters as spaces
        std::string text = cases[i].prompt;
        for (char& c : text)
            if (static_cast<unsigned char>(c) < 0x20) c = ' ';
        const auto ours_tokens = m->tokenizer().encode(text, true);
        CHECK_MESSAGE(ours_tokens == ref.prompt, "tokenization differs from llama.cpp's for '" << text << "'");
        const mtest::agreement a = mtest::compare(s, ref, 2e-3);
        MESSAGE("default model '" << cases[i].prompt << "': " << a.positions << " positions, max |dp| " << a.max_abs
                                  << ", max KL " << a.max_kl << ", argmax differs at " << a.argmax_differs);
        CHECK(a.max_abs < 5e-3);
        CHECK(a.max_kl < 1e-4);
        CHECK(a.argmax_differs == 0);
        const auto ours = mtest::greedy(s, ref.prompt, ref.generated.size());
        int compared = 0;
        CHECK_MESSAGE(mtest::same_greedy(ours, ref, 2e-3, &compared),
                      "greedy continuation differs from llama.cpp's for '" << cases[i].prompt << "'");
        if (cases[i].n_predict >= 64) {
            // the whole continuation, with no near-tie letting the two part
            CHECK(ours == ref.generated);
            MESSAGE("  continuation: " << m->tokenizer().decode(ours));
        }
    }
}
