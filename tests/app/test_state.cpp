// Saved and shared state, and context shift (issue 16, parts 2 and 3), on stories260K: a
// state file resumes a session bit for bit and refuses every damaged or foreign file; a
// copied prefix gives the logits of evaluating it; the prefix cache spares chat sessions
// their system prompt; a context shift gives llama.cpp's next-token distributions after
// its own shift of the same cells, and re-rotated keys equal to a fresh evaluation's.
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <qinfer/app/generate.hpp>
#include <qinfer/app/state.hpp>
#include <qinfer/app/chat_session.hpp>

#include "app/support.hpp"
#include "model/chatml_stories.hpp"
#include "model/reference.hpp"

namespace {

using namespace apptest;

std::vector<char> read_all(const fs::path& p) {
    std::ifstream in(p, std::ios::binary);
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const fs::path& p, const std::vector<char>& bytes) {
    std::ofstream(p, std::ios::binary | std::ios::trunc).write(bytes.data(), std::streamsize(bytes.size()));
}

// Re-seals an edited state file: the FNV-1a hash of everything before the last 8 bytes,
// written out here from the format's definition, so edits reach the checks past the checksum.
void reseal(std::vector<char>& f) {
    std::uint64_t h = 0xcbf29ce484222325ull;
    for (std::size_t i = 0; i + 8 < f.size(); ++i) h = (h ^ static_cast<unsigned char>(f[i])) * 0x100000001b3ull;
    std::memcpy(f.data() + f.size() - 8, &h, 8);
}

// Byte offsets in a version-1 state file (qinfer/app/state.hpp).
constexpr std::size_t off_n_tokens = 8 + 4 + 4 + 8 + 4 + 4 + 8 + 8 + 8, off_tokens = off_n_tokens + 8;

std::vector<float> copy(std::span<const float> s) { return {s.begin(), s.end()}; }

}  // namespace

TEST_CASE("app state: save and load resume a session bit for bit, sampler included") {
    if (!have_stories()) return;
    auto m = load();
    const std::int64_t nv = m->config().n_vocab;
    const auto toks = tokens_of(40, nv);
    const fs::path dir = "app-state";
    fs::create_directories(dir);
    const fs::path file = dir / "s.qstate";

    qinfer::session a(m, {.n_ctx = 128, .n_threads = 2});
    const auto la = copy(a.eval(std::span(toks).first(30)));
    qinfer::sampler_params sp;
    sp.seed = 1234;
    qinfer::sampler_chain sa = qinfer::sampler_chain::from_params(sp);
    for (int i = 0; i < 3; ++i) sa.accept(sa.sample(la));  // the engine has moved on from its seed
    qinfer::save_state(a, file, &sa);

    qinfer::session b(m, {.n_ctx = 64, .n_threads = 1});
    b.eval(std::span(toks).first(5));  // whatever b held is replaced
    qinfer::sampler_chain sb = qinfer::sampler_chain::from_params(sp);
    qinfer::load_state(b, file, &sb);
    CHECK(b.n_past() == 30);
    CHECK(std::equal(b.tokens().begin(), b.tokens().end(), toks.begin()));
    REQUIRE(b.logits().size() == std::size_t(nv));
    CHECK(max_diff(b.logits(), la) == 0);
    // The same next draws, and the same logits for the rest of the tokens.
    for (int i = 0; i < 5; ++i) CHECK(sa.sample(la) == sb.sample(la));
    CHECK(max_diff(a.eval(std::span(toks).subspan(30)), b.eval(std::span(toks).subspan(30))) == 0);

    // Into an f32 cache: the f16 rows convert exactly, so the restored logits are the same.
    qinfer::session c(m, {.n_ctx = 64, .n_threads = 2, .cache_type = qinfer::kv_type::f32});
    qinfer::load_state(c, file);
    CHECK(max_diff(c.logits(), la) == 0);
    CHECK(c.n_past() == 30);
}

