// tests/fuzz/model_fuzz.cpp — libFuzzer target past the GGUF reader (run by scripts/fuzz-gguf.sh
// beside gguf_fuzz.cpp): the input is read as a GGUF from memory, then everything a user's
// first call touches: the model configuration, the weights, the vocabulary and tokenizer,
// the chat template detection and formatting, and one evaluation of a few tokens with a
// tiny context. Rejecting the file with qinfer::error is the expected outcome for most
// inputs; a crash, a sanitizer report, another exception type or an allocation past
// libFuzzer's -malloc_limit_mb is a finding. Seeds: tests/fuzz/corpus-model/ (model_seeds.hpp).
#include <qinfer/model/session.hpp>
#include <qinfer/text/chat_template.hpp>

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <exception>
#include <memory>
#include <span>
#include <string>
#include <vector>

namespace {

[[noreturn]] void finding(const char* what, const std::string& detail = {}) {
    std::fprintf(stderr, "model_fuzz finding: %s %s\n", what, detail.c_str());
    __builtin_trap();
}

// What the model does with text: tokenize (with and without specials), decode, pieces.
std::vector<std::int32_t> use_tokenizer(const qinfer::text::tokenizer& tok) {
    std::vector<std::int32_t> ids;
    for (const char* text : {"Hello world", "<|im_start|>user\nhello<|im_end|>", " a\n\xC3\xA9!", ""}) {
        try {
            const auto a = tok.encode(text, true, true);
            const auto b = tok.encode(text, false, false);
            for (const std::int32_t id : a)
                if (id < 0 || std::size_t(id) >= tok.size()) finding("encode gave an id outside the vocabulary");
            (void)tok.decode(a, true, true);
            (void)tok.decode_continuation(b);
            if (ids.empty()) ids = a;
        } catch (const qinfer::error&) {
        }
    }
    for (std::size_t id = 0; id < tok.size() && id < 64; ++id) (void)tok.token_to_piece(std::int32_t(id), true);
    return ids;
}

void use_chat_template(const qinfer::text::vocab& v) {
    const qinfer::text::chat_message chat[] = {{"system", "be brief"}, {"user", "hi"}, {"assistant", "hello"}, {"user", "and?"}};
    try {
        const auto t = qinfer::text::detect_chat_template(v.chat_template);
        if (t.known()) (void)qinfer::text::apply_chat_template(t, chat, true);
    } catch (const qinfer::error&) {
    }
}

void evaluate(const std::shared_ptr<const qinfer::model>& m, std::vector<std::int32_t> ids) {
    static qinfer::thread_pool pool(1);
    const qinfer::model_config& c = m->config();
    if (ids.size() > 3) ids.resize(3);
    if (ids.empty()) ids.push_back(0);
    qinfer::session s(m, {.n_ctx = 8, .pool = &pool});
    const auto logits = s.eval(ids);
    if (std::int64_t(logits.size()) != c.n_vocab) finding("eval returned the wrong number of logits");
    std::int32_t best = 0;
    for (std::size_t i = 0; i < logits.size(); ++i)
        if (logits[i] > logits[std::size_t(best)]) best = std::int32_t(i);
    (void)s.eval_all(std::span<const std::int32_t>(&best, 1));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
    try {
        auto m = std::make_shared<const qinfer::model>(qinfer::gguf::reader::from_memory(bytes, "fuzz-input"));
        const std::vector<std::int32_t> ids = use_tokenizer(m->tokenizer());
        use_chat_template(m->tokenizer().vocab());
        evaluate(m, ids);
    } catch (const qinfer::error&) {
        return 0;  // rejected cleanly
    } catch (const std::exception& e) {
        finding("an exception other than qinfer::error:", e.what());
    }
    return 0;
}
