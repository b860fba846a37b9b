// What an embedding application relies on (issue 16, parts 1, 7 and 9), on stories260K:
// error codes, all-or-nothing evals, cancellation and progress (counts derived by hand from
// the batch size, the layer count and the file size), and generate() / chat_session::reply()
// leaving the context at the prompt plus exactly the returned tokens for every stop reason,
// with the tokens checked against llama.cpp's greedy continuation.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <qinfer/app/generate.hpp>
#include <qinfer/app/chat_session.hpp>

#include "app/support.hpp"
#include "skip.hpp"
#include "model/chatml_stories.hpp"
#include "model/reference.hpp"

namespace {

using namespace apptest;

// llama.cpp's prompt tokens and greedy continuation of "Once upon a time" (64 tokens).
const mtest::ref_result& llama_once(const qinfer::model& m) {
    static const mtest::ref_result ref = [&] {
        const std::vector<mtest::ref_case> cases = {{"once", "Once upon a time", {}, true, 64}};
        return mtest::run_reference(stories, cases, m.config().n_vocab, "app-ref/stories260K")[0];
    }();
    return ref;
}

std::vector<std::int32_t> first(const std::vector<std::int32_t>& v, std::size_t n) {
    return {v.begin(), v.begin() + std::ptrdiff_t(std::min(n, v.size()))};
}

}  // namespace

TEST_CASE("app errors: codes for the common failures; qinfer::error(string) keeps working") {
    CHECK(qinfer::error("x").code() == qinfer::errc::other);
    CHECK(qinfer::error(std::string("x"), qinfer::errc::io).code() == qinfer::errc::io);
    CHECK(std::string(qinfer::to_string(qinfer::errc::context_full)) == "context_full");
    CHECK(code_of([] { qinfer::model m("/nonexistent/model.gguf"); }) == qinfer::errc::io);
    static const char junk[] = "GGUF\x03\0\0\0 definitely not a gguf file";
    CHECK(code_of([&] { qinfer::gguf::reader::from_memory(std::as_bytes(std::span(junk, sizeof junk - 1))); }) ==
          qinfer::errc::format);
    if (!have_stories()) return;
    const qinfer::gguf::reader r(stories);
    CHECK(code_of([&] { (void)r.require<std::uint32_t>("no.such.key"); }) == qinfer::errc::format);
    CHECK(code_of([&] { (void)r.tensor("no.such.tensor"); }) == qinfer::errc::format);
    CHECK(code_of([&] { (void)r.require<std::uint32_t>("general.architecture"); }) == qinfer::errc::format);

    auto m = load();
    CHECK(code_of([&] { qinfer::chat_session::template_of(*m); }) == qinfer::errc::unsupported);
    CHECK(code_of([&] { (void)m->tokenizer().decode(std::vector<std::int32_t>{100000}); }) == qinfer::errc::invalid_argument);
    qinfer::session s(m, {.n_ctx = 16, .n_threads = 1});
    CHECK(code_of([&] { s.eval({}); }) == qinfer::errc::invalid_argument);
    qinfer::generate_options no_bos;
    no_bos.add_special = false;
    CHECK(code_of([&] { qinfer::generate(s, "", no_bos); }) == qinfer::errc::invalid_argument);
    CHECK(code_of([&] { s.truncate(3); }) == qinfer::errc::invalid_argument);
    CHECK(s.n_past() == 0);
    const auto many = tokens_of(17, m->config().n_vocab);
    CHECK(code_of([&] { s.eval(many); }) == qinfer::errc::context_full);
    CHECK(s.n_past() == 0);
    qinfer::generate_options g;
    g.sampling.temperature = 0;
    CHECK(code_of([&] { qinfer::generate(s, std::string(200, 'a'), g); }) == qinfer::errc::context_full);
    CHECK(s.n_past() == 0);
}

