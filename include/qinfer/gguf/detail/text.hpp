// qinfer/gguf/detail/text.hpp — building error messages: concatenation and safe quoting.
#pragma once

#include <concepts>
#include <cstddef>
#include <string>
#include <string_view>

#include "../../core/config.hpp"

QINFER_NAMESPACE_BEGIN
namespace gguf::detail {

inline void append_text(std::string& s, std::string_view v) { s += v; }
inline void append_text(std::string& s, const char* v) { s += v; }
inline void append_text(std::string& s, const std::string& v) { s += v; }
inline void append_text(std::string& s, char c) { s += c; }
template <std::integral T>
    requires(!std::same_as<T, char> && !std::same_as<T, bool>)
inline void append_text(std::string& s, T v) { s += std::to_string(v); }

// cat("found ", n, " bytes") — messages are only built on the failure path.
template <class... A> std::string cat(const A&... parts) {
    std::string s;
    (append_text(s, parts), ...);
    return s;
}

// Untrusted text (keys, names, magic) for a message: quoted, non-printables escaped, and
// cut short so that a hostile 64 KiB key cannot flood a log.
inline std::string quoted(std::string_view s, std::size_t max_chars = 80) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "'";
    for (std::size_t i = 0; i < s.size(); ++i) {
        if (i == max_chars) {
            out += "...' (" + std::to_string(s.size()) + " bytes)";
            return out;
        }
        const auto c = static_cast<unsigned char>(s[i]);
        if (c == '\'' || c == '\\') {
            out += '\\';
            out += static_cast<char>(c);
        } else if (c >= 0x20 && c < 0x7f) {
            out += static_cast<char>(c);
        } else {
            out += "\\x";
            out += hex[c >> 4];
            out += hex[c & 15];
        }
    }
    out += '\'';
    return out;
}

}  // namespace gguf::detail
QINFER_NAMESPACE_END
