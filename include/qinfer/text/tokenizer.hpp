// qinfer/text/tokenizer.hpp — text <-> token ids for a vocab, SPM or BPE, as llama.cpp does it.
//
// encode: special-token texts are cut out first (longest first; control tokens only when asked
// to), then each remaining run of text goes through the SPM or BPE algorithm; bos / eos are
// added as the vocab says. decode: the pieces of the tokens, concatenated, with SPM's leading
// space dropped and (for most BPE vocabularies) the "clean up tokenization spaces" rules.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../core/config.hpp"
#include "../core/error.hpp"
#include "bpe_tokenizer.hpp"
#include "spm_tokenizer.hpp"
#include "unicode.hpp"
#include "vocab.hpp"

QINFER_NAMESPACE_BEGIN
namespace text {

namespace detail {

inline constexpr std::string_view escaped_space = spm_space;  // U+2581, SentencePiece's space

inline std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
    std::string out;
    out.reserve(s.size());
    for (std::size_t i = 0;;) {
        const std::size_t j = s.find(from, i);
        out.append(s.substr(i, j == std::string_view::npos ? std::string_view::npos : j - i));
        if (j == std::string_view::npos) return out;
        out.append(to);
        i = j + from.size();
    }
}

inline bool c_isspace(char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

// A piece of the input: raw text [offset, offset + length) or an already known token.
struct fragment {
    std::int32_t token;  // no_token for text
    std::size_t offset, length;
};

// Byte value of a "<0xXX>" token (as strtol would read its two digits).
inline char byte_of_token(std::string_view text) {
    int v = 0;
    for (std::size_t i = 3; i < 5 && i < text.size(); ++i) {
        const char c = text[i];
        const int d = (c >= '0' && c <= '9') ? c - '0' : (c >= 'a' && c <= 'f') ? c - 'a' + 10
                    : (c >= 'A' && c <= 'F') ? c - 'A' + 10 : -1;
        if (d < 0) break;
        v = v * 16 + d;
    }
    return static_cast<char>(v);
}

// Undoes GPT-2's byte spelling. Code points that stand for no byte are kept visibly, in
// llama.cpp's "[UNK_BYTE_0x..]" form.
inline std::string decode_byte_level(std::string_view text) {
    std::string out, utf8;
    for (std::size_t i = 0; i < text.size();) {
        const std::uint32_t c = decode_utf8(text, i);
        const int b = cpt_to_byte(c);
        if (b >= 0) {
            out.push_back(static_cast<char>(b));
            continue;
        }
        utf8.clear();
        append_utf8(utf8, c);
        static constexpr char hex[] = "0123456789abcdef";
        out += "[UNK_BYTE_0x";
        for (unsigned char u : utf8) {
            out.push_back(hex[u >> 4]);
            out.push_back(hex[u & 15]);
        }
        out.append(text);
        out.push_back(']');
    }
    return out;
}

// llama.cpp's clean-up of BPE output, three passes over the text: " ?" " !" " ." " ," lose the
// space; a "'" between two spaces loses both; " 's" " 'm" " 're" " 've" lose the space.
inline void clean_up_spaces(std::string& t) {
    // `drop_space_before(in, i)`: whether the space in[i - 1] goes (it has just been copied).
    const auto pass = [&](auto&& drop_space_before) {
        const std::string in = t;
        t.clear();
        for (std::size_t i = 0; i < in.size(); ++i) {
            if (i > 0 && drop_space_before(in, i)) t.pop_back();
            t.push_back(in[i]);
        }
    };
    pass([](const std::string& in, std::size_t i) {
        const char x = in[i];
        return in[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',');
    });
    {
        const std::string in = t;
        t.clear();
        bool skipped = false;  // the previous character was a dropped space (it no longer counts as one)
        for (std::size_t i = 0; i < in.size(); ++i) {
            const bool space_before = i > 0 && !skipped && in[i - 1] == ' ';
            skipped = false;
            t.push_back(in[i]);
            if (in[i] == '\'' && space_before && i + 1 < in.size() && in[i + 1] == ' ') {
                t.erase(t.size() - 2, 1);  // the space before
                ++i;                        // and the one after
                skipped = true;
            }
        }
    }
    pass([](const std::string& in, std::size_t i) {
        if (in[i - 1] != ' ' || in[i] != '\'' || i + 1 >= in.size()) return false;
        const char x1 = in[i + 1];
        if (x1 == 's' || x1 == 'm') return true;
        const char x2 = i + 2 < in.size() ? in[i + 2] : '\0';
        return (x1 == 'r' || x1 == 'v') && x2 == 'e';
    });
}

}  // namespace detail

class tokenizer {
public:
    explicit tokenizer(text::vocab v) : s_(std::make_unique<state>(std::move(v))) {}
    explicit tokenizer(const std::filesystem::path& gguf_path) : tokenizer(from_gguf(gguf_path)) {}

