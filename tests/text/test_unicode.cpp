// Unicode tables, UTF-8 decoding and the pre-tokenizers, compared with llama.cpp's own
// unicode.cpp functions (C++ symbols of libllama): the class and whitespace flags and the
// lowercase mapping of every code point, the decoding of random byte strings, and the words
// each pre-tokenizer regex list cuts text into.
#include "text/llama_oracle.hpp"
#include "text/support.hpp"

#include <qinfer/text/pretokenizer.hpp>
#include <qinfer/text/unicode.hpp>

using namespace ttest;

namespace {

// llama.cpp's regex lists per pre-tokenizer type (src/llama-vocab.cpp), as input for its
// unicode_regex_split.
const std::vector<std::pair<text::pre_type, std::vector<std::string>>> llama_regexes = {
    {text::pre_type::default_bpe, {"[\\p{P}\\$\\+<=>\\^~\\|]+", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)", "\\p{N}+", "[0-9][0-9][0-9]"}},
    {text::pre_type::gpt2, {"'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"}},
    {text::pre_type::llama3, {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {text::pre_type::qwen2, {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {text::pre_type::qwen35, {"(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\\r\\n\\p{L}\\p{N}]?[\\p{L}\\p{M}]+|\\p{N}| ?[^\\s\\p{L}\\p{M}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {text::pre_type::deepseek_llm, {"[\r\n]", "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-ώᾀ-ᾴᾶ-ᾼιῂ-ῄῆ-ῌῐ-ΐῖ-Ίῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤΩℨK-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ𐐀-𐑏𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+", "\\s?[!-/:-~！-／：-～‘-‟　-。]+", "\\s+$", "[一-龥ࠀ-一가-퟿]+", "\\p{N}+"}},
    {text::pre_type::deepseek_coder, {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}"}},
    {text::pre_type::falcon, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)", "[0-9][0-9][0-9]"}},
    {text::pre_type::starcoder, {"\\p{N}", "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"}},
};

}  // namespace

TEST_CASE("unicode: facts from UnicodeData.txt / PropList.txt") {
    CHECK((text::cpt_props('a') & text::cpt_letter));
    CHECK((text::cpt_props('7') & text::cpt_number));
    CHECK((text::cpt_props('$') & text::cpt_symbol));
    CHECK((text::cpt_props('_') & text::cpt_punctuation));
    CHECK((text::cpt_props(0x00BD) & text::cpt_number));       // VULGAR FRACTION ONE HALF: No
    CHECK((text::cpt_props(0x0301) & text::cpt_mark));         // COMBINING ACUTE ACCENT: Mn
    CHECK((text::cpt_props(0x20AC) & text::cpt_symbol));       // EURO SIGN: Sc
    CHECK((text::cpt_props(0x0378) & text::cpt_undefined));    // unassigned
    CHECK((text::cpt_props(0xE000) & text::cpt_control));      // private use: Co
    CHECK((text::cpt_props(0x2EBF0) & text::cpt_letter));      // CJK Ext. I (Unicode 15.1)
    CHECK((text::cpt_props(0x110000) == text::cpt_undefined));
    CHECK(text::is_whitespace(0x85));
    CHECK(text::is_whitespace(0x3000));
    CHECK_FALSE(text::is_whitespace(0x200B));                  // ZERO WIDTH SPACE is Cf, not White_Space
    CHECK_FALSE(text::is_whitespace(0x1C));
    CHECK(text::to_lower('Q') == 'q');
    CHECK(text::to_lower(0x0130) == 'i');                      // I WITH DOT ABOVE
    CHECK(text::to_lower(0x212A) == 'k');                      // KELVIN SIGN
    CHECK(text::to_lower(0x0100) == 0x0101);                   // stride-2 run
    CHECK(text::to_lower(0x0101) == 0x0101);
    CHECK(text::to_lower(0x10400) == 0x10428);                 // DESERET
    for (int b = 0; b < 256; ++b) CHECK(text::cpt_to_byte(text::byte_to_cpt(static_cast<std::uint8_t>(b))) == b);
    CHECK(text::byte_to_cpt(' ') == 0x120);                    // "Ġ"
    CHECK(text::byte_to_cpt('\n') == 0x10A);                   // "Ċ"
}

TEST_CASE("unicode: classes, whitespace and lowercase of every code point match llama.cpp") {
    const llama_oracle::api* api = llama_oracle::get();
    if (!api) return;
    REQUIRE(static_cast<bool>(api->cpt_flags_of));
    REQUIRE(static_cast<bool>(api->to_lower));
    std::size_t bad_flags = 0, bad_lower = 0;
    for (std::uint32_t c = 0; c < 0x110000; ++c) {
        const std::uint16_t theirs = api->cpt_flags_of(c).bits & 0x1FF;  // classes + whitespace
        if (theirs != text::cpt_props(c) && ++bad_flags <= 5) CHECK_MESSAGE(theirs == text::cpt_props(c), "U+" << std::hex << c);
        if (api->to_lower(c) != text::to_lower(c) && ++bad_lower <= 5) CHECK_MESSAGE(api->to_lower(c) == text::to_lower(c), "U+" << std::hex << c);
    }
    CHECK(bad_flags == 0);
    CHECK(bad_lower == 0);
}

TEST_CASE("unicode: UTF-8 decoding of arbitrary bytes matches llama.cpp (U+FFFD per bad byte)") {
    const llama_oracle::api* api = llama_oracle::get();
    if (!api) return;
    REQUIRE(static_cast<bool>(api->cpts_from_utf8));
    std::mt19937 rng(5);
    const unsigned char interesting[] = {0x00, 0x41, 0x7F, 0x80, 0xBF, 0xC0, 0xC2, 0xDF, 0xE0, 0xED, 0xEF, 0xF0, 0xF4, 0xF5, 0xF7, 0xF8, 0xFF};
    std::size_t ok = 0, n = 20000;
    for (std::size_t i = 0; i < n; ++i) {
        std::string s(rng() % 9, '\0');
        for (char& ch : s) ch = static_cast<char>(rng() % 2 ? interesting[rng() % std::size(interesting)] : 0x80 | (rng() % 64));
        const auto want = api->cpts_from_utf8(s);
        const auto got = text::utf8_to_codepoints(s);
        if (want == got) ++ok;
        else CHECK(want == got);
    }
    CHECK(ok == n);
}

TEST_CASE("pre-tokenizers: words match llama.cpp's unicode_regex_split for every regex list") {
    const llama_oracle::api* api = llama_oracle::get();
    if (!api) return;
    REQUIRE(static_cast<bool>(api->regex_split));
    const text::tokenizer* gpt2 = tokenizer_for("vocab/ggml-vocab-gpt-2.gguf");
    if (!gpt2) return;
    const std::vector<std::string> pool = fragment_pool(*gpt2);
    for (const auto& [type, regexes] : llama_regexes) {
        CAPTURE(text::name(type));
        std::mt19937 rng(11 + static_cast<int>(type));
        std::size_t ok = 0, n = 2000;
        for (std::size_t i = 0; i < n; ++i) {
            std::string s = random_text(rng, pool);
            // llama.cpp cannot spell code points past U+10FFFF (it throws); keep them out.
            if (s.find_first_of("\xF5\xF6\xF7") != std::string::npos) s = "x";
            const auto want = api->regex_split(s, regexes, true);
            const auto got = text::pre_tokenize(s, type);
            if (want == got) {
                ++ok;
            } else {
                INFO("text [" << s << "]");
                CHECK(want == got);
            }
        }
        MESSAGE("pre-tokenizer " << text::name(type) << ": " << ok << " / " << n << " strings split into the same words");
        CHECK(ok == n);
    }
}