TEST_CASE("app errors: library messages name no command-line tool or flag") {
    // String literals of the library headers (comments skipped): the tools add their own hints.
    const std::regex tool(R"(qinfer-(run|chat|quantize|perplexity|embedding)|llama-(quantize|gguf-split|imatrix|cli|perplexity|server)|--[a-z][a-z-]+)");
    int files = 0;
    for (const auto& e : fs::recursive_directory_iterator(fs::path(QINFER_SOURCE_DIR) / "include" / "qinfer")) {
        if (e.path().extension() != ".hpp") continue;
        ++files;
        std::ifstream in(e.path());
        std::string line;
        for (int no = 1; std::getline(in, line); ++no) {
            std::string code = line;
            if (const auto c = code.find("//"); c != std::string::npos && std::count(code.begin(), code.begin() + c, '"') % 2 == 0)
                code.resize(c);
            std::string literals;  // the text between quotes on this line
            for (std::size_t i = code.find('"'); i != std::string::npos;) {
                const std::size_t j = code.find('"', i + 1);
                if (j == std::string::npos) break;
                literals += code.substr(i + 1, j - i - 1) + "\n";
                i = code.find('"', j + 1);
            }
            CHECK_MESSAGE(!std::regex_search(literals, tool), e.path().string() << ":" << no << ": " << line);
        }
    }
    CHECK(files > 40);
}

TEST_CASE("app eval: a failing eval leaves n_past, the cache and the last logits as they were") {
    if (!have_stories()) return;
    auto m = load();
    const std::int64_t nv = m->config().n_vocab;
    const auto toks = tokens_of(13, nv);
    qinfer::session s(m, {.n_ctx = 64, .n_threads = 2, .n_batch = 4});
    const auto l3 = s.eval(std::span(toks).first(3));
    const std::vector<float> before(l3.begin(), l3.end());
    // The second batch of the next eval fails (a progress callback throwing after batch 1).
    s.set_progress([](std::int64_t done, std::int64_t) {
        if (done >= 4) throw std::runtime_error("host failure");
    });
    CHECK_THROWS_AS(s.eval(std::span(toks).subspan(3)), std::runtime_error);
    CHECK(s.n_past() == 3);
    CHECK(max_diff(l3, before) == 0);  // the span of the last completed eval is untouched
    // A trace hook throwing a qinfer::error inside the forward pass of the first batch.
    s.set_progress({});
    s.set_trace([](const qinfer::trace_event& e) {
        if (e.layer == 2) throw qinfer::error("trace failure", qinfer::errc::format);
    });
    CHECK(code_of([&] { s.eval(std::span(toks).subspan(3)); }) == qinfer::errc::format);
    CHECK(s.n_past() == 3);
    // A bad id in a later batch is found before anything runs.
    std::vector<std::int32_t> bad(toks.begin() + 3, toks.end());
    bad.back() = std::int32_t(nv);
    s.set_trace({});
    CHECK(code_of([&] { s.eval(bad); }) == qinfer::errc::invalid_argument);
    CHECK(s.n_past() == 3);
    CHECK(max_diff(l3, before) == 0);
    // The session carries on as if nothing had happened: the same logits as a fresh session.
    const auto l13 = s.eval(std::span(toks).subspan(3));
    const std::vector<float> ours(l13.begin(), l13.end());
    qinfer::session fresh(m, {.n_ctx = 64, .n_threads = 2, .n_batch = 4});
    fresh.eval(std::span(toks).first(3));
    CHECK(max_diff(fresh.eval(std::span(toks).subspan(3)), ours) == 0);
}

TEST_CASE("app cancel: a 600-token prompt in batches of 512 cancelled after the first batch keeps 512") {
    if (!have_stories()) return;
    auto m = load();
    const auto toks = tokens_of(605, m->config().n_vocab);
    const std::span<const std::int32_t> head = std::span(toks).first(5), prompt = std::span(toks).subspan(5);
    qinfer::session s(m, {.n_ctx = 1024, .n_threads = 2});
    REQUIRE(s.n_batch() == 512);
    s.eval(head);
    std::vector<std::pair<std::int64_t, std::int64_t>> progress;
    bool stop = false;
    s.set_progress([&](std::int64_t done, std::int64_t total) {
        progress.emplace_back(done, total);
        stop = true;  // cancel as soon as one batch is complete
    });
    s.set_abort([&] { return stop; });
    CHECK(code_of([&] { s.eval(prompt); }) == qinfer::errc::cancelled);
    // Batch 1 (512 tokens) completed and reported; the check before batch 2 cancelled it.
    CHECK(progress == std::vector<std::pair<std::int64_t, std::int64_t>>{{512, 600}});
    CHECK(s.n_past() == 5 + 512);
    // Resuming with the other 88 tokens gives what an uncancelled eval gives.
    stop = false;
    progress.clear();
    const auto resumed = s.eval(prompt.subspan(std::size_t(s.n_past() - 5)));
    CHECK(progress == std::vector<std::pair<std::int64_t, std::int64_t>>{{88, 88}});
    CHECK(s.n_past() == 605);
    const std::vector<float> r(resumed.begin(), resumed.end());
    qinfer::session whole(m, {.n_ctx = 1024, .n_threads = 2});
    whole.eval(head);
    whole.set_progress([&](std::int64_t done, std::int64_t total) { progress.emplace_back(done, total); });
    progress.clear();
    CHECK(max_diff(whole.eval(prompt), r) == 0);  // same batches (512 + 88) at the same positions
    CHECK(progress == std::vector<std::pair<std::int64_t, std::int64_t>>{{512, 600}, {600, 600}});
}

