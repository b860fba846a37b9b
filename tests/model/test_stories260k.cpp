// The real trained model from ../shared/refdata: qinfer against llama.cpp, token for token.
#include <filesystem>

#include <qinfer/model/session.hpp>

#include "model/reference.hpp"

namespace {
const std::string stories = std::string(QINFER_REFDATA_DIR) + "/models/stories260K.gguf";
}

TEST_CASE("stories260K: distributions and greedy tokens match llama.cpp") {
    if (!qtest::have_file(stories)) return;
    if (!mtest::node_oracle_available()) return;
    auto m = std::make_shared<const qinfer::model>(stories);
    const std::int64_t n_vocab = m->config().n_vocab;
    const std::vector<mtest::ref_case> cases = {
        {"once", "Once upon a time", {}, true, 64},
        {"lily", "Lily and her mom went to the park. They saw a big", {}, true, 64},
        {"dog", "The little dog was sad because", {}, true, 64},
    };
    const auto refs = mtest::run_reference(stories, cases, n_vocab, "model-ref/stories260K");
    qinfer::session_options opt;
    opt.n_ctx = 256;
    opt.n_threads = 2;
    qinfer::session s(m, opt);
    for (std::size_t i = 0; i < cases.size(); ++i) {
        const auto& ref = refs[i];
        const mtest::agreement a = mtest::compare(s, ref, 2e-3);
        MESSAGE("stories260K '" << cases[i].prompt << "': " << a.positions << " positions, max |dp| " << a.max_abs
                                << ", max KL " << a.max_kl << ", argmax differs at " << a.argmax_differs);
        // F32 weights and activations and an fp16 KV cache on both sides. Over the prompt
        // (one batch) probabilities agree to ~1e-6; over the generated tokens, which
        // llama.cpp evaluates one at a time through other kernels, differences grow to ~5e-4.
        CHECK(a.max_abs < 2e-3);
        CHECK(a.max_kl < 1e-5);
        CHECK(a.argmax_differs == 0);
        const auto ours = mtest::greedy(s, ref.prompt, ref.generated.size());
        CHECK_MESSAGE(mtest::same_greedy(ours, ref, 2e-3), "greedy continuation differs from llama.cpp's for '" << cases[i].prompt << "'");
    }
}
