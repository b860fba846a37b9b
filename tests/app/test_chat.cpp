// chat_session as an app holds it (issue 16, part 7): borrowed, shared or owned sessions,
// undo of the last turn and a loaded history, on stories260K with a chatml template. The
// expected tokens come from plain session evals of the tokenized conversation (greedy), not
// from the chat's own bookkeeping.
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <qinfer/app/chat_session.hpp>

#include "app/support.hpp"
#include "model/chatml_stories.hpp"

namespace {

using namespace apptest;

std::shared_ptr<const qinfer::model> chatml_model() {
    static const std::shared_ptr<const qinfer::model> m = [] {
        const fs::path dir = "app-chat";
        fs::create_directories(dir);
        const std::string file = (dir / "stories260K-chatml.gguf").string();
        mtest::write_chatml_stories(stories, file);
        return std::make_shared<const qinfer::model>(file);
    }();
    return m;
}

// Greedy continuation of `prompt` in a fresh session: n tokens, each evaluated.
std::vector<std::int32_t> greedy(const std::shared_ptr<const qinfer::model>& m, const std::vector<std::int32_t>& prompt, int n) {
    qinfer::session s(m, {.n_ctx = 512, .n_threads = 2});
    auto logits = s.eval(prompt);
    std::vector<std::int32_t> out;
    for (int i = 0; i < n; ++i) {
        out.push_back(std::int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin()));
        logits = s.eval(std::span(&out.back(), 1));
    }
    return out;
}

qinfer::generate_options greedy_options(int n) {
    qinfer::generate_options g;
    g.sampling.temperature = 0;
    g.max_tokens = n;
    return g;
}

}  // namespace

TEST_CASE("app chat: a chat borrows, shares or owns its session") {
    if (!have_stories()) return;
    auto m = chatml_model();
    const auto tmpl = qinfer::chat_session::template_of(*m);
    const auto g = greedy_options(10);

    qinfer::session borrowed(m, {.n_ctx = 256, .n_threads = 2});
    qinfer::chat_session a(borrowed, tmpl);
    const auto ra = a.reply("Tell me about a dog.", g);
    CHECK(&a.get_session() == &borrowed);
    CHECK(borrowed.n_past() == std::int64_t(a.evaluated().size()));

    auto shared = std::make_shared<qinfer::session>(m, qinfer::session_options{.n_ctx = 256, .n_threads = 2});
    std::weak_ptr<qinfer::session> watch = shared;
    {
        qinfer::chat_session b(shared, tmpl);
        shared.reset();  // the chat keeps it alive
        CHECK(!watch.expired());
        CHECK(b.reply("Tell me about a dog.", g).tokens == ra.tokens);
    }
    CHECK(watch.expired());
    CHECK(code_of([&] { qinfer::chat_session(std::shared_ptr<qinfer::session>(), tmpl); }) == qinfer::errc::invalid_argument);

    qinfer::chat_session c(m, {.n_ctx = 256, .n_threads = 2});  // its own session, the file's template
    CHECK(c.get_session().n_ctx() == 256);
    CHECK(c.reply("Tell me about a dog.", g).tokens == ra.tokens);
    // A model without a template cannot own a chat.
    CHECK(code_of([&] { qinfer::chat_session(load(), {.n_ctx = 64}); }) == qinfer::errc::unsupported);
}

TEST_CASE("app chat: undo takes back the last turn; the same question then gets the same reply") {
    if (!have_stories()) return;
    auto m = chatml_model();
    qinfer::chat_session chat(m, {.n_ctx = 512, .n_threads = 2});
    chat.set_system("You tell stories.");
    const auto g = greedy_options(12);
    CHECK(!chat.undo());  // nothing to take back yet
    CHECK(chat.messages().size() == 1);

    const auto r1 = chat.reply("Tell me about a cat.", g);
    const auto after_first = chat.evaluated();
    const auto r2 = chat.reply("And then?", g);
    REQUIRE(chat.messages().size() == 5);

    REQUIRE(chat.undo());
    CHECK(chat.messages().size() == 3);
    CHECK(chat.messages().back().content == r1.text);
    // The context is cut to what the remaining conversation shares with it.
    const auto rest = chat.tokenize(chat.formatted(false));
    REQUIRE(chat.evaluated().size() <= rest.size());
    CHECK(std::equal(chat.evaluated().begin(), chat.evaluated().end(), rest.begin()));
    CHECK(chat.get_session().n_past() == std::int64_t(chat.evaluated().size()));
    // Everything up to the end of the first reply stays (its end-of-turn too, which the second
    // prompt evaluated), but for the reply's last tokens should they re-tokenize differently.
    CHECK(chat.evaluated().size() + 3 >= after_first.size());

    const auto again = chat.reply("And then?", g);
    CHECK(again.tokens == r2.tokens);
    CHECK(again.text == r2.text);
    // The turn after the undo evaluated only its own new part, not the conversation again.
    CHECK(chat.last_prompt_evaluated() < chat.evaluated().size() / 2);

    // An unanswered prompt() is taken back too.
    chat.prompt("What is her name?");
    REQUIRE(chat.messages().size() == 6);
    REQUIRE(chat.undo());
    CHECK(chat.messages().size() == 5);
    CHECK(chat.messages().back().role == "assistant");
    REQUIRE(chat.undo());
    REQUIRE(chat.undo());
    CHECK(chat.messages().size() == 1);  // the system message stays
    CHECK(!chat.undo());
}

TEST_CASE("app chat: a loaded history gives the reply that chat would have given") {
    if (!have_stories()) return;
    auto m = chatml_model();
    const auto g = greedy_options(12);
    qinfer::chat_session first(m, {.n_ctx = 512, .n_threads = 2});
    first.set_system("You tell stories.");
    first.reply("Tell me about a cat.", g);
    const auto history = first.messages();
    const auto next = first.reply("And then?", g);

    qinfer::chat_session loaded(m, {.n_ctx = 512, .n_threads = 2});
    loaded.load_history(history);
    CHECK(loaded.evaluated().empty());  // nothing evaluated until the next turn
    CHECK(loaded.messages().size() == history.size());
    const auto r = loaded.reply("And then?", g);
    CHECK(r.tokens == next.tokens);

    // The independent check: greedy decoding of the tokenized conversation in a plain session.
    std::vector<qinfer::text::chat_message> conv = history;
    conv.push_back({"user", "And then?"});
    const auto prompt = loaded.tokenize(qinfer::text::apply_chat_template(qinfer::chat_session::template_of(*m), conv, true));
    CHECK(greedy(m, prompt, 12) == r.tokens);
    CHECK(loaded.last_prompt_evaluated() == prompt.size());

    // Loading over a live conversation reuses the shared start of the context.
    loaded.load_history(history);
    CHECK(loaded.evaluated().size() > 20);
    CHECK(loaded.reply("And then?", g).tokens == next.tokens);
    CHECK(loaded.last_prompt_evaluated() < prompt.size() / 2);

    // Bad histories change nothing.
    const auto before = loaded.messages().size();
    CHECK(code_of([&] { loaded.load_history({{"user", "hi"}, {"tool", "x"}}); }) == qinfer::errc::invalid_argument);
    CHECK(code_of([&] { loaded.load_history({{"user", "hi"}, {"system", "late"}}); }) == qinfer::errc::invalid_argument);
    CHECK(loaded.messages().size() == before);
}
