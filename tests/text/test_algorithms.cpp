// The algorithms on small hand-built vocabularies, where the expected ids follow from the
// definitions by hand: SPM merges the best-scoring pair first (leftmost on ties) and spells
// unknown characters as byte tokens; BPE merges the lowest-ranked pair first; special tokens
// are cut out before either runs. Plus the errors the text layer reports.
#include "text/support.hpp"

#include <qinfer/gguf/writer.hpp>

#include <unistd.h>

using namespace ttest;
using text::vocab;

namespace {

// ids: 0 <unk>, 1 <s>, 2 </s>, then the given pieces with their scores.
vocab spm_vocab(std::vector<std::pair<std::string, float>> pieces) {
    vocab v;
    v.kind = text::vocab_kind::spm;
    v.tokens = {"<unk>", "<s>", "</s>"};
    v.scores = {0, 0, 0};
    v.attrs = {text::attr_unknown, text::attr_control, text::attr_control};
    for (auto& [t, s] : pieces) {
        const bool byte = t.size() == 6 && t.starts_with("<0x");
        v.tokens.push_back(t);
        v.scores.push_back(s);
        v.attrs.push_back(byte ? text::attr_byte : text::attr_normal);
    }
    v.bos = 1;
    v.eos = 2;
    v.unk = 0;
    v.add_bos = true;
    v.add_space_prefix = true;
    return v;
}

const std::string sp = "\xE2\x96\x81";  // U+2581, SentencePiece's space

}  // namespace

TEST_CASE("SPM: the highest-scoring pair merges first") {
    // " ab" -> [▁][a][b]. With ▁a scored higher, ▁a forms and b is left alone; with ab scored
    // higher, ab forms and ▁ is left alone (no ▁ab token either way).
    {
        const text::tokenizer t(spm_vocab({{sp, -5}, {"a", -5}, {"b", -5}, {sp + "a", -1}, {"ab", -2}}));
        CHECK(t.encode("ab", false) == std::vector<std::int32_t>{6, 5});  // ▁a b
        CHECK(t.encode("ab", true) == std::vector<std::int32_t>{1, 6, 5});
        // llama.cpp strips the space encode() added only from the very first piece: here that
        // is the (empty) <s>, and a bos dropped by remove_special turns the stripping off.
        CHECK(t.decode({1, 6, 5}) == " ab");
        CHECK(t.decode({1, 6, 5}, true) == " ab");
        CHECK(t.decode({6, 5}) == "ab");
    }
    {
        const text::tokenizer t(spm_vocab({{sp, -5}, {"a", -5}, {"b", -5}, {sp + "a", -2}, {"ab", -1}}));
        CHECK(t.encode("ab", false) == std::vector<std::int32_t>{3, 7});  // ▁ ab
    }
}

TEST_CASE("SPM: equal scores merge leftmost first; unknown characters become byte tokens") {
    const text::tokenizer t(spm_vocab({{sp, 0}, {"a", 0}, {"aa", 0}, {"<0x63>", 0}}));
    // "aaa" -> ▁ a a a; ▁a is no token, so (a,a) at the left merges first: ▁ aa a
    CHECK(t.encode("aaa", false) == std::vector<std::int32_t>{3, 5, 4});
    // 'c' is not a token: its byte token <0x63> stands in
    CHECK(t.encode("ac", false) == std::vector<std::int32_t>{3, 4, 6});
    CHECK(t.decode({3, 4, 6}) == "ac");  // the leading space added by encode is removed
    // ... but not from text that continues a prompt (generated tokens): " ac" follows it
    const std::vector<std::int32_t> continuation{3, 4, 6};
    CHECK(t.decode_continuation(continuation) == " ac");
    // 'é' has neither a token nor byte tokens
    CHECK_THROWS_WITH_AS(t.encode("\xC3\xA9", false), doctest::Contains("<0xC3>"), qinfer::error);
}

