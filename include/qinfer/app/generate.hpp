// qinfer/app/generate.hpp — text in, streamed text out: tokenize, evaluate the prompt, then
// sample token by token until an end-of-generation token, a stop string, the token budget,
// the callback, a full context or cancellation.
//
// The context afterwards: every token generate() returns has been evaluated, so when it
// returns the session holds what it held before, the prompt tokens and exactly the returned
// tokens (n_past grows by prompt_tokens.size() + tokens.size()), whatever the stop reason, and
// a next generate() continues from there — less the tokens_discarded of context shifts. Tokens that are sampled but not returned (the
// end-of-generation token, the token that found the context full) are not evaluated.
#pragma once

#include <chrono>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../model/session.hpp"
#include "../sampling/sampler.hpp"

QINFER_NAMESPACE_BEGIN

// Why generation ended.
enum class stop_reason {
    end_of_text,   // the model sampled an end-of-generation token (EOS, EOT, ...; not returned)
    max_tokens,    // max_tokens tokens were generated
    stop_string,   // the text reached one of `stop`: text ends before it, tokens include its tokens
    callback,      // on_text returned false (the tokens of the text it was given are returned)
    context_full,  // the next token did not fit the session's context (it is not returned)
    cancelled,     // the session's abort callback fired while a token was evaluated (not returned)
};

constexpr const char* to_string(stop_reason r) noexcept {
    switch (r) {
        case stop_reason::end_of_text: return "end of text";
        case stop_reason::max_tokens: return "max tokens";
        case stop_reason::stop_string: return "stop string";
        case stop_reason::callback: return "callback";
        case stop_reason::context_full: return "context full";
        case stop_reason::cancelled: return "cancelled";
    }
    return "?";
}

// Options of generate() and chat_session::reply().
struct generate_options {
    int max_tokens = 128;           // < 0: no limit (until another stop reason)
    sampler_params sampling;
    std::vector<std::string> stop;  // generation ends before the first occurrence of any
    bool add_special = true;        // generate(): BOS / EOS as the vocabulary asks (reply: the template decides)
    bool parse_special = false;     // generate(): control tokens written in the prompt become tokens
    // A full context ends generation (stop_reason::context_full) when < 0. When >= 0 it is
    // shifted as llama.cpp's n_keep does: the first n_keep tokens stay, the older half of the
    // rest is dropped (session::shift) and generation goes on.
    std::int64_t context_shift_keep = -1;
};

struct generate_result {
    std::string text;                          // what was generated (the stop string and anything after it excluded)
    std::vector<std::int32_t> prompt_tokens;   // what was evaluated before sampling (reply: the new part of the chat)
    std::vector<std::int32_t> tokens;          // the generated tokens, all of them evaluated
    std::int64_t tokens_discarded = 0;         // dropped from the context by context shifts
    qinfer::stop_reason stop_reason = qinfer::stop_reason::max_tokens;
    double prompt_seconds = 0, generate_seconds = 0;
};

using text_callback = std::function<bool(std::string_view)>;

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

// The decode loop of generate() and chat_session::reply(): samples from `logits` (the
// session's next-token logits), evaluates each token before it joins r.tokens and streams the
// text to on_text as it becomes final (whole UTF-8 characters, never part of a stop string).
// If an eval throws anything but cancellation, r holds the tokens evaluated so far.
inline void decode(session& s, sampler_chain& sampler, std::span<const float> logits, const generate_options& opt,
                   const text_callback& on_text, generate_result& r) {
    const text::tokenizer& tok = s.get_model().tokenizer();
    std::size_t emitted = 0;  // bytes of r.text already passed to on_text
    r.stop_reason = stop_reason::max_tokens;
    for (int i = 0; opt.max_tokens < 0 || i < opt.max_tokens; ++i) {
        const std::int32_t next = sampler.sample(logits);
        if (tok.vocab().is_eog(next)) { r.stop_reason = stop_reason::end_of_text; break; }
        if (s.n_past() >= s.n_ctx()) {
            const std::int64_t keep = opt.context_shift_keep, discard = (s.n_past() - keep) / 2;
            if (keep < 0 || discard < 1) { r.stop_reason = stop_reason::context_full; break; }
            s.shift(keep, discard);
            r.tokens_discarded += discard;
        }
        try {
            logits = s.eval(std::span<const std::int32_t>(&next, 1));
        } catch (const error& e) {
            if (e.code() != errc::cancelled) throw;
            r.stop_reason = stop_reason::cancelled;
            break;
        }
        sampler.accept(next);
        r.tokens.push_back(next);
        r.text = tok.decode_continuation(r.tokens);
        // Hold back anything that could still turn out to be the start of a stop string.
        std::size_t safe = complete_utf8(r.text);
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
        if (safe > emitted && on_text && !on_text(std::string_view(r.text).substr(emitted, safe - emitted))) {
            emitted = safe;
            r.stop_reason = stop_reason::callback;
            break;
        }
        emitted = std::max(emitted, safe);
        if (stopped) { r.stop_reason = stop_reason::stop_string; break; }
    }
    if (emitted < r.text.size() && on_text && r.stop_reason != stop_reason::callback)
        on_text(std::string_view(r.text).substr(emitted));
}
}  // namespace detail

// Continues the session's context with `prompt` and generates. `on_text` receives the new
// text as it becomes final (whole UTF-8 characters, never part of a stop string); returning
// false stops generation. Throws qinfer::error when the prompt cannot be evaluated: empty
// (errc::invalid_argument) or too long for the context (errc::context_full), both leaving
// the session as it was, or cancelled while the prompt is evaluated (errc::cancelled, the
// session keeps the prompt's complete batches). Cancellation during sampling is not an
// error: it returns with stop_reason::cancelled.
inline generate_result generate(session& s, std::string_view prompt, const generate_options& opt,
                                const text_callback& on_text = {}) {
    using clock = std::chrono::steady_clock;
    const text::tokenizer& tok = s.get_model().tokenizer();
    generate_result r;
    r.prompt_tokens = tok.encode(prompt, opt.add_special && s.n_past() == 0, opt.parse_special);
    if (r.prompt_tokens.empty())
        throw error("qinfer: the prompt is empty (no tokens to evaluate)", errc::invalid_argument);
    sampler_chain sampler = sampler_chain::from_params(opt.sampling);
    for (std::int32_t t : r.prompt_tokens) sampler.accept(t);

    auto t0 = clock::now();
    const std::span<const float> logits = s.eval(r.prompt_tokens);
    r.prompt_seconds = std::chrono::duration<double>(clock::now() - t0).count();
    t0 = clock::now();
    detail::decode(s, sampler, logits, opt, on_text, r);
    r.generate_seconds = std::chrono::duration<double>(clock::now() - t0).count();
    return r;
}

QINFER_NAMESPACE_END
