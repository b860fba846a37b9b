// qinfer/text/bpe_tokenizer.hpp — byte-level BPE (GPT-2 style, llama.cpp's "BPE" tokenizer).
//
// The pre-tokenizer cuts the text into words spelled in GPT-2's byte code points. Within each
// word, starting from one symbol per character, the adjacent pair with the lowest merge rank is
// merged until no listed merge applies (ties: leftmost first). A merged symbol that is not a
// token falls back to single-byte tokens.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../core/config.hpp"
#include "pretokenizer.hpp"
#include "unicode.hpp"
#include "vocab.hpp"

QINFER_NAMESPACE_BEGIN
namespace text {

class bpe_tokenizer {
public:
    bpe_tokenizer(const vocab& v, const detail::token_index& index) : vocab_(&v), index_(&index) {
        ranks_.reserve(v.merges.size());
        // A merge is stored as "left right"; the first of duplicate merges keeps its rank.
        for (std::size_t i = 0; i < v.merges.size(); ++i) ranks_.try_emplace(v.merges[i], static_cast<int>(i));
    }

    // Rank of merging `left` and `right` (token texts without spaces), or -1.
    int rank(std::string_view left, std::string_view right) const {
        std::string key;
        return rank(left, right, key);
    }

    // Appends the tokens of one run of plain text (no special tokens in it).
    void encode(std::string_view text, std::vector<std::int32_t>& out) const {
        scratch s;
        for (const std::string& word : pre_tokenize(text, vocab_->pre_kind)) encode_word(word, s, out);
    }

private:
    struct symbol {
        int prev, next;
        std::size_t offset, n;
    };
    struct bigram {
        int left, right;
        int rank;
        std::size_t size;
    };
    // Heap order: "less" = lower priority (higher rank, then further right).
    static bool lower_priority(const bigram& a, const bigram& b) {
        return a.rank > b.rank || (a.rank == b.rank && a.left > b.left);
    }

    struct scratch {  // buffers reused from word to word
        std::vector<symbol> syms;
        std::vector<bigram> heap;
        std::string key;
    };

    int rank(std::string_view left, std::string_view right, std::string& key) const {
        key.assign(left);
        key.push_back(' ');
        key.append(right);
        const auto it = ranks_.find(key);
        return it == ranks_.end() ? -1 : it->second;
    }

    void encode_word(std::string_view word, scratch& s, std::vector<std::int32_t>& out) const {
        if (vocab_->ignore_merges) {
            if (const std::int32_t id = index_->find(word); id != no_token) {
                out.push_back(id);
                return;
            }
        }
        std::vector<symbol>& syms = s.syms;
        syms.clear();
        for (std::size_t off = 0; off < word.size();) {
            const std::size_t n = std::min(utf8_len(word[off]), word.size() - off);
            const int i = static_cast<int>(syms.size());
            syms.push_back({i - 1, off + n == word.size() ? -1 : i + 1, off, n});
            off += n;
        }

        std::vector<bigram>& heap = s.heap;
        heap.clear();
        const auto try_pair = [&](int left, int right) {
            if (left < 0 || right < 0) return;
            const int r = rank(word.substr(syms[left].offset, syms[left].n),
                               word.substr(syms[right].offset, syms[right].n), s.key);
            if (r < 0) return;
            heap.push_back({left, right, r, syms[left].n + syms[right].n});
            std::push_heap(heap.begin(), heap.end(), lower_priority);
        };
        for (int i = 1; i < static_cast<int>(syms.size()); ++i) try_pair(i - 1, i);

        while (!heap.empty()) {
            std::pop_heap(heap.begin(), heap.end(), lower_priority);
            const bigram b = heap.back();
            heap.pop_back();
            symbol& l = syms[b.left];
            symbol& r = syms[b.right];
            // The left side of a live pair never changes and the right one only grows, so a
            // pair is stale exactly when a side is gone or its size changed.
            if (l.n == 0 || r.n == 0 || l.n + r.n != b.size) continue;
            l.n += r.n;
            r.n = 0;
            l.next = r.next;
            if (r.next >= 0) syms[r.next].prev = b.left;
            try_pair(l.prev, b.left);
            try_pair(b.left, l.next);
        }

        for (int i = syms.empty() ? -1 : 0; i != -1; i = syms[i].next) {
            const std::string_view piece = word.substr(syms[i].offset, syms[i].n);
            if (const std::int32_t id = index_->find(piece); id != no_token) {
                out.push_back(id);
                continue;
            }
            // Not a token: one token per byte of the spelling, where such tokens exist (as
            // llama.cpp does; byte-level vocabularies spell most bytes with two).
            for (const char c : piece)
                if (const std::int32_t id = index_->find(std::string_view(&c, 1)); id != no_token) out.push_back(id);
        }
    }

    const vocab* vocab_;
    const detail::token_index* index_;
    std::unordered_map<std::string, int, detail::string_hash, std::equal_to<>> ranks_;
};

}  // namespace text
QINFER_NAMESPACE_END