TEST_CASE("app state: damaged, truncated and foreign state files give clear errors and change nothing") {
    if (!have_stories()) return;
    auto m = load();
    const std::int64_t nv = m->config().n_vocab;
    const auto toks = tokens_of(20, nv);
    const fs::path dir = "app-state";
    fs::create_directories(dir);
    const fs::path good = dir / "good.qstate", bad = dir / "bad.qstate";
    qinfer::session a(m, {.n_ctx = 64, .n_threads = 2});
    a.eval(toks);
    qinfer::save_state(a, good);
    const std::vector<char> bytes = read_all(good);
    REQUIRE(bytes.size() > off_tokens + 20 * 4 + 8);

    qinfer::session s(m, {.n_ctx = 64, .n_threads = 2});
    const auto before = copy(s.eval(std::span(toks).first(7)));
    const auto unchanged = [&] {
        return s.n_past() == 7 && std::equal(s.tokens().begin(), s.tokens().end(), toks.begin()) && max_diff(s.logits(), before) == 0;
    };
    // Every truncation, every few bytes, and each byte of the header flipped.
    int refused = 0, tried = 0;
    for (std::size_t n = 0; n < bytes.size(); n += n < 256 ? 1 : 97) {
        write_all(bad, std::vector<char>(bytes.begin(), bytes.begin() + std::ptrdiff_t(n)));
        ++tried;
        refused += code_of([&] { qinfer::load_state(s, bad); }) == qinfer::errc::format;
    }
    for (std::size_t i = 0; i < off_tokens + 16; ++i) {
        std::vector<char> f = bytes;
        f[i] ^= 0x40;
        write_all(bad, f);
        ++tried;
        const qinfer::errc e = code_of([&] { qinfer::load_state(s, bad); });
        refused += e == qinfer::errc::format || e == qinfer::errc::invalid_argument;  // a changed fingerprint
    }
    CHECK(refused == tried);
    CHECK(unchanged());

    // Sealed edits that pass the checksum: a token outside the vocabulary, a huge token count,
    // trailing bytes; another model's file; more tokens than the session's context.
    std::vector<char> f = bytes;
    const std::int32_t oov = std::int32_t(nv);
    std::memcpy(f.data() + off_tokens + 4, &oov, 4);
    reseal(f);
    write_all(bad, f);
    CHECK(code_of([&] { qinfer::load_state(s, bad); }) == qinfer::errc::invalid_argument);
    f = bytes;
    const std::int64_t huge = std::int64_t(1) << 60;
    std::memcpy(f.data() + off_n_tokens, &huge, 8);
    reseal(f);
    write_all(bad, f);
    CHECK(code_of([&] { qinfer::load_state(s, bad); }) == qinfer::errc::invalid_argument);
    qinfer::session wide(m, {.n_ctx = 1 << 14, .n_threads = 1, .cache_type = qinfer::kv_type::f32});
    const std::int64_t long_count = 1 << 13;  // fits n_ctx, not the file
    std::memcpy(f.data() + off_n_tokens, &long_count, 8);
    reseal(f);
    write_all(bad, f);
    CHECK(code_of([&] { qinfer::load_state(wide, bad); }) == qinfer::errc::format);
    f = bytes;
    f.insert(f.end() - 8, 'x');
    reseal(f);
    write_all(bad, f);
    CHECK(code_of([&] { qinfer::load_state(s, bad); }) == qinfer::errc::format);
    qinfer::session tiny(m, {.n_ctx = 10, .n_threads = 1});
    CHECK(code_of([&] { qinfer::load_state(tiny, good); }) == qinfer::errc::invalid_argument);
    CHECK(code_of([&] { qinfer::load_state(s, dir / "missing.qstate"); }) == qinfer::errc::io);

    const std::string other = (dir / "stories260K-chatml.gguf").string();
    mtest::write_chatml_stories(stories, other);
    auto m2 = std::make_shared<const qinfer::model>(other);
    CHECK(m2->fingerprint() != m->fingerprint());
    qinfer::session s2(m2, {.n_ctx = 64, .n_threads = 1});
    CHECK(code_of([&] { qinfer::load_state(s2, good); }) == qinfer::errc::invalid_argument);
    CHECK(code_of([&] { s2.copy_prefix(a, 5); }) == qinfer::errc::invalid_argument);
    CHECK(unchanged());
    qinfer::load_state(s, good);  // and the good file still loads
    CHECK(s.n_past() == 20);
}