    const text::vocab& vocab() const noexcept { return s_->vocab; }
    std::size_t size() const noexcept { return s_->vocab.size(); }

    // Id of the token spelled exactly `text`, or no_token.
    std::int32_t find(std::string_view text) const { return s_->index.find(text); }

    // add_special: add bos / eos as the vocab asks. parse_special: control tokens written in the
    // text (e.g. "<|im_start|>") become those tokens; user-defined tokens always do.
    std::vector<std::int32_t> encode(std::string_view text, bool add_special = true, bool parse_special = false) const {
        std::vector<std::int32_t> out;
        std::vector<detail::fragment> frags;
        if (!text.empty()) frags.push_back({no_token, 0, text.size()});
        split_specials(text, frags, parse_special);

        if (add_special && s_->vocab.add_bos) out.push_back(require_id(s_->vocab.bos, "bos"));
        if (s_->vocab.kind == vocab_kind::spm) {
            const spm_tokenizer spm(s_->vocab, s_->index, s_->spm_split_words);
            bool after_special = true;  // the text start counts as "after a special token"
            std::string run;
            for (const detail::fragment& f : frags) {
                if (f.token != no_token) {
                    out.push_back(f.token);
                    after_special = true;
                    continue;
                }
                run.clear();
                if (s_->vocab.add_space_prefix && after_special) run.push_back(' ');
                run.append(text.substr(f.offset, f.length));
                spm.encode(detail::replace_all(run, " ", detail::escaped_space), out);
                after_special = false;
            }
        } else {
            for (const detail::fragment& f : frags) {
                if (f.token != no_token) out.push_back(f.token);
                else s_->bpe->encode(text.substr(f.offset, f.length), out);
            }
        }
        if (add_special && s_->vocab.add_eos) out.push_back(require_id(s_->vocab.eos, "eos"));
        return out;
    }

    // The text of one token. special = false gives "" for control and unknown tokens; lstrip
    // drops up to that many leading spaces.
    std::string token_to_piece(std::int32_t id, bool special = false, int lstrip = 0) const {
        check_id(id);
        if (!special && (s_->vocab.attr(id) & (attr_unknown | attr_control))) return {};
        std::string_view p = s_->pieces[id];
        for (int i = 0; i < lstrip && !p.empty() && p.front() == ' '; ++i) p.remove_prefix(1);
        return std::string(p);
    }

    // Concatenated pieces. remove_special: drop a leading bos / trailing eos the vocab would
    // add. unparse_special: render control tokens as their text instead of nothing.
    std::string decode(std::span<const std::int32_t> ids, bool remove_special = false, bool unparse_special = false) const {
        return decode_pieces(ids, remove_special, unparse_special, s_->vocab.add_space_prefix);
    }

    std::string decode(std::initializer_list<std::int32_t> ids, bool remove_special = false, bool unparse_special = false) const {
        return decode(std::span<const std::int32_t>(ids.begin(), ids.size()), remove_special, unparse_special);
    }

    // The text of tokens that continue earlier text (generated after a prompt): the pieces as
    // they are. `decode` drops the first piece's leading space, as llama_detokenize does at
    // the start of a text, which would glue the first generated word to the prompt.
    std::string decode_continuation(std::span<const std::int32_t> ids, bool unparse_special = false) const {
        return decode_pieces(ids, false, unparse_special, false);
    }

private:
    std::string decode_pieces(std::span<const std::int32_t> ids, bool remove_special, bool unparse_special,
                              bool strip_space) const {  // strip_space: SPM's space that encode() put in front
        if (remove_special && s_->vocab.add_bos && !ids.empty() && ids.front() == s_->vocab.bos) {
            strip_space = false;
            ids = ids.subspan(1);
        }
        if (remove_special && s_->vocab.add_eos && !ids.empty() && ids.back() == s_->vocab.eos) ids = ids.first(ids.size() - 1);
        std::string out;
        for (const std::int32_t id : ids) {
            out += token_to_piece(id, unparse_special, strip_space ? 1 : 0);
            strip_space = false;
        }
        if (s_->vocab.clean_spaces) detail::clean_up_spaces(out);
        return out;
    }

    void check_id(std::int32_t id) const {
        if (id < 0 || static_cast<std::size_t>(id) >= s_->vocab.size())
            throw error("text::tokenizer: token id " + std::to_string(id) + " is outside the vocabulary of " +
                        std::to_string(s_->vocab.size()) + " tokens",
                        errc::invalid_argument);
    }

