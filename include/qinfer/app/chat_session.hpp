// qinfer/app/chat_session.hpp — a multi-turn chat over one session, formatted with the
// model's chat template, evaluating only what is new each turn.
//
// Each turn the whole conversation is formatted again (the template decides everything, as
// llama.cpp's chat does) and tokenized; the tokens the session already holds are compared
// with that stream and only the part after the common prefix is evaluated. When the stream
// differs from what was evaluated (a template that rewrites earlier turns, or a reply whose
// text tokenizes differently from the tokens that were sampled), the session is truncated to
// the common prefix first, so the context always equals the tokenized conversation.
//
//   qinfer::chat_session chat(model);   // its own session; or (session&, template) to borrow one
//   chat.set_system("You are terse.");
//   chat.reply("hello", {}, [](std::string_view t) { std::cout << t; return true; });
//   chat.undo();                          // take the turn back, try another question
//
// reply() takes generate()'s options (stop strings included) and runs the same decode loop,
// so the same holds: every returned token has been evaluated, and after a reply the context
// holds the conversation up to the assistant header plus exactly the reply's tokens.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../core/config.hpp"
#include "../core/error.hpp"
#include "generate.hpp"
#include "../model/prefix_cache.hpp"
#include "../model/session.hpp"
#include "../sampling/sampler.hpp"
#include "../text/chat_template.hpp"

QINFER_NAMESPACE_BEGIN

// Length of the common prefix of two token streams.
inline std::size_t common_prefix(std::span<const std::int32_t> a, std::span<const std::int32_t> b) {
    std::size_t n = 0;
    while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
    return n;
}

class chat_session {
public:
    // Three ways to hold the session: borrow one the caller keeps alive, share one, or own
    // a new one of a model (formatted with the model's own template). The chat resets it.
    chat_session(session& s, text::chat_template tmpl) : s_(&s), tmpl_(tmpl) { start(); }
    chat_session(std::shared_ptr<session> s, text::chat_template tmpl) : shared_(std::move(s)), s_(shared_.get()), tmpl_(tmpl) {
        if (!s_) throw error("chat_session: the shared session is null", errc::invalid_argument);
        start();
    }
    explicit chat_session(std::shared_ptr<const model> m, session_options opt = {})
        : shared_(std::make_shared<session>(std::move(m), opt)), s_(shared_.get()), tmpl_(template_of(s_->get_model())) {
        start();
    }

