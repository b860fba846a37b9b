// gguf-dump — prints a GGUF file's metadata and tensor table (like llama.cpp's gguf-dump).
//
//   gguf-dump [--json] [--no-tensors] [--full] FILE
//
// Long arrays are abbreviated to their first elements and a count unless --full is given.
// A malformed file is reported with the reader's message and exit status 1.
#include <qinfer/gguf/reader.hpp>

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace gguf = qinfer::gguf;

namespace {

struct options {
    bool json = false;
    bool tensors = true;
    bool full = false;
    std::string file;
};

constexpr std::size_t shown_elements = 6;  // as llama.cpp's gguf-dump
constexpr std::size_t shown_chars = 60;

void usage(std::FILE* to) {
    std::fputs(
        "usage: gguf-dump [--json] [--no-tensors] [--full] FILE\n"
        "\n"
        "Prints the metadata and the tensor table of a GGUF file.\n"
        "\n"
        "  --json         JSON instead of text\n"
        "  --no-tensors   metadata only\n"
        "  --full         print arrays and strings in full (default: first 6 elements, 60 characters)\n"
        "  -h, --help     this help\n"
        "\n"
        "Exit status: 0 on success, 1 if the file cannot be read or is malformed, 2 on bad usage.\n",
        to);
}

// Length of the valid UTF-8 sequence at s[i], or 0 if the bytes there are not one.
std::size_t utf8_length(std::string_view s, std::size_t i) {
    const auto b = [&](std::size_t k) { return static_cast<unsigned char>(s[k]); };
    const unsigned char c = b(i);
    std::size_t n;
    std::uint32_t cp;
    if (c < 0x80) return 1;
    if ((c & 0xe0) == 0xc0) n = 2, cp = c & 0x1f;
    else if ((c & 0xf0) == 0xe0) n = 3, cp = c & 0x0f;
    else if ((c & 0xf8) == 0xf0) n = 4, cp = c & 0x07;
    else return 0;
    if (i + n > s.size()) return 0;
    for (std::size_t k = 1; k < n; ++k) {
        if ((b(i + k) & 0xc0) != 0x80) return 0;
        cp = (cp << 6) | (b(i + k) & 0x3f);
    }
    const std::uint32_t min_cp[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < min_cp[n] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;  // overlong, surrogate
    return n;
}

void append_hex_byte(std::string& out, unsigned char c) {
    static constexpr char hex[] = "0123456789abcdef";
    out += "\\x";
    out += hex[c >> 4];
    out += hex[c & 15];
}

// Python-repr-like: 'text', control bytes and invalid UTF-8 escaped, cut at `max_chars`.
std::string text_string(std::string_view s, std::size_t max_chars, bool quotes = true) {
    std::string out = quotes ? "'" : "";
    std::size_t chars = 0;
    for (std::size_t i = 0; i < s.size(); ++chars) {
        if (chars == max_chars) {
            out += "...";
            break;
        }
        const auto c = static_cast<unsigned char>(s[i]);
        const std::size_t n = utf8_length(s, i);
        if (c == '\\' || c == '\'') out += '\\', out += static_cast<char>(c);
        else if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c < 0x20 || c == 0x7f || n == 0) append_hex_byte(out, c);
        else out.append(s.substr(i, n));
        i += n ? n : 1;
    }
    return quotes ? out + "'" : out;
}

// A JSON string; invalid UTF-8 bytes become U+FFFD so the output stays valid JSON.
std::string json_string(std::string_view s, std::size_t max_chars) {
    static constexpr char hex[] = "0123456789abcdef";
    std::string out = "\"";
    std::size_t chars = 0;
    for (std::size_t i = 0; i < s.size(); ++chars) {
        if (chars == max_chars) {
            out += "...";
            break;
        }
        const auto c = static_cast<unsigned char>(s[i]);
        const std::size_t n = utf8_length(s, i);
        if (c == '"' || c == '\\') out += '\\', out += static_cast<char>(c);
        else if (c == '\n') out += "\\n";
        else if (c == '\t') out += "\\t";
        else if (c == '\r') out += "\\r";
        else if (c < 0x20) out += "\\u00", out += hex[c >> 4], out += hex[c & 15];
        else if (n == 0) out += "\xef\xbf\xbd";
        else out.append(s.substr(i, n));
        i += n ? n : 1;
    }
    return out + "\"";
}

template <class F> std::string float_text(F v, bool json) {
    if (!std::isfinite(v)) return json ? "null" : (std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf"));
    char buf[64];
    const auto r = std::to_chars(buf, buf + sizeof buf, v);  // shortest text that reads back exactly
    return std::string(buf, r.ptr);
}

std::string scalar_text(const gguf::value& v, bool json, std::size_t max_chars) {
    using vt = gguf::value_type;
    switch (v.type()) {
        case vt::u8: return std::to_string(v.as<std::uint8_t>());
        case vt::i8: return std::to_string(v.as<std::int8_t>());
        case vt::u16: return std::to_string(v.as<std::uint16_t>());
        case vt::i16: return std::to_string(v.as<std::int16_t>());
        case vt::u32: return std::to_string(v.as<std::uint32_t>());
        case vt::i32: return std::to_string(v.as<std::int32_t>());
        case vt::u64: return std::to_string(v.as<std::uint64_t>());
        case vt::i64: return std::to_string(v.as<std::int64_t>());
        case vt::f32: return float_text(v.as<float>(), json);
        case vt::f64: return float_text(v.as<double>(), json);
        case vt::boolean: return v.as<bool>() ? (json ? "true" : "True") : (json ? "false" : "False");
        case vt::string: {
            const auto s = v.as<std::string_view>();
            return json ? json_string(s, max_chars) : text_string(s, max_chars);
        }
        case vt::array: break;
    }
    return "?";
}

std::string value_text(const gguf::value& v, const options& opt) {
    const std::size_t max_chars = opt.full ? SIZE_MAX : shown_chars;
    if (!v.is_array()) return scalar_text(v, opt.json, max_chars);
    std::string out = "[";
    std::size_t i = 0;
    for (const gguf::value& e : v.elements()) {
        if (!opt.full && i == shown_elements) {
            // text: "..." like llama.cpp's dump; JSON keeps valid syntax, "count" says the rest
            if (!opt.json) out += ", ...";
            break;
        }
        if (i++) out += ", ";
        out += value_text(e, opt);
    }
    return out + "]";
}

std::string shape_text(const gguf::tensor_info& t) {
    std::string s = "[";
    for (int d = 0; d < t.n_dims; ++d) s += (d ? ", " : "") + std::to_string(t.ne[static_cast<std::size_t>(d)]);
    return s + "]";
}

std::string padded(std::string s, std::size_t width, bool right) {
    if (s.size() >= width) return s;
    return right ? std::string(width - s.size(), ' ') + s : s + std::string(width - s.size(), ' ');
}

std::string dump_text(const gguf::reader& r, const options& opt) {
    std::string out;
    out += "* File: " + r.path() + "\n";
    out += "* GGUF v" + std::to_string(r.version()) + ", little-endian, " + std::to_string(r.file_bytes().size()) +
           " bytes, alignment " + std::to_string(r.alignment()) + ", tensor data at byte offset " +
           std::to_string(r.data_offset()) + "\n";
    out += "* Dumping " + std::to_string(r.metadata_count()) + " key/value pair(s)\n";
    std::size_t n = 0;
    for (const gguf::metadata_entry& e : r.metadata()) {
        // llama.cpp's style: arrays as [type], then the element count
        std::string type = e.value.is_array()
                               ? "[" + std::string(gguf::value_type_name(e.value.element_type())) + "]"
                               : std::string(gguf::value_type_name(e.value.type()));
        out += "  " + padded(std::to_string(++n), 5, true) + ": " + padded(type, 10, false) + " | " +
               padded(std::to_string(e.value.size()), 8, true) + " | " + text_string(e.key, SIZE_MAX, false) +
               " = " + value_text(e.value, opt) + "\n";
    }
    if (!opt.tensors) return out;
    out += "* Dumping " + std::to_string(r.tensors().size()) + " tensor(s)\n";
    if (r.tensors().empty()) return out;
    std::size_t shape_width = 5;
    for (const gguf::tensor_info& t : r.tensors()) shape_width = std::max(shape_width, shape_text(t).size());
    out += "  " + padded("#", 5, true) + "  " + padded("type", 7, false) + " | " + padded("shape", shape_width, false) +
           " | " + padded("offset", 12, true) + " | " + padded("bytes", 12, true) + " | name\n";
    n = 0;
    for (const gguf::tensor_info& t : r.tensors()) {
        out += "  " + padded(std::to_string(++n), 5, true) + ": " +
               padded(std::string(qinfer::type_name(t.type)), 7, false) + " | " +
               padded(shape_text(t), shape_width, false) + " | " + padded(std::to_string(t.offset), 12, true) +
               " | " + padded(std::to_string(t.n_bytes), 12, true) + " | " + text_string(t.name, SIZE_MAX, false) +
               "\n";
    }
    return out;
}

std::string dump_json(const gguf::reader& r, const options& opt) {
    const std::size_t max_chars = SIZE_MAX;  // keys and names are never cut
    std::string out = "{\"filename\": " + json_string(r.path(), max_chars) +
                      ", \"version\": " + std::to_string(r.version()) + ", \"endian\": \"LITTLE\"" +
                      ", \"size\": " + std::to_string(r.file_bytes().size()) +
                      ", \"alignment\": " + std::to_string(r.alignment()) +
                      ", \"data_offset\": " + std::to_string(r.data_offset()) + ", \"metadata\": {";
    std::size_t i = 0;
    for (const gguf::metadata_entry& e : r.metadata()) {
        out += (i ? ", " : "") + json_string(e.key, max_chars) + ": {\"index\": " + std::to_string(i) +
               ", \"type\": " + json_string(e.value.type_name(), max_chars) +
               ", \"offset\": " + std::to_string(e.offset);
        if (e.value.is_array()) {
            out += ", \"count\": " + std::to_string(e.value.size());
            if (!opt.full && e.value.size() > shown_elements) out += ", \"truncated\": true";
        }
        out += ", \"value\": " + value_text(e.value, opt) + "}";
        ++i;
    }
    out += "}";
    if (opt.tensors) {
        out += ", \"tensors\": {";
        i = 0;
        for (const gguf::tensor_info& t : r.tensors()) {
            out += (i ? ", " : "") + json_string(t.name, max_chars) + ": {\"index\": " + std::to_string(i) +
                   ", \"type\": \"" + std::string(qinfer::type_name(t.type)) + "\", \"shape\": " + shape_text(t) +
                   ", \"offset\": " + std::to_string(t.offset) + ", \"n_bytes\": " + std::to_string(t.n_bytes) +
                   ", \"n_elements\": " + std::to_string(t.n_elements) + "}";
            ++i;
        }
        out += "}";
    }
    return out + "}\n";
}

}  // namespace

int main(int argc, char** argv) {
    options opt;
    for (int i = 1; i < argc; ++i) {
        const std::string_view a = argv[i];
        if (a == "-h" || a == "--help") {
            usage(stdout);
            return 0;
        } else if (a == "--json") {
            opt.json = true;
        } else if (a == "--no-tensors") {
            opt.tensors = false;
        } else if (a == "--full") {
            opt.full = true;
        } else if (!a.empty() && a[0] == '-' && a != "-") {
            std::fprintf(stderr, "gguf-dump: unknown option '%s'\n", argv[i]);
            usage(stderr);
            return 2;
        } else if (opt.file.empty()) {
            opt.file = a;
        } else {
            std::fprintf(stderr, "gguf-dump: more than one file given\n");
            usage(stderr);
            return 2;
        }
    }
    if (opt.file.empty()) {
        usage(stderr);
        return 2;
    }
    try {
        const gguf::reader r(opt.file == "-" ? std::string("/dev/stdin") : opt.file);
        const std::string out = opt.json ? dump_json(r, opt) : dump_text(r, opt);
        std::fwrite(out.data(), 1, out.size(), stdout);
        return std::fflush(stdout) == 0 ? 0 : 1;
    } catch (const qinfer::error& e) {
        std::fprintf(stderr, "gguf-dump: %s\n", e.what());
        return 1;
    } catch (const std::exception& e) {  // e.g. out of memory
        std::fprintf(stderr, "gguf-dump: %s\n", e.what());
        return 1;
    }
}
