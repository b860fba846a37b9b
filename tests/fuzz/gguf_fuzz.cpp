// tests/fuzz/gguf_fuzz.cpp — libFuzzer target for the GGUF reader (run by scripts/fuzz-gguf.sh).
//
// Any input must either be rejected with qinfer::error or parse into something that is safe
// to use in full. A file that parses is also copied through the writer and read again: the
// copy must be accepted and hold the same metadata and tensors (the writer and the reader
// agree on what a valid file is). Anything else traps, which libFuzzer reports.
#include <qinfer/gguf/reader.hpp>
#include <qinfer/gguf/writer.hpp>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <optional>
#include <span>
#include <string>
#include <vector>

namespace {

namespace gguf = qinfer::gguf;

[[noreturn]] void finding(const char* what, const std::string& detail = {}) {
    std::fprintf(stderr, "gguf_fuzz finding: %s %s\n", what, detail.c_str());
    __builtin_trap();
}

void check(bool ok, const char* what) {
    if (!ok) finding(what);
}

// Decodes every value, element by element, however deeply nested.
std::uint64_t visit(const gguf::value& v) {
    std::uint64_t sum = static_cast<std::uint64_t>(v.type()) + v.type_name().size();
    if (v.is_array()) {
        std::uint64_t n = 0;
        for (const gguf::value& e : v.elements()) {
            sum += visit(e);
            ++n;
        }
        check(n == v.size(), "array walk count differs from its stored size");
    } else if (v.type() == gguf::value_type::string) {
        sum += v.as<std::string_view>().size();
    } else {
        for (std::byte b : v.encoded()) sum += std::to_integer<unsigned>(b);
    }
    return sum;
}

template <class T> std::uint64_t try_get(const gguf::reader& r, std::string_view key) {
    std::uint64_t sum = 0;
    try {
        if (auto v = r.get<T>(key)) sum += 1;
    } catch (const qinfer::error&) {
        sum += 2;
    }
    try {
        if (auto v = r.get_array<T>(key)) sum += v->size();
    } catch (const qinfer::error&) {
        sum += 3;
    }
    return sum;
}

std::uint64_t use_everything(const gguf::reader& r) {
    std::uint64_t sum = r.version() + r.alignment() + r.data_offset();
    for (const gguf::metadata_entry& e : r.metadata()) {
        sum += visit(e.value);
        check(r.find(e.key) == &e, "find() does not return the entry");
        sum += try_get<std::uint8_t>(r, e.key) + try_get<std::int8_t>(r, e.key) + try_get<std::uint16_t>(r, e.key) +
               try_get<std::int16_t>(r, e.key) + try_get<std::uint32_t>(r, e.key) + try_get<std::int32_t>(r, e.key) +
               try_get<std::uint64_t>(r, e.key) + try_get<std::int64_t>(r, e.key) + try_get<float>(r, e.key) +
               try_get<double>(r, e.key) + try_get<bool>(r, e.key) + try_get<std::string_view>(r, e.key);
    }
    const auto file = r.file_bytes();
    for (const gguf::tensor_info& t : r.tensors()) {
        check(r.find_tensor(t.name) == &t, "find_tensor() does not return the tensor");
        check(t.n_bytes > 0 && t.data >= file.data() && t.data + t.n_bytes <= file.data() + file.size(),
              "tensor data outside the file");
        // first and last byte: ASan flags either if the view were wrong
        sum += std::to_integer<unsigned>(t.data[0]) + std::to_integer<unsigned>(t.data[t.n_bytes - 1]);
    }
    return sum;
}

void round_trip(const gguf::reader& r) {
    gguf::writer w;
    std::vector<std::byte> copy;
    try {
        for (const gguf::metadata_entry& e : r.metadata()) w.set(std::string(e.key), e.value);
        for (const gguf::tensor_info& t : r.tensors())
            w.add_tensor(t.name, t.type, std::span(t.ne.data(), static_cast<std::size_t>(t.n_dims)), t.bytes());
        copy = w.bytes();
    } catch (const qinfer::error& e) {
        finding("the writer refused what the reader accepted:", e.what());
    }
    std::optional<gguf::reader> again;
    try {
        again.emplace(gguf::reader::from_memory(copy, "copy"));
    } catch (const qinfer::error& e) {
        finding("the reader refused the writer's copy:", e.what());
    }
    check(again->metadata_count() == r.metadata_count(), "metadata count changed");
    for (std::size_t i = 0; i < r.metadata_count(); ++i) {
        const auto& a = r.metadata()[i];
        const auto& b = again->metadata()[i];
        const auto ea = a.value.encoded(), eb = b.value.encoded();
        check(a.key == b.key && a.value.type() == b.value.type() && ea.size() == eb.size() &&
                  (ea.empty() || std::memcmp(ea.data(), eb.data(), ea.size()) == 0),
              "metadata entry changed");
    }
    check(again->alignment() == r.alignment(), "alignment changed");
    check(again->tensors().size() == r.tensors().size(), "tensor count changed");
    for (std::size_t i = 0; i < r.tensors().size(); ++i) {
        const auto& a = r.tensors()[i];
        const auto& b = again->tensors()[i];
        check(a.name == b.name && a.type == b.type && a.n_dims == b.n_dims && a.ne == b.ne &&
                  a.offset == b.offset && a.n_bytes == b.n_bytes && std::memcmp(a.data, b.data, a.n_bytes) == 0,
              "tensor changed");
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    const std::span<const std::byte> bytes(reinterpret_cast<const std::byte*>(data), size);
    std::optional<gguf::reader> r;
    try {
        r.emplace(gguf::reader::from_memory(bytes, "fuzz-input"));
    } catch (const qinfer::error&) {
        return 0;  // rejected cleanly: the expected outcome for most inputs
    }
    volatile std::uint64_t sink = use_everything(*r);
    (void)sink;
    round_trip(*r);
    return 0;
}
