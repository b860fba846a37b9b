// app/chat_session.hpp (what qinfer-chat runs) on stories260K given a chatml template: the
// context always holds exactly the tokenized conversation, only the new part is evaluated,
// and its logits equal a fresh evaluation of the whole conversation.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <qinfer/app/chat_session.hpp>

#include "model/chatml_stories.hpp"
#include "skip.hpp"

namespace {

namespace fs = std::filesystem;
const std::string stories_chat = std::string(QINFER_REFDATA_DIR) + "/models/stories260K.gguf";
using mtest::write_chatml_stories;

}  // namespace

TEST_CASE("stories260K chat session: evaluates only the new part of the formatted conversation") {
    if (!qtest::have_file(stories_chat)) return;
    // No template: a clear error naming the file and the key.
    {
        const qinfer::model plain(stories_chat);
        CHECK_THROWS_WITH_AS(qinfer::chat_session::template_of(plain), doctest::Contains("key tokenizer.chat_template"),
                             qinfer::error);
    }
    const fs::path dir = fs::path("model-ref") / "chat";
    fs::create_directories(dir);
    // A template of no known family: a clear error naming the key.
    {
        const std::string odd = (dir / "stories260K-odd-template.gguf").string();
        write_chatml_stories(stories_chat, odd, "{% for m in messages %}{{ m.role }}: {{ m.content }}{% endfor %}");
        const qinfer::model oddm(odd);
        CHECK_THROWS_WITH_AS(qinfer::chat_session::template_of(oddm), doctest::Contains("not one of the known families"),
                             qinfer::error);
    }
    const std::string file = (dir / "stories260K-chatml.gguf").string();
    write_chatml_stories(stories_chat, file);
    auto m = std::make_shared<const qinfer::model>(file);
    const auto tmpl = qinfer::chat_session::template_of(*m);
    CHECK(tmpl.format == qinfer::text::chat_format::chatml);
    const std::int32_t im_start = m->tokenizer().find("<|im_start|>"), im_end = m->tokenizer().find("<|im_end|>");
    REQUIRE(im_start == 512);
    REQUIRE(im_end == 513);
    CHECK(m->tokenizer().vocab().is_eog(im_end));

    qinfer::session s(m, {.n_ctx = 256, .n_threads = 2});
    qinfer::chat_session chat(s, tmpl);
    chat.set_system("You tell stories.");
    qinfer::generate_options greedy;
    greedy.sampling.temperature = 0;
    greedy.max_tokens = 24;

    // Turn 1: everything is new.
    std::string streamed;
    const auto r1 = chat.reply("Tell me about a cat.", greedy, [&](std::string_view t) {
        streamed += t;
        return true;
    });
    MESSAGE("reply 1 (" << qinfer::to_string(r1.stop_reason) << ", " << r1.tokens.size() << " tokens): " << r1.text);
    CHECK(streamed == r1.text);
    CHECK(!r1.tokens.empty());
    CHECK(chat.messages().size() == 3);  // system, user, assistant
    CHECK(chat.messages().back().content == r1.text);
    const auto first_prompt = chat.tokenize(
        qinfer::text::apply_chat_template(tmpl, std::span(chat.messages()).first(2), true));
    CHECK(first_prompt.front() == m->tokenizer().vocab().bos);
    CHECK(std::count(first_prompt.begin(), first_prompt.end(), im_start) == 3);
    CHECK(std::count(first_prompt.begin(), first_prompt.end(), im_end) == 2);

    // Turn 2: only the suffix beyond the evaluated context; the context is exactly the
    // tokenized conversation, and the logits equal a fresh evaluation of all of it.
    const std::span<const float> logits = chat.prompt("And a dog?");
    const auto want = chat.tokenize(chat.formatted(true));
    CHECK(chat.evaluated() == want);
    CHECK(s.n_past() == std::int64_t(want.size()));
    MESSAGE("turn 2: " << chat.last_prompt_evaluated() << " new tokens evaluated of " << want.size());
    CHECK(chat.last_prompt_evaluated() < want.size() / 2);
    CHECK(chat.last_prompt_evaluated() >= 8);  // <|im_end|>\n<|im_start|>user\nAnd a dog?<|im_end|>\n<|im_start|>assistant\n
    const std::vector<float> incremental(logits.begin(), logits.end());
    qinfer::session fresh(m, {.n_ctx = 256, .n_threads = 2});
    const auto full = fresh.eval(want);
    double max_diff = 0;
    for (std::size_t i = 0; i < full.size(); ++i) max_diff = std::max(max_diff, double(std::fabs(full[i] - incremental[i])));
    MESSAGE("max |logit difference| incremental vs fresh: " << max_diff);
    CHECK(max_diff < 1e-3);  // fp16 KV cache both ways; batch boundaries only change summation order

    // Turn 3 after an unanswered user message: the context is the conversation up to the
    // assistant header, then the reply's tokens.
    greedy.max_tokens = 8;
    const auto r3 = chat.reply("Thank you.", greedy);
    CHECK(chat.messages().size() == 6);
    const auto before_reply = chat.tokenize(qinfer::text::apply_chat_template(tmpl, std::span(chat.messages()).first(5), true));
    std::vector<std::int32_t> expect = before_reply;
    expect.insert(expect.end(), r3.tokens.begin(), r3.tokens.end());  // every reply token evaluated
    CHECK(chat.evaluated() == expect);
    CHECK(s.n_past() == std::int64_t(expect.size()));

    // /reset: the system message stays, the context is empty.
    chat.reset();
    CHECK(chat.messages().size() == 1);
    CHECK(chat.messages()[0].role == "system");
    CHECK(chat.evaluated().empty());
    CHECK(s.n_past() == 0);
    chat.prompt("Hi");
    CHECK(chat.evaluated() == chat.tokenize(chat.formatted(true)));
    CHECK(chat.last_prompt_evaluated() == chat.evaluated().size());

    // A conversation longer than the context: an error, and the chat stays usable.
    CHECK_THROWS_WITH_AS(chat.prompt(std::string(2000, 'a')), doctest::Contains("no longer fits the context"), qinfer::error);
    CHECK(chat.messages().size() == 2);
}