TEST_CASE("app state: a copied prefix gives the logits of evaluating it; the prefix cache spares a chat its system prompt") {
    if (!have_stories()) return;
    auto m = load();
    const auto toks = tokens_of(48, m->config().n_vocab);
    qinfer::session a(m, {.n_ctx = 128, .n_threads = 2});
    const auto whole = copy(a.eval(toks));
    qinfer::session b(m, {.n_ctx = 96, .n_threads = 2});
    b.copy_prefix(a, 20);
    CHECK(b.n_past() == 20);
    CHECK(b.logits().empty());  // a's logits are for position 48
    CHECK(max_diff(b.eval(std::span(toks).subspan(20)), whole) == 0);
    qinfer::session c(m, {.n_ctx = 96, .n_threads = 2});
    c.copy_prefix(a, 48);
    CHECK(max_diff(c.logits(), whole) == 0);
    CHECK(code_of([&] { c.copy_prefix(a, 49); }) == qinfer::errc::invalid_argument);
    qinfer::session small(m, {.n_ctx = 16, .n_threads = 1});
    CHECK(code_of([&] { small.copy_prefix(a, 20); }) == qinfer::errc::invalid_argument);
    CHECK(small.n_past() == 0);

    // Two chats with one system prompt: the second copies it from the cache, and both give
    // the tokens of a chat without a cache.
    const fs::path dir = "app-state";
    fs::create_directories(dir);
    const std::string file = (dir / "stories260K-chatml.gguf").string();
    mtest::write_chatml_stories(stories, file);
    auto cm = std::make_shared<const qinfer::model>(file);
    const std::string system = "You tell stories about a little girl named Lily who loves to play in the park with her dog.";
    qinfer::generate_options g;
    g.sampling.temperature = 0;
    g.max_tokens = 12;
    qinfer::session plain_s(cm, {.n_ctx = 256, .n_threads = 2});
    qinfer::chat_session plain(plain_s, qinfer::chat_session::template_of(*cm));
    plain.set_system(system);
    const auto want = plain.reply("Tell me about a cat.", g);
    const std::size_t full_prompt = plain.last_prompt_evaluated();

    auto cache = std::make_shared<qinfer::prefix_cache>();
    qinfer::session s1(cm, {.n_ctx = 256, .n_threads = 2}), s2(cm, {.n_ctx = 256, .n_threads = 2});
    qinfer::chat_session c1(s1, qinfer::chat_session::template_of(*cm)), c2(s2, qinfer::chat_session::template_of(*cm));
    c1.set_prefix_cache(cache);
    c2.set_prefix_cache(cache);
    c1.set_system(system);
    c2.set_system(system);
    const auto r1 = c1.reply("Tell me about a cat.", g);
    CHECK(c1.last_prompt_evaluated() == full_prompt);
    CHECK(cache->size() == 1);
    const auto r2 = c2.reply("Tell me about a cat.", g);
    const std::vector<qinfer::text::chat_message> system_only = {{"system", system}};
    const std::size_t system_tokens =
        c2.tokenize(qinfer::text::apply_chat_template(qinfer::chat_session::template_of(*cm), system_only, false)).size();
    MESSAGE("prompt of " << full_prompt << " tokens: the second chat evaluated " << c2.last_prompt_evaluated());
    CHECK(system_tokens > 20);
    CHECK(c2.last_prompt_evaluated() == full_prompt - system_tokens);
    CHECK(r1.tokens == want.tokens);
    CHECK(r2.tokens == want.tokens);
    CHECK(std::equal(c2.evaluated().begin(), c2.evaluated().end(), s2.tokens().begin(), s2.tokens().end()));
}