    std::int32_t require_id(std::int32_t id, const char* what) const {
        if (id == no_token)
            throw error(std::string("text::tokenizer: the vocab asks to add the ") + what +
                        " token but defines none", errc::format);
        return id;
    }

    // Cuts special-token texts out of the text fragments: longest tokens first, every
    // occurrence, left to right. lstrip / rstrip tokens also swallow the ASCII whitespace next
    // to them.
    void split_specials(std::string_view text, std::vector<detail::fragment>& frags, bool parse_special) const {
        std::vector<detail::fragment> next;
        for (const std::int32_t id : s_->specials) {
            const std::uint32_t a = s_->vocab.attr(id);
            if (!parse_special && (a & (attr_control | attr_unknown))) continue;
            const std::string_view tok = s_->vocab.tokens[id];
            bool found = false;
            next.clear();
            for (const detail::fragment& f : frags) {
                if (f.token != no_token) {
                    next.push_back(f);
                    continue;
                }
                std::size_t pos = f.offset;
                const std::size_t end = f.offset + f.length;
                while (pos < end) {
                    const std::size_t m = text.substr(0, end).find(tok, pos);
                    if (m == std::string_view::npos) break;
                    found = true;
                    std::size_t left_end = m;
                    if (a & attr_lstrip)
                        while (left_end > pos && detail::c_isspace(text[left_end - 1])) --left_end;
                    if (left_end > pos) next.push_back({no_token, pos, left_end - pos});
                    next.push_back({id, 0, 0});
                    pos = m + tok.size();
                    if (a & attr_rstrip)
                        while (pos < end && detail::c_isspace(text[pos])) ++pos;
                }
                if (pos < end) next.push_back({no_token, pos, end - pos});
            }
            if (found) frags.swap(next);
        }
    }

    // Lives on the heap so that the tokenizer moves cheaply and the algorithms' pointers into
    // the vocab stay valid.
    struct state {
        text::vocab vocab;
        detail::token_index index;
        std::optional<bpe_tokenizer> bpe;
        bool spm_split_words = false;
        std::vector<std::int32_t> specials;  // control / user-defined / unknown ids, longest text first
        std::vector<std::string> pieces;     // id -> text, special tokens included

        explicit state(text::vocab v) : vocab(std::move(v)), index(vocab) {
            if (!vocab.scores.empty() && vocab.scores.size() != vocab.size())
                throw error("text::tokenizer: vocab has " + std::to_string(vocab.size()) + " tokens but " +
                            std::to_string(vocab.scores.size()) + " scores");
            if (!vocab.attrs.empty() && vocab.attrs.size() != vocab.size())
                throw error("text::tokenizer: vocab has " + std::to_string(vocab.size()) + " tokens but " +
                            std::to_string(vocab.attrs.size()) + " attributes");
            if (vocab.kind == vocab_kind::bpe) bpe.emplace(vocab, index);
            else spm_split_words = detail::spm_words_are_independent(vocab);

            // std::sort (not stable_sort) over ids in order, as llama.cpp does, so tokens of
            // equal length come out in the same order as there.
            for (std::size_t id = 0; id < vocab.size(); ++id) {
                const auto i = static_cast<std::int32_t>(id);
                if ((vocab.attr(i) & (attr_control | attr_user_defined | attr_unknown)) && !vocab.tokens[id].empty())
                    specials.push_back(i);
            }
            std::sort(specials.begin(), specials.end(),
                      [&](std::int32_t a, std::int32_t b) { return vocab.tokens[a].size() > vocab.tokens[b].size(); });

            pieces.reserve(vocab.size());
            for (std::size_t id = 0; id < vocab.size(); ++id) pieces.push_back(make_piece(static_cast<std::int32_t>(id)));
        }

        // The text a token stands for, special tokens included (llama.cpp's piece cache).
        std::string make_piece(std::int32_t id) const {
            const std::string& t = vocab.tokens[id];
            const std::uint32_t a = vocab.attr(id);
            if (a & (attr_unknown | attr_control | attr_user_defined)) return t;
            if (a & attr_normal)
                return vocab.kind == vocab_kind::spm ? detail::replace_all(t, detail::escaped_space, " ")
                                                     : detail::decode_byte_level(t);
            if (a & attr_byte) return std::string(1, detail::byte_of_token(t));
            return {};  // undefined / unused tokens render as nothing
        }
    };

    std::unique_ptr<const state> s_;
};

}  // namespace text
QINFER_NAMESPACE_END