TEST_CASE("app cancel: checked before each batch and after each layer") {
    if (!have_stories()) return;
    auto m = load();
    const int L = int(m->config().n_layer);
    const auto toks = tokens_of(12, m->config().n_vocab);
    qinfer::session s(m, {.n_ctx = 64, .n_threads = 2, .n_batch = 4});
    s.eval(std::span(toks).first(2));
    int calls = 0;
    s.set_abort([&] { return ++calls < 0; });  // never aborts; counts the checks
    s.eval(std::span(toks).subspan(2));  // 10 tokens: batches of 4, 4, 2
    CHECK(calls == 3 * (1 + L));
    CHECK(s.n_past() == 12);

    // Abort at the third check of batch 2: before it (1), after layer 0 (2), after layer 1 (3).
    s.truncate(2);
    calls = 0;
    const int cut = (1 + L) + 3;
    s.set_abort([&] { return ++calls == cut; });
    std::vector<std::pair<int, std::int64_t>> layers_done;  // (layer, position) of each l_out seen
    s.set_trace([&](const qinfer::trace_event& e) {
        if (e.stage == "l_out") layers_done.emplace_back(e.layer, e.pos);
    });
    CHECK(code_of([&] { s.eval(std::span(toks).subspan(2)); }) == qinfer::errc::cancelled);
    CHECK(calls == cut);
    CHECK(s.n_past() == 2 + 4);  // batch 1 kept, batch 2 cut after two of its layers
    CHECK(layers_done.size() == std::size_t(L * 4 + 2 * 4));
    CHECK(layers_done.back() == std::pair<int, std::int64_t>{1, 9});

    // An abort before anything ran changes nothing.
    s.set_abort([] { return true; });
    CHECK(code_of([&] { s.eval(std::span(toks).subspan(6)); }) == qinfer::errc::cancelled);
    CHECK(s.n_past() == 6);
}

TEST_CASE("app load: progress over the mapped pages, and cancelling a load") {
    if (!have_stories()) return;
    const std::uint64_t size = fs::file_size(stories);
    REQUIRE(size == 1185376);  // one full 1 MiB chunk and a partial one
    std::vector<std::pair<std::uint64_t, std::uint64_t>> seen;
    const qinfer::model m(stories, {.progress = [&](std::uint64_t done, std::uint64_t total) {
                              seen.emplace_back(done, total);
                              return true;
                          }});
    CHECK(seen == std::vector<std::pair<std::uint64_t, std::uint64_t>>{{0, size}, {1048576, size}, {size, size}});
    CHECK(m.config().n_vocab == 512);
    int calls = 0;
    CHECK(code_of([&] { qinfer::model c(stories, {.progress = [&](std::uint64_t, std::uint64_t) { return ++calls < 2; }}); }) ==
          qinfer::errc::cancelled);
    CHECK(calls == 2);
}