TEST_CASE("special tokens are cut out first: control ones only with parse_special") {
    vocab v = spm_vocab({{sp, 0}, {"<", 0}, {"s", 0}, {">", 0}, {"x", 0}, {"<ud>", 0}});
    v.attrs[8] = text::attr_user_defined;  // "<ud>"
    const text::tokenizer t(std::move(v));
    // "<s>" is control: spelled out as text unless parse_special
    CHECK(t.encode("<s>", false, false) == std::vector<std::int32_t>{3, 4, 5, 6});
    CHECK(t.encode("<s>", false, true) == std::vector<std::int32_t>{1});
    // user-defined tokens are always cut out; the text after a special token gets the space prefix
    CHECK(t.encode("x<ud>x", false, false) == std::vector<std::int32_t>{3, 7, 8, 3, 7});
    CHECK(t.decode({1, 7}, false, true) == "<s>x");
    CHECK(t.decode({1, 7}, false, false) == "x");
    CHECK(t.decode({1, 3, 7}, true, false) == " x");  // after a removed bos, the space stays
}

TEST_CASE("BPE: the lowest-ranked merge applies first") {
    vocab v;
    v.kind = text::vocab_kind::bpe;
    v.pre_kind = text::pre_type::gpt2;
    v.tokens = {"a", "b", "c", "ab", "bc", "\xC4\xA0" /*Ġ = space*/, "\xC4\xA0" "a"};
    v.merges = {"a b", "b c", "\xC4\xA0 a"};
    {
        const text::tokenizer t(v);
        CHECK(t.encode("abc", false) == std::vector<std::int32_t>{3, 2});     // ab c
        // " abc" is the word Ġabc: a+b (rank 0) wins over Ġ+a (rank 2), so Ġa never forms.
        CHECK(t.encode("abc abc", false) == std::vector<std::int32_t>{3, 2, 5, 3, 2});
        CHECK(t.decode({3, 2, 5, 3, 2}) == "abc abc");
    }
    v.merges = {"b c", "a b", "\xC4\xA0 a"};
    {
        const text::tokenizer t(v);
        CHECK(t.encode("abc", false) == std::vector<std::int32_t>{0, 4});     // a bc
    }
    // A symbol that is no token falls back to single-byte tokens, where they exist ("d" does not).
    v.merges.push_back("a d");
    const text::tokenizer t(v);
    CHECK(t.encode("ad", false) == std::vector<std::int32_t>{0});
}

TEST_CASE("errors name what is wrong") {
    const text::tokenizer t(spm_vocab({{sp, 0}}));
    CHECK_THROWS_WITH_AS(t.decode({99}), doctest::Contains("99"), qinfer::error);
    CHECK_THROWS_WITH_AS(t.token_to_piece(-3), doctest::Contains("-3"), qinfer::error);
    vocab bad = spm_vocab({{sp, 0}});
    bad.scores.pop_back();
    CHECK_THROWS_AS(text::tokenizer{std::move(bad)}, qinfer::error);

    // A WordPiece (BERT) vocabulary is not supported.
    if (const auto bert = refdata("vocab/ggml-vocab-bert-bge.gguf"))
        CHECK_THROWS_WITH_AS(text::tokenizer{*bert}, doctest::Contains("\"bert\""), qinfer::error);

    // Derived files: BPE without merges, duplicate token texts.
    const auto base = refdata("vocab/ggml-vocab-gpt-2.gguf");
    if (!base) return;
    const qinfer::gguf::reader r(*base);
    const auto write = [&](const std::string& tag, auto&& edit) {
        qinfer::gguf::writer w;
        for (const auto& e : r.metadata()) w.set(std::string(e.key), e.value);
        edit(w);
        const auto p = std::filesystem::temp_directory_path() / ("qinfer-text-" + std::to_string(::getpid()) + tag + ".gguf");
        w.write(p);
        return p;
    };
    const auto no_merges = write("no-merges", [](qinfer::gguf::writer& w) { w.erase("tokenizer.ggml.merges"); });
    CHECK_THROWS_WITH_AS(text::tokenizer{no_merges}, doctest::Contains("tokenizer.ggml.merges"), qinfer::error);
    std::filesystem::remove(no_merges);
    const auto dup = write("dup", [&](qinfer::gguf::writer& w) {
        std::vector<std::string_view> toks = r.require_array<std::string_view>("tokenizer.ggml.tokens");
        toks[5] = toks[4];
        w.set("tokenizer.ggml.tokens", toks);
    });
    CHECK_THROWS_WITH_AS(text::tokenizer{dup}, doctest::Contains("appears twice"), qinfer::error);
    std::filesystem::remove(dup);
}
