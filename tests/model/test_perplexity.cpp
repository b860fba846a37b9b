// eval/perplexity.hpp on the real stories260K model: the chunked perplexity against a direct
// double-precision computation from session::eval_all, and the KL divergence of the model
// against itself (0) and against its F16 conversion (small, > 0).
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <qinfer/eval/perplexity.hpp>
#include <qinfer/gguf/writer.hpp>
#include <qinfer/quant/f16.hpp>

#include "model/reference.hpp"

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

// The same model with every F32 matrix (2-D tensor) stored as F16; norms stay F32.
void write_f16_copy(const std::string& src, const std::string& dst) {
    const qinfer::gguf::reader r(src);
    qinfer::gguf::writer w;
    for (const auto& e : r.metadata()) w.set(std::string(e.key), e.value);
    w.set("general.file_type", std::uint32_t(1));  // LLAMA_FTYPE_MOSTLY_F16
    for (const auto& t : r.tensors()) {
        const std::vector<std::int64_t> ne(t.ne.begin(), t.ne.begin() + t.n_dims);
        if (t.type == qinfer::type_id::f32 && t.n_dims >= 2) {
            std::vector<qinfer::fp16> h(static_cast<std::size_t>(t.n_elements));
            qinfer::quantize_row(reinterpret_cast<const float*>(t.data), h.data(), t.n_elements);
            w.add_tensor(t.name, qinfer::type_id::f16, ne, std::as_bytes(std::span<const qinfer::fp16>(h)));
        } else {
            w.add_tensor(t.name, t.type, ne, t.bytes());
        }
    }
    w.write(dst);
}

}  // namespace

TEST_CASE("stories260K perplexity: chunked NLL equals a direct computation from eval_all") {
    if (!fs::exists(stories_ppl)) {
        MESSAGE("SKIPPED: " << stories_ppl << " not present");
        return;
    }
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

TEST_CASE("stories260K perplexity: KL divergence against itself is 0, against its F16 conversion small") {
    if (!fs::exists(stories_ppl)) {
        MESSAGE("SKIPPED: " << stories_ppl << " not present");
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

    write_f16_copy(stories_ppl, f16);
    auto mh = std::make_shared<const qinfer::model>(f16);
    qinfer::session sh(mh, {.n_ctx = 64, .n_threads = 2});
    const auto q = qinfer::eval::kl_divergence(sh, base);
    MESSAGE("stories260K F16 vs F32: mean KLD " << q.mean_kld() << " +/- " << q.mean_kld_error() << ", max " << q.max_kld
                                                << ", same top " << q.same_top_percent() << "%, PPL " << q.nll.ppl()
                                                << " vs base " << q.nll_base.ppl());
    CHECK(q.mean_kld() > 0.0);
    CHECK(q.mean_kld() < 1e-3);
    CHECK(q.same_top_percent() > 95.0);
    CHECK(q.nll.ppl() == doctest::Approx(q.nll_base.ppl()).epsilon(1e-2));

    // A base from another vocabulary: a clear error.
    qinfer::eval::kld_base other = base;
    other.n_vocab = 32000;
    CHECK_THROWS_WITH_AS(qinfer::eval::kl_divergence(s, other), doctest::Contains("vocabulary mismatch"), qinfer::error);
    // Not a base file at all.
    CHECK_THROWS_WITH_AS(qinfer::eval::kld_base::read(f16), doctest::Contains("not a qinfer KL-divergence base file"), qinfer::error);
    fs::remove_all(dir);
}

TEST_CASE("stories260K perplexity: equals llama.cpp's over the same chunks") {
    if (!fs::exists(stories_ppl)) {
        MESSAGE("SKIPPED: " << stories_ppl << " not present");
        return;
    }
    if (!mtest::node_oracle_available()) return;
    auto m = std::make_shared<const qinfer::model>(stories_ppl);
    const auto tokens = qinfer::eval::tokenize_for_perplexity(*m, story_text);
    const std::int64_t n_ctx = 64, n_vocab = m->config().n_vocab;
    qinfer::session s(m, {.n_ctx = n_ctx, .n_threads = 2});
    qinfer::eval::perplexity_options opt;
    opt.n_ctx = n_ctx;
    const auto r = qinfer::eval::perplexity(s, tokens, opt);

    // llama.cpp's distributions for each chunk as llama-perplexity feeds it (BOS in place of
    // the first token), scored here the same way from its probabilities.
    std::vector<mtest::ref_case> cases;
    for (std::int64_t c = 0; c < r.n_chunks; ++c) {
        std::vector<std::int32_t> chunk(tokens.begin() + c * n_ctx, tokens.begin() + (c + 1) * n_ctx);
        chunk[0] = m->tokenizer().vocab().bos;
        cases.push_back({"chunk" + std::to_string(c), "", chunk, false, 1});
    }
    const auto refs = mtest::run_reference(stories_ppl, cases, n_vocab, "model-ref/perplexity", int(n_ctx) + 8);
    qinfer::eval::nll_stats llama;
    for (std::int64_t c = 0; c < r.n_chunks; ++c)
        for (std::int64_t p = n_ctx / 2; p < n_ctx - 1; ++p)
            llama.add(-std::log(double(refs[std::size_t(c)].probs[std::size_t(p * n_vocab + cases[std::size_t(c)].tokens[std::size_t(p + 1)])])));
    MESSAGE("stories260K, " << r.n_chunks << " chunks of " << n_ctx << ": PPL qinfer " << r.ppl() << " +/- " << r.ppl_error()
                            << ", llama.cpp " << llama.ppl() << " +/- " << llama.ppl_error());
    CHECK(llama.count == r.nll.count);
    CHECK(r.ppl() == doctest::Approx(llama.ppl()).epsilon(1e-4));
}