TEST_CASE("app shift: after a context shift the next-token distributions are llama.cpp's after its own shift") {
    if (!have_stories()) return;
    auto m = load();
    const std::int64_t nv = m->config().n_vocab;
    const auto all = tokens_of(130, nv);
    const std::vector<std::int32_t> prompt(all.begin(), all.begin() + 100), then(all.begin() + 100, all.end());
    constexpr int keep = 10, discard = 40;
    mtest::ref_case rc{"shift", "", prompt, false, 0};
    rc.shift_keep = keep;
    rc.shift_discard = discard;
    rc.then = then;
    if (!mtest::node_oracle_available()) return;
    const mtest::ref_result ref = mtest::run_reference(stories, {rc}, nv, "app-ref/shift")[0];
    REQUIRE(ref.positions() == std::int64_t(then.size()));

    qinfer::session s(m, {.n_ctx = 256, .n_threads = 2});
    s.eval(prompt);
    s.shift(keep, discard);
    CHECK(s.n_past() == 100 - discard);
    CHECK(s.logits().empty());
    CHECK(std::equal(s.tokens().begin(), s.tokens().begin() + keep, prompt.begin()));
    CHECK(std::equal(s.tokens().begin() + keep, s.tokens().end(), prompt.begin() + keep + discard));
    const auto from_llama = [&](std::span<const float> logits) {
        double max_abs = 0;
        std::vector<double> p;
        for (std::int64_t pos = 0; pos < ref.positions(); ++pos) {
            mtest::softmax(logits.data() + pos * nv, nv, p);
            for (std::int64_t i = 0; i < nv; ++i)
                max_abs = std::max(max_abs, std::fabs(p[std::size_t(i)] - double(ref.probs[std::size_t(pos * nv + i)])));
        }
        return max_abs;
    };
    const double shifted_diff = from_llama(s.eval_all(then));
    // The kept tokens evaluated afresh (what a shift approximates): far from llama.cpp's
    // shifted answer, so agreeing with it says the shift itself is llama.cpp's.
    std::vector<std::int32_t> kept(prompt.begin(), prompt.begin() + keep);
    kept.insert(kept.end(), prompt.begin() + keep + discard, prompt.end());
    qinfer::session fresh(m, {.n_ctx = 256, .n_threads = 2});
    fresh.eval(kept);
    const double fresh_diff = from_llama(fresh.eval_all(then));
    MESSAGE("after a shift of " << discard << " tokens, max |p_qinfer - p_llama| over " << then.size() << " positions: "
                                << shifted_diff << " (a fresh evaluation of the kept tokens: " << fresh_diff << ")");
    CHECK(shifted_diff < 2e-3);  // the F32 stories260K tolerance of the conformance rows
    CHECK(fresh_diff > 10 * 2e-3);

    // The re-rotated keys against a fresh evaluation of the kept tokens: layer 0's keys depend
    // on the token and its position alone, so they must agree to the f16 rounding of the two
    // rotations (half an ulp each, and the angles' float error); later layers saw the dropped
    // tokens and differ.
    qinfer::session shifted(m, {.n_ctx = 256, .n_threads = 2});
    fresh.truncate(std::int64_t(kept.size()));
    shifted.eval(prompt);
    shifted.shift(keep, discard);
    const auto sf = fresh.snapshot(), ss = shifted.snapshot();
    REQUIRE(sf.keys.size() == ss.keys.size());
    const std::size_t layer0 = kept.size() * std::size_t(sf.kv_width);
    // The error of a rotation is relative to the pair it turns (llama's adjacent pairs): ulps of
    // the larger of the two.
    double worst_ulps = 0;
    const auto key = [](const qinfer::session_snapshot& sn, std::size_t i) {
        qinfer::fp16 h;
        std::memcpy(&h, sn.keys.data() + 2 * i, 2);
        return qinfer::to_float(h);
    };
    for (std::size_t i = 0; i < layer0; i += 2) {
        const float mag = std::max({std::fabs(key(sf, i)), std::fabs(key(sf, i + 1)), 6.1e-5f});
        const float ulp = std::ldexp(1.0f, std::ilogb(mag) - 10);
        for (std::size_t j = i; j < i + 2; ++j)
            worst_ulps = std::max(worst_ulps, double(std::fabs(key(sf, j) - key(ss, j)) / ulp));
    }
    MESSAGE("layer-0 keys after the shift vs a fresh evaluation: " << worst_ulps << " f16 ulps at most");
    CHECK(worst_ulps <= 2.0);
    CHECK(std::memcmp(sf.values.data(), ss.values.data(), layer0 * 2) == 0);  // values are not rotated
    CHECK(code_of([&] { shifted.shift(50, 11); }) == qinfer::errc::invalid_argument);
}

TEST_CASE("app shift: generate() with context_shift_keep goes past a full context") {
    if (!have_stories()) return;
    auto m = load();
    qinfer::session s(m, {.n_ctx = 24, .n_threads = 2});
    qinfer::generate_options g;
    g.sampling.temperature = 0;
    g.max_tokens = 60;
    g.context_shift_keep = 4;
    const auto r = qinfer::generate(s, "Once upon a time", g);
    REQUIRE(r.stop_reason == qinfer::stop_reason::max_tokens);  // greedy: no end of text within 60 tokens
    CHECK(r.tokens.size() == 60);
    CHECK(r.tokens_discarded >= 60 + std::int64_t(r.prompt_tokens.size()) - 24);
    CHECK(s.n_past() == std::int64_t(r.prompt_tokens.size() + r.tokens.size()) - r.tokens_discarded);
    CHECK(std::equal(s.tokens().begin(), s.tokens().begin() + 4, r.prompt_tokens.begin()));
    const std::size_t tail = std::size_t(s.n_past() - 4);
    CHECK(std::equal(s.tokens().end() - std::ptrdiff_t(tail), s.tokens().end(), r.tokens.end() - std::ptrdiff_t(tail)));
    // Without it, the same generation stops at the full context.
    qinfer::session t(m, {.n_ctx = 24, .n_threads = 2});
    g.context_shift_keep = -1;
    const auto r2 = qinfer::generate(t, "Once upon a time", g);
    CHECK(r2.stop_reason == qinfer::stop_reason::context_full);
    CHECK(std::equal(r2.tokens.begin(), r2.tokens.end(), r.tokens.begin()));  // the same tokens up to the first shift
}
