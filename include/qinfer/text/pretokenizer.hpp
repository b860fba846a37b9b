// qinfer/text/pretokenizer.hpp — splits text into words before byte-level BPE.
//
// Each tokenizer.ggml.pre name stands for a list of regexes that llama.cpp applies in turn, each
// one cutting every piece the previous one produced into its matches and the gaps between them.
// Here every distinct regex is a hand-written matcher. llama.cpp evaluates most of them with
// std::regex on a stand-in text in which each non-ASCII code point is replaced by a byte naming
// its class (or, for regexes without \p{..}, non-ASCII whitespace by U+000B); a few it evaluates
// with hand-written splitters whose edge cases differ from the regex. The matchers below
// reproduce whichever of the two llama.cpp uses for that regex, so the words (and token ids)
// are the same.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../core/config.hpp"
#include "unicode.hpp"

QINFER_NAMESPACE_BEGIN
namespace text {

// The pre-tokenizer families: one per distinct regex list in llama.cpp.
enum class pre_type {
    default_bpe,     // no / "default" pre-tokenizer
    gpt2,            // gpt-2, mpt, olmo, jais, phi-2, ...
    llama3,          // llama-bpe, llama3, dbrx, smaug-bpe, chatglm-bpe, ...
    qwen2,           // qwen2, stablelm2, deepseek-r1-qwen, megrez, hunyuan, grok-2, ...
    qwen35,          // qwen35: qwen2 with combining marks inside words
    deepseek_llm,
    deepseek_coder,
    falcon,
    starcoder,       // starcoder, refact, command-r, smollm, codeshell, exaone, ...
};

inline std::string_view name(pre_type t) {
    switch (t) {
        case pre_type::default_bpe: return "default";
        case pre_type::gpt2: return "gpt2";
        case pre_type::llama3: return "llama3";
        case pre_type::qwen2: return "qwen2";
        case pre_type::qwen35: return "qwen35";
        case pre_type::deepseek_llm: return "deepseek-llm";
        case pre_type::deepseek_coder: return "deepseek-coder";
        case pre_type::falcon: return "falcon";
        case pre_type::starcoder: return "starcoder";
    }
    return "?";
}

namespace detail {

// One splitting step: a regex of llama.cpp's lists.
enum class pre_step {
    gpt2_words,         // custom: 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)
    llama3_words,       // custom: (?i:'s|..)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    qwen2_words,        // custom: as llama3_words with \p{N} instead of \p{N}{1,3}
    qwen35_words,       // custom: as qwen2_words with [\p{L}\p{M}]+ words
    punct_run,          // [\p{P}\$\+<=>\^~\|]+
    punct_run_falcon,   // [\p{P}\$\+<=>\^~\|`]+
    number_run,         // \p{N}+
    number_single,      // \p{N}
    three_digits,       // [0-9][0-9][0-9]
    cr_or_lf,           // [\r\n]
    ds_latin_word,      // \s?[A-Za-zµÀ-ÖØ-ö...]+   (deepseek-llm's list of cased-letter ranges)
    ds_ascii_punct,     // \s?[!-/:-~！-／：-～‘-‟　-。]+
    trailing_space,     // \s+$
    cjk_run,            // [一-龥ࠀ-一가-퟿]+
    space_letters,      // \s?\p{L}+
    space_punct,        // \s?\p{P}+
};

inline std::vector<pre_step> pre_steps(pre_type t) {
    using s = pre_step;
    switch (t) {
        case pre_type::default_bpe:    return {s::punct_run, s::gpt2_words, s::number_run, s::three_digits};
        case pre_type::gpt2:           return {s::gpt2_words};
        case pre_type::llama3:         return {s::llama3_words};
        case pre_type::qwen2:          return {s::qwen2_words};
        case pre_type::qwen35:         return {s::qwen35_words};
        case pre_type::deepseek_llm:   return {s::cr_or_lf, s::ds_latin_word, s::ds_ascii_punct, s::trailing_space,
                                               s::cjk_run, s::number_run};
        case pre_type::deepseek_coder: return {s::cr_or_lf, s::space_letters, s::space_punct, s::cjk_run, s::number_single};
        case pre_type::falcon:         return {s::punct_run_falcon, s::gpt2_words, s::three_digits};
        case pre_type::starcoder:      return {s::number_single, s::gpt2_words};
    }
    return {};
}

// The text being split: code points and their property bits (class | cpt_whitespace).
struct pre_text {
    std::vector<std::uint32_t> cpts;
    std::vector<std::uint16_t> props;
};

inline constexpr std::uint32_t no_cpt = 0xFFFFFFFFu;  // "past the end of the piece"

// Class tests on property bits.
inline bool is_l(std::uint16_t p) { return (p & cpt_letter) != 0; }
inline bool is_n(std::uint16_t p) { return (p & cpt_number) != 0; }
inline bool is_m(std::uint16_t p) { return (p & cpt_mark) != 0; }
inline bool is_p(std::uint16_t p) { return (p & cpt_punctuation) != 0; }
inline bool is_s(std::uint16_t p) { return (p & cpt_whitespace) != 0; }

// Accessors for one piece [b, e): positions at or past e read as "nothing".
struct piece_view {
    const pre_text& t;
    std::size_t e;
    std::uint32_t cpt(std::size_t i) const { return i < e ? t.cpts[i] : no_cpt; }
    std::uint16_t props(std::size_t i) const { return i < e ? t.props[i] : std::uint16_t{0}; }
};

// ---- llama.cpp's hand-written splitters (the regexes it does not run through std::regex) ----

// 's|'t|'re|'ve|'m|'ll|'d — case-insensitive for the llama3 family. Returns the length or 0.
inline std::size_t match_contraction(const piece_view& v, std::size_t pos, bool any_case) {
    if (v.cpt(pos) != '\'' || pos + 1 >= v.e) return 0;
    const auto lower = [&](std::uint32_t c) { return any_case ? to_lower(c) : c; };
    const std::uint32_t c1 = lower(v.cpt(pos + 1));
    if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') return 2;
    if (pos + 2 >= v.e) return 0;
    const std::uint32_t c2 = lower(v.cpt(pos + 2));
    if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) return 3;
    return 0;
}

// Tail shared by all custom splitters: whitespace runs. A run followed by more text leaves its
// last character to start the next word (\s+(?!\S)); `newline_rule` adds \s*[\r\n]+ first.
inline std::size_t whitespace_word_end(const piece_view& v, std::size_t pos, bool newline_rule) {
    std::size_t n = 0, after_last_newline = 0;
    while (is_s(v.props(pos + n))) {
        const std::uint32_t c = v.cpt(pos + n);
        if (c == '\r' || c == '\n') after_last_newline = pos + n + 1;
        ++n;
    }
    if (newline_rule && after_last_newline > 0) return after_last_newline;
    if (n > 1 && v.cpt(pos + n) != no_cpt) return pos + n - 1;
    if (n > 0) return pos + n;
    return pos + 1;  // nothing matched: the character becomes a word of its own
}

// gpt2_words: words are optional space + letters / numbers / other symbols; contractions apart.
inline void split_gpt2(const pre_text& t, std::size_t b, std::size_t e, std::vector<std::size_t>& out) {
    const piece_view v{t, e};
    for (std::size_t pos = b; pos < e;) {
        const std::size_t start = pos;
        if (std::size_t n = match_contraction(v, pos, false)) {
            out.push_back(n);
            pos += n;
            continue;
        }
        const std::uint32_t c = v.cpt(pos);
        std::uint16_t p = c == ' ' ? v.props(pos + 1) : v.props(pos);
        const auto other = [](std::uint16_t q) { return q != 0 && !(is_s(q) || is_l(q) || is_n(q)); };
        if (is_l(p) || is_n(p) || other(p)) {
            const bool want_l = is_l(p), want_n = !want_l && is_n(p);
            const auto same = [&](std::uint16_t q) { return want_l ? is_l(q) : want_n ? is_n(q) : other(q); };
            pos += (c == ' ');
            while (same(p)) p = v.props(++pos);
        } else {
            pos = whitespace_word_end(v, pos, false);
        }
        out.push_back(pos - start);
    }
}

// llama3_words / qwen2_words / qwen35_words: `digits` is the longest digit group (3 or 1);
// `marks` lets combining marks join letters (qwen35).
inline void split_llama3_like(const pre_text& t, std::size_t b, std::size_t e, std::vector<std::size_t>& out,
                              std::size_t digits, bool marks) {
    const piece_view v{t, e};
    const auto word = [&](std::uint16_t q) { return is_l(q) || (marks && is_m(q)); };
    const auto other = [&](std::uint16_t q) { return !(is_s(q) || is_l(q) || is_n(q) || (marks && is_m(q))); };
    for (std::size_t pos = b; pos < e;) {
        const std::size_t start = pos;
        if (std::size_t n = match_contraction(v, pos, true)) {
            out.push_back(n);
            pos += n;
            continue;
        }
        const std::uint32_t c = v.cpt(pos);
        const std::uint16_t p = v.props(pos);
        // [^\r\n\p{L}\p{N}]?\p{L}+ : one leading non-letter (even a space or a mark) may join.
        if (!(c == '\r' || c == '\n' || is_n(p)) && (word(p) || word(v.props(pos + 1)))) {
            ++pos;
            while (word(v.props(pos))) ++pos;
            out.push_back(pos - start);
            continue;
        }
        // \p{N}{1,3} (or \p{N}): a run of digits is cut into groups from the left.
        if (is_n(p)) {
            std::size_t group = pos;
            while (is_n(v.props(pos))) {
                if (++pos - group >= digits) {
                    out.push_back(pos - group);
                    group = pos;
                }
            }
            if (pos > group) out.push_back(pos - group);
            continue;
        }
        //  ?[^\s\p{L}\p{N}]+[\r\n]* — llama.cpp tests the class of the character after the space
        // but requires the space itself to be "defined", so a lone trailing space lands here too.
        std::uint16_t q = c == ' ' ? v.props(pos + 1) : p;
        if (other(q) && p != 0) {
            pos += (c == ' ');
            while (other(q) && q != 0) q = v.props(++pos);
            while (v.cpt(pos) == '\r' || v.cpt(pos) == '\n') ++pos;
            out.push_back(pos - start);
            continue;
        }
        pos = whitespace_word_end(v, pos, true);
        out.push_back(pos - start);
    }
}

// ---- regexes llama.cpp runs through std::regex: leftmost match, then search on after it ----

// What std::regex sees of a code point: ASCII stays itself; other code points stand in for
// their class (whitespace first), so only ASCII can match a literal or a range.
inline bool regex_space(const pre_text& t, std::size_t i) { return is_s(t.props[i]); }

// std::wregex on code points with non-ASCII whitespace replaced by U+000B: the value a
// literal range in the regex is compared against.
inline std::uint32_t wregex_char(const pre_text& t, std::size_t i) {
    const std::uint32_t c = t.cpts[i];
    return (c > 0x7F && is_s(t.props[i])) ? 0x0B : c;
}

struct cpt_range {
    std::uint32_t lo, hi;
};

template <std::size_t N>
inline bool in_ranges(const cpt_range (&r)[N], std::uint32_t c) {
    for (const auto& x : r)
        if (c >= x.lo && c <= x.hi) return true;
    return false;
}

// deepseek-llm's explicit list of cased letters (its second regex).
inline constexpr cpt_range ds_latin_ranges[] = {
    {0x0041, 0x005A}, {0x0061, 0x007A}, {0x00B5, 0x00B5}, {0x00C0, 0x00D6}, {0x00D8, 0x00F6}, {0x00F8, 0x01BA},
    {0x01BC, 0x01BF}, {0x01C4, 0x0293}, {0x0295, 0x02AF}, {0x0370, 0x0373}, {0x0376, 0x0377}, {0x037B, 0x037D},
    {0x037F, 0x037F}, {0x0386, 0x0386}, {0x0388, 0x038A}, {0x038C, 0x038C}, {0x038E, 0x03A1}, {0x03A3, 0x03F5},
    {0x03F7, 0x0481}, {0x048A, 0x052F}, {0x0531, 0x0556}, {0x10A0, 0x10C5}, {0x13A0, 0x13F5}, {0x13F8, 0x13FD},
    {0x1C90, 0x1CBA}, {0x1CBD, 0x1CBF}, {0x1D00, 0x1D2B}, {0x1D6B, 0x1D77}, {0x1D79, 0x1D9A}, {0x1E00, 0x1F15},
    {0x1F18, 0x1F1D}, {0x1F20, 0x1F45}, {0x1F48, 0x1F4D}, {0x1F50, 0x1F57}, {0x1F59, 0x1F59}, {0x1F5B, 0x1F5B},
    {0x1F5D, 0x1F5D}, {0x1F5F, 0x1F7D}, {0x1F80, 0x1FB4}, {0x1FB6, 0x1FBC}, {0x1FBE, 0x1FBE}, {0x1FC2, 0x1FC4},
    {0x1FC6, 0x1FCC}, {0x1FD0, 0x1FD3}, {0x1FD6, 0x1FDB}, {0x1FE0, 0x1FEC}, {0x1FF2, 0x1FF4}, {0x1FF6, 0x1FFC},
    {0x2102, 0x2102}, {0x2107, 0x2107}, {0x210A, 0x2113}, {0x2115, 0x2115}, {0x2119, 0x211D}, {0x2124, 0x2124},
    {0x2126, 0x2126}, {0x2128, 0x2128}, {0x212A, 0x212D}, {0x212F, 0x2134}, {0x2139, 0x2139}, {0x213C, 0x213F},
    {0x2145, 0x2149}, {0x214E, 0x214E}, {0x2183, 0x2184}, {0x2C00, 0x2C7B}, {0x2C7E, 0x2CE4}, {0x2CEB, 0x2CEE},
    {0x2CF2, 0x2CF3}, {0xA640, 0xA66D}, {0xA680, 0xA69B}, {0xA722, 0xA76F}, {0xA771, 0xA787}, {0xA78B, 0xA78E},
    {0xAB70, 0xABBF}, {0xFB00, 0xFB06}, {0xFB13, 0xFB17}, {0xFF21, 0xFF3A}, {0xFF41, 0xFF5A}, {0x10400, 0x1044F},
    {0x104B0, 0x104D3}, {0x104D8, 0x104FB}, {0x10C80, 0x10CB2}, {0x10CC0, 0x10CF2}, {0x118A0, 0x118DF},
    {0x1E900, 0x1E943},
};

// deepseek-llm's ASCII and full-width punctuation (its third regex). U+3000 is listed, but as
// whitespace it has become U+000B before the regex sees it.
inline constexpr cpt_range ds_punct_ranges[] = {
    {0x0021, 0x002F}, {0x003A, 0x007E}, {0xFF01, 0xFF0F}, {0xFF1A, 0xFF5E}, {0x2018, 0x201F}, {0x3000, 0x3002},
};

// CJK ideographs, the block before them and Hangul syllables (deepseek's CJK regex).
inline constexpr cpt_range cjk_ranges[] = {{0x4E00, 0x9FA5}, {0x0800, 0x4E00}, {0xAC00, 0xD7FF}};

// Class of one position for the class-run regexes.
inline bool step_class(pre_step s, const pre_text& t, std::size_t i) {
    const std::uint32_t c = t.cpts[i];
    const std::uint16_t p = t.props[i];
    switch (s) {
        case pre_step::punct_run:
            return is_p(p) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' || c == '~' || c == '|';
        case pre_step::punct_run_falcon:
            return is_p(p) || c == '$' || c == '+' || c == '<' || c == '=' || c == '>' || c == '^' || c == '~' || c == '|' ||
                   c == '`';
        case pre_step::number_run:
        case pre_step::number_single: return is_n(p);
        case pre_step::ds_latin_word: return in_ranges(ds_latin_ranges, wregex_char(t, i));
        case pre_step::ds_ascii_punct: return in_ranges(ds_punct_ranges, wregex_char(t, i));
        case pre_step::cjk_run: return in_ranges(cjk_ranges, wregex_char(t, i));
        case pre_step::space_letters: return is_l(p);
        case pre_step::space_punct: return is_p(p);
        default: return false;
    }
}

// Leftmost match of a regex-driven step in [from, e): returns {start, end}, start == e if none.
inline std::pair<std::size_t, std::size_t> find_match(pre_step s, const pre_text& t, std::size_t from, std::size_t e) {
    switch (s) {
        case pre_step::number_single:
            for (std::size_t i = from; i < e; ++i)
                if (step_class(s, t, i)) return {i, i + 1};
            return {e, e};
        case pre_step::cr_or_lf:
            for (std::size_t i = from; i < e; ++i)
                if (t.cpts[i] == '\r' || t.cpts[i] == '\n') return {i, i + 1};
            return {e, e};
        case pre_step::three_digits: {
            const auto digit = [&](std::size_t i) { return t.cpts[i] >= '0' && t.cpts[i] <= '9'; };
            for (std::size_t i = from; i + 3 <= e; ++i)
                if (digit(i) && digit(i + 1) && digit(i + 2)) return {i, i + 3};
            return {e, e};
        }
        case pre_step::trailing_space: {
            // `$` is the end of the piece, so only a whitespace run reaching it can match.
            std::size_t i = e;
            while (i > from && regex_space(t, i - 1)) --i;
            return {i, e};
        }
        case pre_step::ds_latin_word:
        case pre_step::ds_ascii_punct:
        case pre_step::space_letters:
        case pre_step::space_punct:
            // \s?X+ : a whitespace joins the run that directly follows it.
            for (std::size_t i = from; i < e; ++i) {
                std::size_t j = i;
                if (regex_space(t, i) && i + 1 < e && step_class(s, t, i + 1)) j = i + 1;
                else if (!step_class(s, t, i)) continue;
                while (j < e && step_class(s, t, j)) ++j;
                return {i, j};
            }
            return {e, e};
        default:  // X+
            for (std::size_t i = from; i < e; ++i) {
                if (!step_class(s, t, i)) continue;
                std::size_t j = i;
                while (j < e && step_class(s, t, j)) ++j;
                return {i, j};
            }
            return {e, e};
    }
}

// Cuts piece [b, e) into matches and the gaps between them (lengths in code points).
inline void split_piece(pre_step s, const pre_text& t, std::size_t b, std::size_t e, std::vector<std::size_t>& out) {
    switch (s) {
        case pre_step::gpt2_words: return split_gpt2(t, b, e, out);
        case pre_step::llama3_words: return split_llama3_like(t, b, e, out, 3, false);
        case pre_step::qwen2_words: return split_llama3_like(t, b, e, out, 1, false);
        case pre_step::qwen35_words: return split_llama3_like(t, b, e, out, 1, true);
        default: break;
    }
    std::size_t pos = b;
    while (pos < e) {
        const auto [ms, me] = find_match(s, t, pos, e);
        if (ms >= e) break;
        if (ms > pos) out.push_back(ms - pos);
        out.push_back(me - ms);
        pos = me;
    }
    if (pos < e) out.push_back(e - pos);
}

}  // namespace detail

