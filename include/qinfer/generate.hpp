// qinfer/generate.hpp — text in, streamed text out: tokenize, evaluate the prompt as one
// batch, then sample token by token until EOS, a stop string or the token budget.
#pragma once

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "model/session.hpp"
#include "sampling/sampler.hpp"

QINFER_NAMESPACE_BEGIN

struct generate_options {
    int max_tokens = 128;
    sampler_params sampling;
    std::vector<std::string> stop;  // generation ends before the first occurrence of any
    bool add_special = true;        // BOS / EOS as the vocabulary asks
    bool parse_special = false;     // control tokens written in the prompt become tokens (chat)
};

struct generate_result {
    std::string text;               // what was generated (stop string excluded)
    std::vector<std::int32_t> prompt_tokens, tokens;
    std::string stop_reason;        // "eos", "stop string", "max tokens"
    double prompt_seconds = 0, generate_seconds = 0;
};

namespace detail {
// Length of the longest prefix of s that does not end inside a UTF-8 sequence.
inline std::size_t complete_utf8(std::string_view s) {
    std::size_t i = s.size(), back = 0;
    while (i > 0 && back < 4 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) { --i; ++back; }
    if (i == 0) return s.size();
    const unsigned char lead = static_cast<unsigned char>(s[i - 1]);
    const std::size_t need = lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return need == back + 1 || need == 1 ? s.size() : i - 1;
}
}  // namespace detail

// Continues the session's context with `prompt` and generates. `on_text` receives the new
// text as it becomes final (whole UTF-8 characters, never part of a stop string); returning
// false stops generation.
inline generate_result generate(session& s, std::string_view prompt, const generate_options& opt,
                                const std::function<bool(std::string_view)>& on_text = {}) {
    using clock = std::chrono::steady_clock;
    const text::tokenizer& tok = s.get_model().tokenizer();
    generate_result r;
    r.prompt_tokens = tok.encode(prompt, opt.add_special && s.n_past() == 0, opt.parse_special);
    if (r.prompt_tokens.empty()) throw error("qinfer: the prompt is empty (no tokens to evaluate)");
    sampler_chain sampler = sampler_chain::from_params(opt.sampling);
    for (std::int32_t t : r.prompt_tokens) sampler.accept(t);

    auto t0 = clock::now();
    std::span<const float> logits = s.eval(r.prompt_tokens);
    r.prompt_seconds = std::chrono::duration<double>(clock::now() - t0).count();
    t0 = clock::now();

    std::size_t emitted = 0;  // bytes of r.text already passed to on_text
    r.stop_reason = "max tokens";
    for (int i = 0; i < opt.max_tokens; ++i) {
        const std::int32_t next = sampler.sample(logits);
        if (tok.vocab().is_eog(next)) { r.stop_reason = "eos"; break; }
        sampler.accept(next);
        r.tokens.push_back(next);
        r.text = tok.decode_continuation(r.tokens);
        // Hold back anything that could still turn out to be the start of a stop string.
        std::size_t safe = detail::complete_utf8(r.text);
        bool stopped = false;
        for (const std::string& st : opt.stop) {
            if (st.empty()) continue;
            if (const auto at = r.text.find(st); at != std::string::npos) {
                r.text.resize(at);
                safe = at;
                stopped = true;
            } else {
                for (std::size_t k = std::min(st.size() - 1, r.text.size()); k > 0; --k)
                    if (r.text.compare(r.text.size() - k, k, st, 0, k) == 0) { safe = std::min(safe, r.text.size() - k); break; }
            }
        }
        if (safe > emitted && on_text) {
            if (!on_text(std::string_view(r.text).substr(emitted, safe - emitted))) { emitted = safe; r.stop_reason = "callback"; break; }
        }
        emitted = std::max(emitted, safe);
        if (stopped) { r.stop_reason = "stop string"; break; }
        if (i + 1 == opt.max_tokens) break;
        logits = s.eval(std::span<const std::int32_t>(&r.tokens.back(), 1));
    }
    if (emitted < r.text.size() && on_text && r.stop_reason != "callback") on_text(std::string_view(r.text).substr(emitted));
    r.generate_seconds = std::chrono::duration<double>(clock::now() - t0).count();
    return r;
}

QINFER_NAMESPACE_END