TEST_CASE("app generate: the context holds the prompt plus exactly the returned tokens, for every stop reason") {
    if (!have_stories() || !mtest::node_oracle_available()) return;
    auto m = load();
    const auto& ref = llama_once(*m);
    const qinfer::text::tokenizer& tok = m->tokenizer();
    REQUIRE(tok.encode("Once upon a time", true, false) == ref.prompt);
    const std::int64_t P = std::int64_t(ref.prompt.size());
    qinfer::generate_options g;
    g.sampling.temperature = 0;
    const qinfer::session_options so{.n_ctx = 256, .n_threads = 2};

    // The sequence after generate() equals a fresh evaluation of prompt + tokens: evaluate
    // llama.cpp's next token and compare the logits.
    const auto check_context = [&](qinfer::session& s, const qinfer::generate_result& r) {
        CHECK(s.n_past() == P + std::int64_t(r.tokens.size()));
        if (r.tokens.size() >= ref.generated.size()) return;
        const std::int32_t next = ref.generated[r.tokens.size()];
        const auto cont = s.eval(std::span(&next, 1));
        const std::vector<float> ours(cont.begin(), cont.end());
        std::vector<std::int32_t> all = ref.prompt;
        all.insert(all.end(), r.tokens.begin(), r.tokens.end());
        all.push_back(next);
        qinfer::session fresh(m, so);
        CHECK(max_diff(fresh.eval(all), ours) < 1e-4);  // fp16 cache both ways; only batch shapes differ
    };

    SUBCASE("max tokens") {
        qinfer::session s(m, so);
        g.max_tokens = 20;
        std::string streamed;
        const auto r = qinfer::generate(s, "Once upon a time", g, [&](std::string_view t) { streamed += t; return true; });
        CHECK(r.stop_reason == qinfer::stop_reason::max_tokens);
        CHECK(r.prompt_tokens == ref.prompt);
        CHECK(r.tokens == first(ref.generated, 20));
        CHECK(streamed == r.text);
        CHECK(r.text == tok.decode(r.tokens));
        check_context(s, r);
    }
    SUBCASE("end of text") {
        // The same weights with token 426 also marked end-of-turn: greedy generation ends where
        // llama.cpp's continuation first has 426, which is neither returned nor evaluated.
        const fs::path dir = "app-ref";
        fs::create_directories(dir);
        const std::string eot_file = (dir / "stories260K-eot426.gguf").string();
        {
            const qinfer::gguf::reader src(stories);
            qinfer::gguf::writer w;
            for (const auto& e : src.metadata()) w.set(std::string(e.key), e.value);
            w.set("tokenizer.ggml.eot_token_id", std::uint32_t(426));
            for (const auto& t : src.tensors())
                w.add_tensor(t.name, t.type, std::vector<std::int64_t>(t.ne.begin(), t.ne.begin() + t.n_dims), t.bytes());
            w.write(eot_file);
        }
        auto me = std::make_shared<const qinfer::model>(eot_file);
        REQUIRE(me->tokenizer().vocab().is_eog(426));
        const auto at = std::size_t(std::find(ref.generated.begin(), ref.generated.end(), 426) - ref.generated.begin());
        REQUIRE(at == 10);
        qinfer::session s(me, so);
        g.max_tokens = 40;
        const auto r = qinfer::generate(s, "Once upon a time", g);
        CHECK(r.stop_reason == qinfer::stop_reason::end_of_text);
        CHECK(r.tokens == first(ref.generated, at));
        CHECK(s.n_past() == P + std::int64_t(at));
        check_context(s, r);
    }
    SUBCASE("stop string") {
        // The text of llama.cpp's tokens 12..13; generation stops at the first token whose
        // decoded text contains it.
        const std::string stop = tok.decode(std::vector<std::int32_t>(ref.generated.begin() + 12, ref.generated.begin() + 14));
        std::size_t k = 1;
        while (tok.decode_continuation(first(ref.generated, k)).find(stop) == std::string::npos) ++k;
        const std::string full = tok.decode_continuation(first(ref.generated, k));
        MESSAGE("stop string '" << stop << "' completes at token " << k);
        qinfer::session s(m, so);
        g.max_tokens = 40;
        g.stop = {stop};
        std::string streamed;
        const auto r = qinfer::generate(s, "Once upon a time", g, [&](std::string_view t) { streamed += t; return true; });
        CHECK(r.stop_reason == qinfer::stop_reason::stop_string);
        CHECK(r.tokens == first(ref.generated, k));
        CHECK(r.text == full.substr(0, full.find(stop)));
        CHECK(streamed == r.text);
        check_context(s, r);
    }
    SUBCASE("callback returning false") {
        qinfer::session s(m, so);
        g.max_tokens = 40;
        int calls = 0;
        std::string streamed;
        const auto r = qinfer::generate(s, "Once upon a time", g, [&](std::string_view t) {
            streamed += t;
            return ++calls < 3;
        });
        CHECK(r.stop_reason == qinfer::stop_reason::callback);
        CHECK(calls == 3);
        CHECK(r.tokens == first(ref.generated, 3));  // each of these tokens is whole ASCII text: one call each
        CHECK(streamed == r.text);
        check_context(s, r);
    }
    SUBCASE("context full") {
        qinfer::session s(m, {.n_ctx = P + 7, .n_threads = 2});
        g.max_tokens = -1;
        const auto r = qinfer::generate(s, "Once upon a time", g);
        CHECK(r.stop_reason == qinfer::stop_reason::context_full);
        CHECK(r.tokens == first(ref.generated, 7));
        CHECK(s.n_past() == s.n_ctx());
    }
    SUBCASE("cancelled") {
        qinfer::session s(m, so);
        s.set_abort([&] { return s.n_past() >= P + 5; });  // the check before the 6th token's eval
        g.max_tokens = 40;
        const auto r = qinfer::generate(s, "Once upon a time", g);
        CHECK(r.stop_reason == qinfer::stop_reason::cancelled);
        CHECK(r.tokens == first(ref.generated, 5));
        s.set_abort({});
        check_context(s, r);
        // Cancelled while the prompt is evaluated: an error, nothing generated.
        qinfer::session t(m, so);
        t.set_abort([] { return true; });
        CHECK(code_of([&] { qinfer::generate(t, "Once upon a time", g); }) == qinfer::errc::cancelled);
        CHECK(t.n_past() == 0);
    }
    SUBCASE("continuing a generation") {
        // A second generate() continues the first: its tokens are the greedy continuation of
        // a fresh evaluation of everything before them.
        qinfer::session s(m, so);
        g.max_tokens = 10;
        const auto r1 = qinfer::generate(s, "Once upon a time", g);
        CHECK(r1.tokens == first(ref.generated, 10));
        const auto r2 = qinfer::generate(s, " The end.", g);
        CHECK(s.n_past() == P + 10 + std::int64_t(r2.prompt_tokens.size() + r2.tokens.size()));
        std::vector<std::int32_t> all = ref.prompt;
        all.insert(all.end(), r1.tokens.begin(), r1.tokens.end());
        all.insert(all.end(), r2.prompt_tokens.begin(), r2.prompt_tokens.end());
        qinfer::session fresh(m, so);
        auto logits = fresh.eval(all);
        std::vector<std::int32_t> again;
        for (std::size_t i = 0; i < r2.tokens.size(); ++i) {
            again.push_back(std::int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin()));
            logits = fresh.eval(std::span(&again.back(), 1));
        }
        CHECK(again == r2.tokens);
    }
}

