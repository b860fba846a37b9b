// tests/model/chatml_stories.hpp — stories260K turned into a chat model for the chat tests.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include <doctest/doctest.h>
#include <qinfer/gguf/reader.hpp>
#include <qinfer/gguf/writer.hpp>

namespace mtest {

// stories260K plus two control tokens <|im_start|> and <|im_end|> (embedding and output rows
// copied from BOS and EOS, so the model ends a reply where it would end a story) and a
// chatml template.
inline const char* const chatml_jinja =
    "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

inline void write_chatml_stories(const std::string& src, const std::string& dst, std::string_view chat_template = chatml_jinja) {
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

}  // namespace mtest
