// qinfer/text/chat_session.hpp — a multi-turn chat over one session, formatted with the
// model's chat template, evaluating only what is new each turn.
//
// Each turn the whole conversation is formatted again (the template decides everything, as
// llama.cpp's chat does) and tokenized; the tokens the session already holds are compared
// with that stream and only the part after the common prefix is evaluated. When the stream
// differs from what was evaluated (a template that rewrites earlier turns, or a reply whose
// text tokenizes differently from the tokens that were sampled), the session is truncated to
// the common prefix first, so the context always equals the tokenized conversation.
//
//   qinfer::chat_session chat(session, qinfer::chat_session::template_of(model));
//   chat.set_system("You are terse.");
//   chat.reply("hello", {}, [](std::string_view t) { std::cout << t; return true; });
//
// reply() takes generate()'s options (stop strings included) and runs the same decode loop,
// so the same holds: every returned token has been evaluated, and after a reply the context
// holds the conversation up to the assistant header plus exactly the reply's tokens.
#pragma once

#include <chrono>
#include <functional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../core/config.hpp"
#include "../core/error.hpp"
#include "../generate.hpp"
#include "../model/prefix_cache.hpp"
#include "../model/session.hpp"
#include "../sampling/sampler.hpp"
#include "chat_template.hpp"

QINFER_NAMESPACE_BEGIN

// Length of the common prefix of two token streams.
inline std::size_t common_prefix(std::span<const std::int32_t> a, std::span<const std::int32_t> b) {
    std::size_t n = 0;
    while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
    return n;
}

class chat_session {
public:
    chat_session(session& s, text::chat_template tmpl) : s_(s), tmpl_(tmpl) {
        if (!tmpl_.known()) throw error("chat_session: unknown chat template", errc::unsupported);
        s_.reset();
    }

    // The model's template (key tokenizer.chat_template); throws naming the file and the key
    // when there is none or it is not one of the known families.
    static text::chat_template template_of(const model& m) {
        const auto src = m.file().get<std::string_view>("tokenizer.chat_template");
        if (!src)
            throw error(m.file().path() + ": the model has no chat template (key tokenizer.chat_template)", errc::unsupported);
        const text::chat_template t = text::detect_chat_template(*src);
        if (!t.known())
            throw error(m.file().path() + ": the chat template in key tokenizer.chat_template is not one of the known families "
                        "(chatml, llama2, llama3, mistral, phi3, gemma, ...): " + std::string(src->substr(0, 120)) +
                            (src->size() > 120 ? "..." : ""),
                        errc::unsupported);
        return t;
    }

    // The system message (applies from the next reset or before the first turn).
    void set_system(std::string text) {
        system_ = std::move(text);
        if (messages_.empty() || (messages_.size() == 1 && messages_[0].role == "system")) reset();
    }

    // Forgets the conversation (keeps the system message).
    void reset() {
        messages_.clear();
        if (!system_.empty()) messages_.push_back({"system", system_});
        evaluated_.clear();
        s_.reset();
    }

    // Shares evaluated system prompts with other chats of the same model: a conversation whose
    // start is cached is copied from the cache instead of evaluated, and the first chat to
    // evaluate a system prompt adds it (null: off).
    void set_prefix_cache(std::shared_ptr<prefix_cache> cache) { cache_ = std::move(cache); }

    const std::vector<text::chat_message>& messages() const noexcept { return messages_; }
    // The tokens the session's context holds, in order.
    const std::vector<std::int32_t>& evaluated() const noexcept { return evaluated_; }
    // How many tokens the last prompt() evaluated (the rest was reused from the context).
    std::size_t last_prompt_evaluated() const noexcept { return last_new_; }
    // The whole conversation formatted, with the assistant header when asked.
    std::string formatted(bool add_assistant_prompt) const {
        return text::apply_chat_template(tmpl_, messages_, add_assistant_prompt);
    }
    // Tokens of a formatted conversation: BOS as the vocabulary asks, control tokens parsed.
    std::vector<std::int32_t> tokenize(std::string_view formatted_text) const {
        return s_.get_model().tokenizer().encode(formatted_text, true, true);
    }