TEST_CASE("app chat: reply() takes generate()'s options, stops at a stop string, and every reply token is in the context") {
    if (!have_stories()) return;
    const fs::path dir = "app-ref";
    fs::create_directories(dir);
    const std::string file = (dir / "stories260K-chatml.gguf").string();
    mtest::write_chatml_stories(stories, file);
    auto m = std::make_shared<const qinfer::model>(file);
    qinfer::session s(m, {.n_ctx = 256, .n_threads = 2});
    qinfer::chat_session chat(s, qinfer::chat_session::template_of(*m));
    chat.set_system("You tell stories.");
    qinfer::generate_options g;
    g.sampling.temperature = 0;
    g.max_tokens = 16;
    const auto r1 = chat.reply("Tell me about a cat.", g);
    CHECK(r1.stop_reason == qinfer::stop_reason::max_tokens);
    REQUIRE(r1.tokens.size() == 16);
    CHECK(std::int64_t(chat.evaluated().size()) == s.n_past());
    CHECK(std::equal(r1.tokens.begin(), r1.tokens.end(), chat.evaluated().end() - 16));
    CHECK(r1.prompt_tokens.size() == chat.last_prompt_evaluated());

    // The same turn again with a stop string taken from the first reply's text.
    chat.reset();
    const std::string stop = r1.text.substr(r1.text.size() / 2, 3);
    g.stop = {stop};
    const auto r2 = chat.reply("Tell me about a cat.", g);
    CHECK(r2.stop_reason == qinfer::stop_reason::stop_string);
    CHECK(r2.text == r1.text.substr(0, r1.text.find(stop)));
    CHECK(chat.messages().back().content == r2.text);
    CHECK(std::equal(r2.tokens.begin(), r2.tokens.end(), r1.tokens.begin()));
    CHECK(std::int64_t(chat.evaluated().size()) == s.n_past());

    // Cancelled while the turn's prompt is evaluated: the user message is dropped and
    // evaluated() still mirrors the session.
    s.set_abort([] { return true; });
    CHECK(code_of([&] { chat.reply("And then?", g); }) == qinfer::errc::cancelled);
    CHECK(chat.messages().size() == 3);
    CHECK(std::int64_t(chat.evaluated().size()) == s.n_past());
    s.set_abort({});
    const auto r3 = chat.reply("And then?", g);
    CHECK(chat.messages().size() == 5);
    CHECK(std::int64_t(chat.evaluated().size()) == s.n_past());
    CHECK(!r3.tokens.empty());
}
