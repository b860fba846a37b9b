// qinfer/text/unicode.hpp — UTF-8 coding, code point classes and GPT-2's byte-to-unicode map.
//
// Everything here reproduces llama.cpp's unicode.cpp conventions, because token ids depend on
// them: malformed UTF-8 decodes to U+FFFD one byte at a time, "whitespace" is the White_Space
// property (not \p{Z}), and a code point has exactly one major class (letter, number, ...).
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "../core/config.hpp"
#include "../core/error.hpp"
#include "unicode_data.hpp"

QINFER_NAMESPACE_BEGIN
namespace text {

inline constexpr std::uint32_t replacement_char = 0xFFFD;

// Class bits (cpt_class) in the low byte, plus this bit for White_Space: one lookup answers
// every question the pre-tokenizer regexes ask about a code point.
inline constexpr std::uint16_t cpt_whitespace = 0x100;

namespace detail {

// Property lookup for the whole code space. ASCII is hot, so it gets a direct table.
inline std::uint16_t lookup_props(std::uint32_t cpt) noexcept {
    if (cpt >= 0x110000) return cpt_undefined;  // llama.cpp: out of range = undefined
    auto it = std::upper_bound(std::begin(class_ranges), std::end(class_ranges), cpt,
                               [](std::uint32_t c, const class_range& r) { return c < r.first; });
    std::uint16_t p = (it - 1)->cls;
    if (std::binary_search(std::begin(white_space), std::end(white_space), cpt)) p |= cpt_whitespace;
    return p;
}

inline const std::array<std::uint16_t, 128>& ascii_props() noexcept {
    static const std::array<std::uint16_t, 128> table = [] {
        std::array<std::uint16_t, 128> t{};
        for (std::uint32_t c = 0; c < 128; ++c) t[c] = lookup_props(c);
        return t;
    }();
    return table;
}

}  // namespace detail

// Class bits | cpt_whitespace for a code point (values >= 0x110000 are "undefined").
inline std::uint16_t cpt_props(std::uint32_t cpt) noexcept {
    return cpt < 128 ? detail::ascii_props()[cpt] : detail::lookup_props(cpt);
}

inline bool is_whitespace(std::uint32_t cpt) noexcept { return (cpt_props(cpt) & cpt_whitespace) != 0; }

// Simple (one-to-one) lowercase mapping of UnicodeData.txt; unmapped code points map to themselves.
inline std::uint32_t to_lower(std::uint32_t cpt) noexcept {
    if (cpt < 128) return (cpt >= 'A' && cpt <= 'Z') ? cpt + 32 : cpt;
    auto it = std::upper_bound(std::begin(detail::lowercase_runs), std::end(detail::lowercase_runs), cpt,
                               [](std::uint32_t c, const detail::lowercase_run& r) { return c < r.first; });
    if (it == std::begin(detail::lowercase_runs)) return cpt;
    --it;
    if (cpt <= it->last && (cpt - it->first) % it->stride == 0)
        return static_cast<std::uint32_t>(static_cast<std::int64_t>(cpt) + it->delta);
    return cpt;
}

// Length of a UTF-8 sequence from its lead byte, as llama.cpp guesses it (continuation and
// invalid lead bytes count as 1): used to cut text into symbols without validating it.
inline std::size_t utf8_len(char lead) noexcept {
    static constexpr std::uint8_t by_high_nibble[16] = {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 3, 4};
    return by_high_nibble[static_cast<std::uint8_t>(lead) >> 4];
}

// Decodes one code point at `offset` and advances it. A malformed sequence yields U+FFFD and
// advances by one byte. Like llama.cpp, overlong forms and 4-byte leads up to 0xF7 are accepted
// (so the result may exceed 0x10FFFF); only the structure of the sequence is checked.
inline std::uint32_t decode_utf8(std::string_view s, std::size_t& offset) noexcept {
    const auto b = [&](std::size_t i) { return static_cast<std::uint8_t>(s[offset + i]); };
    const auto cont = [&](std::size_t i) { return offset + i < s.size() && (b(i) & 0xC0) == 0x80; };
    const std::uint8_t lead = b(0);
    if (lead < 0x80) { offset += 1; return lead; }
    if ((lead & 0xE0) == 0xC0 && cont(1)) {
        const std::uint32_t c = (std::uint32_t(lead & 0x1F) << 6) | (b(1) & 0x3F);
        offset += 2;
        return c;
    }
    if ((lead & 0xF0) == 0xE0 && cont(1) && cont(2)) {
        const std::uint32_t c = (std::uint32_t(lead & 0x0F) << 12) | (std::uint32_t(b(1) & 0x3F) << 6) | (b(2) & 0x3F);
        offset += 3;
        return c;
    }
    if ((lead & 0xF8) == 0xF0 && cont(1) && cont(2) && cont(3)) {
        const std::uint32_t c = (std::uint32_t(lead & 0x07) << 18) | (std::uint32_t(b(1) & 0x3F) << 12) |
                                (std::uint32_t(b(2) & 0x3F) << 6) | (b(3) & 0x3F);
        offset += 4;
        return c;
    }
    offset += 1;
    return replacement_char;
}

inline std::vector<std::uint32_t> utf8_to_codepoints(std::string_view s) {
    std::vector<std::uint32_t> out;
    out.reserve(s.size());
    for (std::size_t i = 0; i < s.size();) out.push_back(decode_utf8(s, i));
    return out;
}

// Appends the UTF-8 form of a code point; values past U+10FFFF cannot be encoded.
inline void append_utf8(std::string& out, std::uint32_t cpt) {
    if (cpt < 0x80) {
        out.push_back(static_cast<char>(cpt));
    } else if (cpt < 0x800) {
        out.push_back(static_cast<char>(0xC0 | (cpt >> 6)));
        out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
    } else if (cpt < 0x10000) {
        out.push_back(static_cast<char>(0xE0 | (cpt >> 12)));
        out.push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
    } else if (cpt < 0x110000) {
        out.push_back(static_cast<char>(0xF0 | (cpt >> 18)));
        out.push_back(static_cast<char>(0x80 | ((cpt >> 12) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | ((cpt >> 6) & 0x3F)));
        out.push_back(static_cast<char>(0x80 | (cpt & 0x3F)));
    } else {
        throw error("text: code point 0x" + [&] {
            static constexpr char hex[] = "0123456789ABCDEF";
            std::string h;
            for (int sh = 20; sh >= 0; sh -= 4) h.push_back(hex[(cpt >> sh) & 15]);
            return h;
        }() + " is beyond U+10FFFF and has no UTF-8 form (malformed 4-byte sequence in the input)");
    }
}

// GPT-2's reversible byte <-> printable code point map: printable Latin-1 bytes stand for
// themselves, the other 68 bytes are moved to U+0100.. in byte order. Byte-level BPE vocabularies
// spell every token in these code points.
namespace detail {
struct byte_map {
    std::array<std::uint32_t, 256> to_cpt{};
    std::array<std::int16_t, 324> to_byte{};  // indexed by code point < 324, -1 = not a byte
    byte_map() {
        to_byte.fill(-1);
        int next = 256;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
            to_cpt[b] = printable ? static_cast<std::uint32_t>(b) : static_cast<std::uint32_t>(next++);
            to_byte[to_cpt[b]] = static_cast<std::int16_t>(b);
        }
    }
};
inline const byte_map& gpt2_bytes() {
    static const byte_map m;
    return m;
}
}  // namespace detail

inline std::uint32_t byte_to_cpt(std::uint8_t byte) { return detail::gpt2_bytes().to_cpt[byte]; }

// The byte a code point stands for, or -1 if it is not one of the 256.
inline int cpt_to_byte(std::uint32_t cpt) {
    return cpt < detail::gpt2_bytes().to_byte.size() ? detail::gpt2_bytes().to_byte[cpt] : -1;
}

}  // namespace text
QINFER_NAMESPACE_END
