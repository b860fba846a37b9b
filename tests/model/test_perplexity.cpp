// eval/perplexity.hpp on the real stories260K model: the chunked perplexity against a direct
// double-precision computation from session::eval_all and against llama.cpp's, and the KL
// divergence of the model against itself (0) and against llama.cpp's F16 conversion of it
// (llama.cpp's own KL divergence between the two files).
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <qinfer/eval/perplexity.hpp>

#include "model/reference.hpp"
#include "oracle/llama_quantize.hpp"

namespace {

namespace fs = std::filesystem;
const std::string stories_ppl = std::string(QINFER_REFDATA_DIR) + "/models/stories260K.gguf";

const char* const story_text =
    "Once upon a time, there was a little girl named Lily. She loved to play outside in the sunshine. "
    "One day, she saw a big red ball in the park. She wanted to play with it, but it was too high. "
    "Lily asked her mom for help. Her mom smiled and said, \"Let's get it together.\" They jumped and jumped "
    "until the ball fell down. Lily was very happy. She played with the ball all day long.\n"
    "The next day, Lily went to the park again. She met a boy named Tom. Tom had a small dog. The dog was "
    "brown and fluffy. Lily and Tom played with the dog and the ball. They ran and laughed. When the sun "
    "went down, they said goodbye. Lily went home and told her mom about her new friend. Her mom was glad. "
    "Lily went to bed and dreamed about the park, the ball and the little brown dog.\n"
    "One morning, Ben found a shiny rock near the river. He picked it up and showed it to his sister. "
    "\"Look, it is so pretty!\" he said. His sister wanted the rock too. Ben thought for a moment and then "
    "he gave it to her. She hugged him and said thank you. Ben felt warm inside because sharing made his "
    "sister happy.\n";

// Chunked mean NLL computed directly: each chunk from an empty context with BOS in front,
// logits of positions n_ctx/2 .. n_ctx-2 against the next token, log-softmax in double.
double direct_mean_nll(const std::shared_ptr<const qinfer::model>& m, const std::vector<std::int32_t>& tokens,
                       std::int64_t n_ctx, std::int64_t* count) {
    qinfer::session s(m, {.n_ctx = n_ctx, .n_threads = 2});
    const std::int64_t n_vocab = m->config().n_vocab, n_chunk = std::int64_t(tokens.size()) / n_ctx;
    double sum = 0;
    *count = 0;
    for (std::int64_t c = 0; c < n_chunk; ++c) {
        std::vector<std::int32_t> chunk(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
        chunk[0] = m->tokenizer().vocab().bos;
        s.reset();
        const auto logits = s.eval_all(chunk);
        for (std::int64_t p = n_ctx / 2; p < n_ctx - 1; ++p) {
            const float* row = logits.data() + p * n_vocab;
            double max = row[0];
            for (std::int64_t i = 0; i < n_vocab; ++i) max = std::max(max, double(row[i]));
            double z = 0;
            for (std::int64_t i = 0; i < n_vocab; ++i) z += std::exp(double(row[i]) - max);
            sum += max + std::log(z) - double(row[chunk[std::size_t(p + 1)]]);
            ++*count;
        }
    }
    return sum / double(*count);
}

// The chunks llama-perplexity feeds llama.cpp (BOS in place of each chunk's first token), as
// reference cases asking for the distribution at every position.
std::vector<mtest::ref_case> perplexity_chunks(const qinfer::model& m, const std::vector<std::int32_t>& tokens,
                                               std::int64_t n_ctx) {
    std::vector<mtest::ref_case> cases;
    for (std::int64_t c = 0; c < std::int64_t(tokens.size()) / n_ctx; ++c) {
        std::vector<std::int32_t> chunk(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
        chunk[0] = m.tokenizer().vocab().bos;
        cases.push_back({"chunk" + std::to_string(c), "", chunk, false, 1});
    }
    return cases;
}

// llama.cpp's next-token distribution of chunk c at position p.
const float* llama_row(const std::vector<mtest::ref_result>& refs, std::size_t c, std::int64_t p) {
    return refs[c].probs.data() + std::size_t(p * refs[c].n_vocab);
}

}  // namespace

TEST_CASE("stories260K perplexity: chunked NLL equals a direct computation from eval_all") {
    if (!qtest::have_file(stories_ppl)) return;
    auto m = std::make_shared<const qinfer::model>(stories_ppl);
    const auto tokens = qinfer::eval::tokenize_for_perplexity(*m, story_text);
    REQUIRE(tokens.size() >= 256);
    CHECK(tokens[0] == m->tokenizer().vocab().bos);
    const std::int64_t n_ctx = 64;
    qinfer::session s(m, {.n_ctx = n_ctx, .n_threads = 2});

    qinfer::eval::perplexity_options opt;
    opt.n_ctx = n_ctx;
    std::vector<double> running;
    const auto r = qinfer::eval::perplexity(s, tokens, opt, [&](std::int64_t, std::int64_t, double, const qinfer::eval::nll_stats& n) {
        running.push_back(n.ppl());
    });
    std::int64_t count = 0;
    const double direct = direct_mean_nll(m, tokens, n_ctx, &count);
    MESSAGE("stories260K: " << tokens.size() << " tokens, " << r.n_chunks << " chunks of " << n_ctx << ": PPL " << r.ppl()
                            << " +/- " << r.ppl_error() << " (direct " << std::exp(direct) << ")");
    CHECK(r.n_chunks == std::int64_t(tokens.size()) / n_ctx);
    CHECK(r.nll.count == r.n_chunks * (n_ctx - n_ctx / 2 - 1));
    CHECK(r.nll.count == count);
    CHECK(running.size() == std::size_t(r.n_chunks));
    CHECK(running.back() == doctest::Approx(r.ppl()).epsilon(1e-12));
    CHECK(r.nll.mean() == doctest::Approx(direct).epsilon(1e-6));
    CHECK(r.ppl() > 1.0);
    CHECK(r.ppl() < 100.0);  // a trained model on text of its domain (vocabulary 512)
    CHECK(r.ppl_error() > 0.0);

    // Smaller evaluation batches and a chunk limit.
    opt.n_batch = 16;
    opt.max_chunks = 2;
    const auto r2 = qinfer::eval::perplexity(s, tokens, opt);
    CHECK(r2.n_chunks == 2);
    CHECK(r2.nll.count == 2 * (n_ctx - n_ctx / 2 - 1));
    CHECK(std::exp(r2.nll.mean()) == doctest::Approx(running[1]).epsilon(1e-4));

    // Too short a text: a clear error.
    opt = {};
    opt.n_ctx = 256;
    CHECK_THROWS_WITH_AS(qinfer::eval::perplexity(s, std::span(tokens).first(100), opt),
                         doctest::Contains("needs at least 512"), qinfer::error);
}

// The F16 file is llama.cpp's own conversion (llama_model_quantize), and the expected KL
// divergence, top-token agreement and perplexities are llama.cpp's: computed here from its
// distributions for the F32 and the F16 file over the same chunks.
TEST_CASE("stories260K perplexity: KL divergence against itself is 0, against llama.cpp's F16 conversion llama.cpp's") {
    if (!qtest::have_file(stories_ppl) || !mtest::node_oracle_available()) return;
    const oracle::llama_quantizer quantizer(oracle::lib_dir());
    if (!quantizer.loaded()) {
        QTEST_UNAVAILABLE("llama.cpp quantizer: " << quantizer.why_missing());
        return;
    }
    const fs::path dir = fs::temp_directory_path() / "qinfer-test-perplexity";
    fs::create_directories(dir);
    const std::string base_file = (dir / "stories-f32.kld").string(), f16 = (dir / "stories260K-F16.gguf").string();
    auto m = std::make_shared<const qinfer::model>(stories_ppl);
    const auto tokens = qinfer::eval::tokenize_for_perplexity(*m, story_text);
    qinfer::eval::perplexity_options opt;
    opt.n_ctx = 64;
    qinfer::session s(m, {.n_ctx = 64, .n_threads = 2});
    const auto saved = qinfer::eval::save_kld_base(s, tokens, base_file, opt);
    const auto base = qinfer::eval::kld_base::read(base_file);
    CHECK(base.n_ctx == 64);
    CHECK(base.n_vocab == 512);
    CHECK(std::int64_t(base.n_chunk) == saved.n_chunks);

    const auto self = qinfer::eval::kl_divergence(s, base);
    MESSAGE("stories260K vs itself: mean KLD " << self.mean_kld() << ", max " << self.max_kld << ", same top "
                                               << self.same_top_percent() << "%, PPL " << self.nll.ppl() << " / base "
                                               << self.nll_base.ppl());
    CHECK(self.count == saved.nll.count);
    CHECK(self.max_kld == 0.0);
    CHECK(self.same_top_percent() == 100.0);
    CHECK(self.nll.ppl() == doctest::Approx(saved.ppl()).epsilon(1e-12));
    CHECK(self.nll_base.ppl() == doctest::Approx(saved.ppl()).epsilon(1e-5));

    REQUIRE(quantizer.quantize(stories_ppl, f16, oracle::ftype_f16) == 0);
    auto mh = std::make_shared<const qinfer::model>(f16);
    qinfer::session sh(mh, {.n_ctx = 64, .n_threads = 2});
    const auto q = qinfer::eval::kl_divergence(sh, base);

    // The same statistics from llama.cpp's distributions: KL(F32 || F16) per scored position
    // (the second half of each chunk, as llama-perplexity --kl-divergence scores it).
    const std::int64_t n_ctx = base.n_ctx, n_vocab = base.n_vocab;
    const auto cases = perplexity_chunks(*m, tokens, n_ctx);
    const auto ref32 = mtest::run_reference(stories_ppl, cases, n_vocab, "model-ref/perplexity-f32", int(n_ctx) + 8);
    const auto ref16 = mtest::run_reference(f16, cases, n_vocab, "model-ref/perplexity-f16", int(n_ctx) + 8);
    qinfer::eval::nll_stats nll32, nll16;
    double sum_kld = 0;
    std::int64_t count = 0, same_top = 0;
    for (std::size_t c = 0; c < cases.size(); ++c)
        for (std::int64_t p = n_ctx / 2; p < n_ctx - 1; ++p) {
            const float *p32 = llama_row(ref32, c, p), *p16 = llama_row(ref16, c, p);
            double kld = 0;
            for (std::int64_t i = 0; i < n_vocab; ++i)
                if (p32[i] > 0) kld += double(p32[i]) * (std::log(double(p32[i])) - std::log(double(p16[i])));
            sum_kld += std::max(kld, 0.0);
            same_top += std::max_element(p32, p32 + n_vocab) - p32 == std::max_element(p16, p16 + n_vocab) - p16;
            ++count;
            const std::int32_t next = cases[c].tokens[std::size_t(p + 1)];
            nll32.add(-std::log(double(p32[next])));
            nll16.add(-std::log(double(p16[next])));
        }
    const double llama_kld = sum_kld / double(count), llama_same_top = 100.0 * double(same_top) / double(count);
    MESSAGE("stories260K F16 vs F32: qinfer mean KLD " << q.mean_kld() << " +/- " << q.mean_kld_error() << ", same top "
                                                       << q.same_top_percent() << "%, PPL " << q.nll.ppl() << " vs base "
                                                       << q.nll_base.ppl() << "; llama.cpp mean KLD " << llama_kld
                                                       << ", same top " << llama_same_top << "%, PPL " << nll16.ppl()
                                                       << " vs " << nll32.ppl());
    REQUIRE(q.count == count);
    CHECK(q.nll_base.ppl() == doctest::Approx(nll32.ppl()).epsilon(1e-4));
    CHECK(q.nll.ppl() == doctest::Approx(nll16.ppl()).epsilon(1e-4));
    CHECK(q.mean_kld() > 0.0);
    CHECK(q.mean_kld() == doctest::Approx(llama_kld).epsilon(0.05));
    CHECK(q.same_top_percent() == doctest::Approx(llama_same_top).epsilon(0.01));

    // A base from another vocabulary: a clear error.
    qinfer::eval::kld_base other = base;
    other.n_vocab = 32000;
    CHECK_THROWS_WITH_AS(qinfer::eval::kl_divergence(s, other), doctest::Contains("vocabulary mismatch"), qinfer::error);
    // Not a base file at all.
    CHECK_THROWS_WITH_AS(qinfer::eval::kld_base::read(f16), doctest::Contains("not a qinfer KL-divergence base file"), qinfer::error);
    fs::remove_all(dir);
}

TEST_CASE("stories260K perplexity: equals llama.cpp's over the same chunks") {
    if (!qtest::have_file(stories_ppl)) return;
    if (!mtest::node_oracle_available()) return;
    auto m = std::make_shared<const qinfer::model>(stories_ppl);
    const auto tokens = qinfer::eval::tokenize_for_perplexity(*m, story_text);
    const std::int64_t n_ctx = 64, n_vocab = m->config().n_vocab;
    qinfer::session s(m, {.n_ctx = n_ctx, .n_threads = 2});
    qinfer::eval::perplexity_options opt;
    opt.n_ctx = n_ctx;
    const auto r = qinfer::eval::perplexity(s, tokens, opt);

    // llama.cpp's distributions for each chunk as llama-perplexity feeds it, scored here the
    // same way from its probabilities.
    const auto cases = perplexity_chunks(*m, tokens, n_ctx);
    REQUIRE(std::int64_t(cases.size()) == r.n_chunks);
    const auto refs = mtest::run_reference(stories_ppl, cases, n_vocab, "model-ref/perplexity", int(n_ctx) + 8);
    qinfer::eval::nll_stats llama;
    for (std::size_t c = 0; c < cases.size(); ++c)
        for (std::int64_t p = n_ctx / 2; p < n_ctx - 1; ++p)
            llama.add(-std::log(double(llama_row(refs, c, p)[cases[c].tokens[std::size_t(p + 1)]])));
    MESSAGE("stories260K, " << r.n_chunks << " chunks of " << n_ctx << ": PPL qinfer " << r.ppl() << " +/- " << r.ppl_error()
                            << ", llama.cpp " << llama.ppl() << " +/- " << llama.ppl_error());
    CHECK(llama.count == r.nll.count);
    CHECK(r.ppl() == doctest::Approx(llama.ppl()).epsilon(1e-4));
}
