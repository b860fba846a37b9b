// qinfer/text/spm_tokenizer.hpp — SentencePiece-style BPE over a scored vocabulary (llama.cpp's
// "SPM" tokenizer).
//
// The text (spaces already spelled U+2581) starts as one symbol per UTF-8 character. Repeatedly
// the adjacent pair whose concatenation is the highest-scoring token is merged (ties: leftmost
// first). A heap of candidate pairs keeps this O(n log n); pairs made stale by an earlier merge
// are recognised by their size and skipped. Symbols left that are not tokens are spelled as
// <0xXX> byte tokens.
//
// Speed-up with the same result: when no token has a U+2581 right after another character
// (true of SentencePiece vocabularies, whose pieces start at word boundaries), no merge can
// cross the start of a word, so each word is merged on its own with a small heap.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../core/config.hpp"
#include "../core/error.hpp"
#include "unicode.hpp"
#include "vocab.hpp"

QINFER_NAMESPACE_BEGIN
namespace text {

namespace detail {

inline constexpr std::string_view spm_space = "\xE2\x96\x81";  // U+2581

// The token for one raw byte: "<0xXX>", else a token spelled as that single byte.
inline std::int32_t spm_byte_token(const token_index& index, std::uint8_t byte) {
    static constexpr char hex[] = "0123456789ABCDEF";
    const char name[6] = {'<', '0', 'x', hex[byte >> 4], hex[byte & 15], '>'};
    std::int32_t id = index.find(std::string_view(name, 6));
    if (id == no_token) id = index.find(std::string_view(reinterpret_cast<const char*>(&byte), 1));
    if (id == no_token)
        throw error(std::string("text: SPM vocabulary has no byte token <0x") + hex[byte >> 4] + hex[byte & 15] +
                    "> to spell a character that is not in the vocabulary");
    return id;
}

// True if every U+2581 inside a token (not at its start) follows another U+2581.
inline bool spm_words_are_independent(const vocab& v) {
    for (const std::string& t : v.tokens) {
        for (std::size_t i = t.find(spm_space, 1); i != std::string::npos; i = t.find(spm_space, i + 1))
            if (i < 3 || std::string_view(t).substr(i - 3, 3) != spm_space) return false;
    }
    return true;
}

}  // namespace detail

class spm_tokenizer {
public:
    // `split_words`: detail::spm_words_are_independent(v), computed once by the caller.
    spm_tokenizer(const vocab& v, const detail::token_index& index, bool split_words)
        : vocab_(&v), index_(&index), split_words_(split_words) {}

    // Appends the tokens of `text`, which must already have its spaces replaced by U+2581.
    void encode(std::string_view text, std::vector<std::int32_t>& out) const {
        std::vector<symbol> syms;
        std::vector<bigram> heap;
        syms.reserve(text.size());
        std::size_t run_begin = 0;  // first symbol of the current word
        for (std::size_t off = 0; off < text.size();) {
            const std::size_t n = std::min(utf8_len(text[off]), text.size() - off);
            // A U+2581 that does not follow U+2581 starts a word no merge can reach across.
            if (split_words_ && !syms.empty() && text.substr(off, 3) == detail::spm_space && off >= 3 &&
                text.substr(off - 3, 3) != detail::spm_space) {
                merge_run(text, syms, run_begin, heap, out);
                run_begin = syms.size();
            }
            syms.push_back({0, 0, off, n});
            off += n;
        }
        if (run_begin < syms.size()) merge_run(text, syms, run_begin, heap, out);
    }

private:
    struct symbol {
        int prev, next;
        std::size_t offset, n;
    };
    struct bigram {
        int left, right;
        float score;
        std::size_t size;
    };
    // Heap order: "less" = lower priority (lower score, then further right).
    static bool lower_priority(const bigram& a, const bigram& b) {
        return a.score < b.score || (a.score == b.score && a.left > b.left);
    }

    // Merges symbols [begin, syms.size()) among themselves and appends their tokens.
    void merge_run(std::string_view text, std::vector<symbol>& syms, std::size_t begin, std::vector<bigram>& heap,
                   std::vector<std::int32_t>& out) const {
        const int first = static_cast<int>(begin), last = static_cast<int>(syms.size()) - 1;
        for (int i = first; i <= last; ++i) {
            syms[i].prev = i == first ? -1 : i - 1;
            syms[i].next = i == last ? -1 : i + 1;
        }
        heap.clear();
        const auto try_pair = [&](int left, int right) {
            if (left < 0 || right < 0) return;
            const std::size_t size = syms[left].n + syms[right].n;
            const std::int32_t id = index_->find(text.substr(syms[left].offset, size));
            if (id == no_token) return;
            heap.push_back({left, right, vocab_->score(id), size});
            std::push_heap(heap.begin(), heap.end(), lower_priority);
        };
        for (int i = first + 1; i <= last; ++i) try_pair(i - 1, i);

        while (!heap.empty()) {
            std::pop_heap(heap.begin(), heap.end(), lower_priority);
            const bigram b = heap.back();
            heap.pop_back();
            symbol& l = syms[b.left];
            symbol& r = syms[b.right];
            // A merge since this pair was queued changed one side: skip it.
            if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
            l.n += r.n;
            r.n = 0;
            l.next = r.next;
            if (r.next >= 0) syms[r.next].prev = b.left;
            try_pair(l.prev, b.left);
            try_pair(b.left, l.next);
        }

        for (int i = first; i != -1; i = syms[i].next) {
            const std::string_view piece = text.substr(syms[i].offset, syms[i].n);
            if (const std::int32_t id = index_->find(piece); id != no_token) {
                out.push_back(id);
                continue;
            }
            // Only an unmerged character can be unknown (merges always form tokens).
            for (const char c : piece) out.push_back(detail::spm_byte_token(*index_, static_cast<std::uint8_t>(c)));
        }
    }

    const vocab* vocab_;
    const detail::token_index* index_;
    bool split_words_;
};

}  // namespace text
QINFER_NAMESPACE_END
