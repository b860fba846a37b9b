// Several threads, one model, one pool (issue 16, part 11): sessions on their own threads
// sharing a model, a thread_pool, the default executor and a prefix cache give bit for bit
// what each gives alone. CI also builds this file alone with ThreadSanitizer (.ci/run).
#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <doctest/doctest.h>
#include <qinfer/app/chat_session.hpp>
#include <qinfer/model/prefix_cache.hpp>
#include <qinfer/ops/thread_pool.hpp>

#include "app/support.hpp"
#include "model/chatml_stories.hpp"

namespace {

using namespace apptest;

struct run_result {
    std::vector<std::int32_t> tokens;
    std::vector<float> logits;  // after the last token
};

// Evaluates `prompt` and 8 greedy tokens; logits of the last step.
run_result run_greedy(qinfer::session& s, const std::vector<std::int32_t>& prompt) {
    auto logits = s.eval(prompt);
    run_result r;
    for (int i = 0; i < 8; ++i) {
        r.tokens.push_back(std::int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin()));
        logits = s.eval(std::span(&r.tokens.back(), 1));
    }
    r.logits.assign(logits.begin(), logits.end());
    return r;
}

std::vector<std::int32_t> prompt_of(int which, std::int64_t n_vocab) {
    auto t = tokens_of(std::size_t(20 + 13 * which), n_vocab);
    for (auto& x : t) if (x != 1) x = std::int32_t(3 + (x + 31 * which) % (n_vocab - 3));
    return t;
}

}  // namespace

TEST_CASE("app threads: sessions on several threads sharing a model and a pool give what each gives alone") {
    if (!have_stories()) return;
    auto m = load();
    constexpr int n_seq = 4;
    std::vector<run_result> alone(n_seq);
    for (int i = 0; i < n_seq; ++i) {
        qinfer::session s(m, {.n_ctx = 128, .n_threads = 1});
        alone[std::size_t(i)] = run_greedy(s, prompt_of(i, m->config().n_vocab));
    }

    const auto together = [&](qinfer::executor* pool) {
        std::vector<run_result> got(n_seq);
        std::vector<std::thread> threads;
        for (int i = 0; i < n_seq; ++i)
            threads.emplace_back([&, i] {
                qinfer::session s(m, {.n_ctx = 128, .pool = pool});
                got[std::size_t(i)] = run_greedy(s, prompt_of(i, m->config().n_vocab));
            });
        for (auto& t : threads) t.join();
        return got;
    };
    qinfer::thread_pool pool(2);
    for (qinfer::executor* p : {static_cast<qinfer::executor*>(&pool), static_cast<qinfer::executor*>(nullptr)}) {
        const auto got = together(p);  // the given pool, then the default executor
        for (int i = 0; i < n_seq; ++i) {
            CHECK(got[std::size_t(i)].tokens == alone[std::size_t(i)].tokens);
            CHECK(got[std::size_t(i)].logits == alone[std::size_t(i)].logits);
        }
    }
    qinfer::session a(m), b(m);
    CHECK(a.n_threads() == qinfer::default_executor().concurrency());
    CHECK(b.n_threads() == a.n_threads());
}

TEST_CASE("app threads: chats on several threads share a prefix cache and one pool") {
    if (!have_stories()) return;
    const fs::path dir = "app-threads";
    fs::create_directories(dir);
    const std::string file = (dir / "stories260K-chatml.gguf").string();
    mtest::write_chatml_stories(stories, file);
    auto m = std::make_shared<const qinfer::model>(file);
    const std::string system = "You tell stories about a little girl named Lily who loves to play in the park.";
    qinfer::generate_options g;
    g.sampling.temperature = 0;
    g.max_tokens = 8;
    const std::vector<std::string> questions = {"Tell me about a cat.", "Tell me about a dog.", "Tell me about a bird."};

    // Two turns of chat i: its question, then the next chat's; the reply tokens of both.
    const auto two_turns = [&](qinfer::chat_session& chat, std::size_t i) {
        chat.set_system(system);
        std::vector<std::int32_t> t = chat.reply(questions[i], g).tokens;
        t.push_back(-1);
        const auto r2 = chat.reply(questions[(i + 1) % questions.size()], g).tokens;
        t.insert(t.end(), r2.begin(), r2.end());
        return t;
    };
    std::vector<std::vector<std::int32_t>> alone;
    for (std::size_t i = 0; i < questions.size(); ++i) {
        qinfer::chat_session chat(m, {.n_ctx = 256, .n_threads = 1});
        alone.push_back(two_turns(chat, i));
    }

    auto cache = std::make_shared<qinfer::prefix_cache>();
    qinfer::thread_pool pool(2);
    std::vector<std::vector<std::int32_t>> got(questions.size());
    std::vector<std::thread> threads;
    for (std::size_t i = 0; i < questions.size(); ++i)
        threads.emplace_back([&, i] {
            qinfer::chat_session chat(m, {.n_ctx = 256, .pool = &pool});
            chat.set_prefix_cache(cache);
            got[i] = two_turns(chat, i);
        });
    for (auto& t : threads) t.join();
    for (std::size_t i = 0; i < questions.size(); ++i) CHECK(got[i] == alone[i]);
    CHECK(cache->size() == 1);  // one system prompt, whoever added it first
}
