// text/chat_session.hpp (what qinfer-chat runs) on stories260K given a chatml template: the
// context always holds exactly the tokenized conversation, only the new part is evaluated,
// and its logits equal a fresh evaluation of the whole conversation.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <qinfer/gguf/writer.hpp>
#include <qinfer/text/chat_session.hpp>

#include "skip.hpp"

namespace {

namespace fs = std::filesystem;
const std::string stories_chat = std::string(QINFER_REFDATA_DIR) + "/models/stories260K.gguf";

// stories260K plus two control tokens <|im_start|> and <|im_end|> (embedding and output rows
// copied from BOS and EOS, so the model ends a reply where it would end a story) and a
// chatml template.
const char* const chatml_jinja =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

void write_chatml_stories(const std::string& src, const std::string& dst, std::string_view chat_template = chatml_jinja) {
    namespace gguf = qinfer::gguf;
    const gguf::reader r(src);
    auto tokens = r.require_array<std::string_view>("tokenizer.ggml.tokens");
    auto scores = r.require_array<float>("tokenizer.ggml.scores");
    auto types = r.require_array<std::int32_t>("tokenizer.ggml.token_type");
    const std::int64_t n_vocab = std::int64_t(tokens.size());
    const std::int64_t bos = r.require<std::uint32_t>("tokenizer.ggml.bos_token_id");
    const std::int64_t eos = r.require<std::uint32_t>("tokenizer.ggml.eos_token_id");
    std::vector<std::string> toks(tokens.begin(), tokens.end());
    toks.push_back("<|im_start|>");
    toks.push_back("<|im_end|>");
    scores.push_back(0);
    scores.push_back(0);
    types.push_back(3);  // control
    types.push_back(3);
    gguf::writer w;
    for (const auto& e : r.metadata()) w.set(std::string(e.key), e.value);
    w.set("general.name", "stories260K chatml (test)");
    w.set("tokenizer.ggml.tokens", toks);
    w.set("tokenizer.ggml.scores", scores);
    w.set("tokenizer.ggml.token_type", types);
    w.set("tokenizer.chat_template", chat_template);
    for (const auto& t : r.tensors()) {
        std::vector<std::int64_t> ne(t.ne.begin(), t.ne.begin() + t.n_dims);
        if (t.n_dims == 2 && t.ne[1] == n_vocab) {
            REQUIRE(t.type == qinfer::type_id::f32);
            const float* p = reinterpret_cast<const float*>(t.data);
            const std::int64_t d = t.ne[0];
            std::vector<float> v(p, p + d * n_vocab);
            v.insert(v.end(), p + bos * d, p + (bos + 1) * d);
            v.insert(v.end(), p + eos * d, p + (eos + 1) * d);
            ne[1] += 2;
            w.add_tensor(t.name, t.type, ne, std::as_bytes(std::span<const float>(v)));
        } else {
            w.add_tensor(t.name, t.type, ne, t.bytes());
        }
    }
    w.write(dst);
}

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
    qinfer::sampler_params greedy;
    greedy.temperature = 0;

    // Turn 1: everything is new.
    std::string streamed;
    const auto r1 = chat.reply("Tell me about a cat.", greedy, 24, [&](std::string_view t) {
        streamed += t;
        return true;
    });
    MESSAGE("reply 1 (" << r1.stop_reason << ", " << r1.tokens.size() << " tokens): " << r1.text);
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
    const auto r3 = chat.reply("Thank you.", greedy, 8);
    CHECK(chat.messages().size() == 6);
    const auto before_reply = chat.tokenize(qinfer::text::apply_chat_template(tmpl, std::span(chat.messages()).first(5), true));
    REQUIRE(chat.evaluated().size() >= before_reply.size());
    CHECK(std::equal(before_reply.begin(), before_reply.end(), chat.evaluated().begin()));
    CHECK(chat.evaluated().size() - before_reply.size() + 1 >= r3.tokens.size());

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