    // Adds a user message and evaluates the new part of the formatted conversation (up to the
    // assistant header). Returns the next-token logits. When it throws, the user message is
    // not added and evaluated() still equals what the session holds (after a cancellation,
    // the complete batches of the new part; see session::set_abort).
    std::span<const float> prompt(std::string user_text) {
        messages_.push_back({"user", std::move(user_text)});
        std::vector<std::int32_t> want;
        try {
            want = tokenize(formatted(true));
        } catch (...) {
            messages_.pop_back();
            throw;
        }
        if (want.empty()) {
            messages_.pop_back();
            throw error("chat_session: the formatted conversation is empty", errc::invalid_argument);
        }
        if (std::int64_t(want.size()) > s_.n_ctx()) {
            messages_.pop_back();
            throw error("chat_session: the conversation (" + std::to_string(want.size()) + " tokens) no longer fits the context of " +
                            std::to_string(s_.n_ctx()) + " tokens (reset the chat, or use a session with a larger n_ctx)",
                        errc::context_full);
        }
        std::size_t keep = common_prefix(evaluated_, want);
        if (keep == want.size()) --keep;  // re-evaluate the last token to get its logits
        if (cache_) {
            auto [snap, n] = cache_->longest_match(s_.get_model(), want);
            n = std::min(n, want.size() - 1);
            if (n > keep) try {
                s_.restore(*snap, std::int64_t(n));  // checked first: on failure nothing changed
                evaluated_.assign(want.begin(), want.begin() + std::ptrdiff_t(n));
                keep = n;
            } catch (const error&) {
                // a snapshot this session cannot take (another n_ctx regime): evaluate instead
            }
        }
        s_.truncate(std::int64_t(keep));
        evaluated_.resize(keep);
        const std::span<const std::int32_t> fresh(want.data() + keep, want.size() - keep);
        last_new_ = fresh.size();
        try {
            const std::span<const float> logits = s_.eval(fresh);
            evaluated_.insert(evaluated_.end(), fresh.begin(), fresh.end());
            if (cache_ && !system_.empty()) cache_system_prompt(want);
            return logits;
        } catch (...) {
            evaluated_.assign(want.begin(), want.begin() + std::ptrdiff_t(s_.n_past()));
            messages_.pop_back();
            throw;
        }
    }

    // prompt(user_text), then samples the reply as generate() does (same options, stop
    // reasons and streaming; opt.add_special and opt.parse_special do not apply: the template
    // decides). The reply's text (up to a stop string) becomes the assistant's message;
    // prompt_tokens are the tokens this turn evaluated before sampling.
    generate_result reply(std::string user_text, const generate_options& opt, const text_callback& on_text = {}) {
        using clock = std::chrono::steady_clock;
        auto t0 = clock::now();
        const std::span<const float> logits = prompt(std::move(user_text));
        generate_result r;
        r.prompt_tokens.assign(evaluated_.end() - std::ptrdiff_t(last_new_), evaluated_.end());
        r.prompt_seconds = std::chrono::duration<double>(clock::now() - t0).count();
        sampler_chain sampler = sampler_chain::from_params(opt.sampling);
        for (std::int32_t t : evaluated_) sampler.accept(t);
        t0 = clock::now();
        try {
            detail::decode(s_, sampler, logits, opt, on_text, r);
        } catch (...) {  // the turn failed: drop it, keep evaluated() equal to the context
            evaluated_.assign(s_.tokens().begin(), s_.tokens().end());
            messages_.pop_back();
            throw;
        }
        r.generate_seconds = std::chrono::duration<double>(clock::now() - t0).count();
        // The context, which a context shift (opt.context_shift_keep) may have cut.
        evaluated_.assign(s_.tokens().begin(), s_.tokens().end());
        messages_.push_back({"assistant", r.text});
        return r;
    }

private:
    // Adds the tokens the system message accounts for (where the formatted system message
    // alone and the conversation agree) to the prefix cache.
    void cache_system_prompt(const std::vector<std::int32_t>& conversation) {
        const std::vector<std::int32_t> sys = tokenize(text::apply_chat_template(tmpl_, std::vector<text::chat_message>{{"system", system_}}, false));
        const std::size_t n = common_prefix(sys, conversation);
        if (n > 0 && n <= evaluated_.size()) cache_->add(s_, std::int64_t(n));
    }

    session& s_;
    text::chat_template tmpl_;
    std::string system_;
    std::vector<text::chat_message> messages_;
    std::vector<std::int32_t> evaluated_;
    std::size_t last_new_ = 0;
    std::shared_ptr<prefix_cache> cache_;
};

QINFER_NAMESPACE_END