// Splits `text` into the words byte-level BPE merges within. With `byte_encode` each word is
// spelled in GPT-2's byte code points (as the vocabulary is); malformed UTF-8 becomes U+FFFD.
inline std::vector<std::string> pre_tokenize(std::string_view text, pre_type type, bool byte_encode = true) {
    detail::pre_text t;
    t.cpts = utf8_to_codepoints(text);
    t.props.resize(t.cpts.size());
    for (std::size_t i = 0; i < t.cpts.size(); ++i) t.props[i] = cpt_props(t.cpts[i]);

    std::vector<std::size_t> pieces{t.cpts.size()}, next;
    for (const detail::pre_step step : detail::pre_steps(type)) {
        next.clear();
        next.reserve(pieces.size() * 2);
        std::size_t b = 0;
        for (const std::size_t len : pieces) {
            detail::split_piece(step, t, b, b + len, next);
            b += len;
        }
        pieces.swap(next);
    }

    std::vector<std::string> words;
    words.reserve(pieces.size());
    std::size_t b = 0;
    std::string utf8;
    for (const std::size_t len : pieces) {
        if (len == 0) continue;
        utf8.clear();
        for (std::size_t i = b; i < b + len; ++i) append_utf8(utf8, t.cpts[i]);
        b += len;
        if (!byte_encode) {
            words.push_back(utf8);
            continue;
        }
        std::string& w = words.emplace_back();
        w.reserve(utf8.size() * 2);
        for (const char ch : utf8) append_utf8(w, byte_to_cpt(static_cast<std::uint8_t>(ch)));
    }
    return words;
}

}  // namespace text
QINFER_NAMESPACE_END