    // The session the chat runs on (evaluate nothing on it directly: the chat tracks its tokens).
    session& get_session() noexcept { return *s_; }
    const session& get_session() const noexcept { return *s_; }

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
        s_->reset();
    }

    // Takes back the last turn: the last assistant message and the user message it answered
    // (or a user message prompt() added that has no reply yet). The context is cut to what
    // the remaining conversation shares with it, so the next turn evaluates only what
    // follows. Returns false, changing nothing, when there is no turn to take back.
    bool undo() {
        std::size_t n = messages_.size();
        if (n > 0 && messages_[n - 1].role == "assistant") --n;
        if (n == 0 || messages_[n - 1].role != "user") return false;
        messages_.resize(n - 1);
        cut_to_conversation();
        return true;
    }

    // Replaces the conversation with `history` (roles "system", "user" and "assistant"; a
    // system message only first, where it becomes the chat's system message). Nothing is
    // evaluated now: the next prompt() evaluates the history with its new user message,
    // reusing what the context already shares with it. Throws errc::invalid_argument,
    // changing nothing, for another role or a misplaced system message.
    void load_history(std::vector<text::chat_message> history) {
        for (std::size_t i = 0; i < history.size(); ++i) {
            const std::string& r = history[i].role;
            if (r != "user" && r != "assistant" && r != "system")
                throw error("chat_session: history message " + std::to_string(i) + " has role '" + r +
                                "' (system, user or assistant expected)",
                            errc::invalid_argument);
            if (r == "system" && i != 0)
                throw error("chat_session: history message " + std::to_string(i) + " is a system message; only the first may be",
                            errc::invalid_argument);
        }
        system_ = !history.empty() && history[0].role == "system" ? history[0].content : std::string();
        messages_ = std::move(history);
        cut_to_conversation();
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
        return s_->get_model().tokenizer().encode(formatted_text, true, true);
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
        if (std::int64_t(want.size()) > s_->n_ctx()) {
            messages_.pop_back();
            throw error("chat_session: the conversation (" + std::to_string(want.size()) + " tokens) no longer fits the context of " +
                            std::to_string(s_->n_ctx()) + " tokens (reset the chat, or use a session with a larger n_ctx)",
                        errc::context_full);
        }
        std::size_t keep = common_prefix(evaluated_, want);
        if (keep == want.size()) --keep;  // re-evaluate the last token to get its logits
        if (cache_) {
            auto [snap, n] = cache_->longest_match(s_->get_model(), want);
            n = std::min(n, want.size() - 1);
            if (n > keep) try {
                s_->restore(*snap, std::int64_t(n));  // checked first: on failure nothing changed
                evaluated_.assign(want.begin(), want.begin() + std::ptrdiff_t(n));
                keep = n;
            } catch (const error&) {
                // a snapshot this session cannot take (another n_ctx regime): evaluate instead
            }
        }
        s_->truncate(std::int64_t(keep));
        evaluated_.resize(keep);
        const std::span<const std::int32_t> fresh(want.data() + keep, want.size() - keep);
        last_new_ = fresh.size();
        try {
            const std::span<const float> logits = s_->eval(fresh);
            evaluated_.insert(evaluated_.end(), fresh.begin(), fresh.end());
            if (cache_ && !system_.empty()) cache_system_prompt(want);
            return logits;
        } catch (...) {
            evaluated_.assign(want.begin(), want.begin() + std::ptrdiff_t(s_->n_past()));
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
            detail::decode(*s_, sampler, logits, opt, on_text, r);
        } catch (...) {  // the turn failed: drop it, keep evaluated() equal to the context
            evaluated_.assign(s_->tokens().begin(), s_->tokens().end());
            messages_.pop_back();
            throw;
        }
        r.generate_seconds = std::chrono::duration<double>(clock::now() - t0).count();
        // The context, which a context shift (opt.context_shift_keep) may have cut.
        evaluated_.assign(s_->tokens().begin(), s_->tokens().end());
        messages_.push_back({"assistant", r.text});
        return r;
    }

private:
    void start() {
        if (!tmpl_.known()) throw error("chat_session: unknown chat template", errc::unsupported);
        s_->reset();
    }

    // Truncates the context to its common prefix with the conversation as it now stands.
    void cut_to_conversation() {
        const std::size_t keep = messages_.empty() ? 0 : common_prefix(evaluated_, tokenize(formatted(false)));
        s_->truncate(std::int64_t(keep));
        evaluated_.resize(keep);
    }

    // Adds the tokens the system message accounts for (where the formatted system message
    // alone and the conversation agree) to the prefix cache.
    void cache_system_prompt(const std::vector<std::int32_t>& conversation) {
        const std::vector<std::int32_t> sys = tokenize(text::apply_chat_template(tmpl_, std::vector<text::chat_message>{{"system", system_}}, false));
        const std::size_t n = common_prefix(sys, conversation);
        if (n > 0 && n <= evaluated_.size()) cache_->add(*s_, std::int64_t(n));
    }

    std::shared_ptr<session> shared_;  // null when the session is borrowed
    session* s_;
    text::chat_template tmpl_;
    std::string system_;
    std::vector<text::chat_message> messages_;
    std::vector<std::int32_t> evaluated_;
    std::size_t last_new_ = 0;
    std::shared_ptr<prefix_cache> cache_;
};

QINFER_NAMESPACE_END
