// tests/gguf/support.hpp — helpers shared by the GGUF tests: a raw byte builder for files the
// writer would refuse to produce, error expectations, and a walk over everything a reader
// exposes (so that a file that parses is also safe to use).
#pragma once

#include <doctest/doctest.h>

#include <qinfer/gguf/reader.hpp>
#include <qinfer/gguf/writer.hpp>

#include "skip.hpp"

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <initializer_list>
#include <optional>
#include <random>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace gtest {

namespace gguf = qinfer::gguf;
using bytes = std::vector<std::byte>;

// Little-endian byte builder: the file is spelled out field by field.
struct raw {
    bytes b;

    raw& u8(std::uint8_t v) { b.push_back(std::byte{v}); return *this; }
    raw& u32(std::uint32_t v) { return put(v); }
    raw& i32(std::int32_t v) { return put(v); }
    raw& u64(std::uint64_t v) { return put(v); }
    raw& i64(std::int64_t v) { return put(v); }
    raw& f32(float v) { return put(v); }
    raw& text(std::string_view s) {  // bytes only, no length
        for (char c : s) b.push_back(static_cast<std::byte>(c));
        return *this;
    }
    raw& str(std::string_view s) { return u64(s.size()).text(s); }  // a GGUF string
    raw& zeros(std::size_t n) { b.insert(b.end(), n, std::byte{0}); return *this; }
    raw& pad_to(std::size_t alignment) {
        while (b.size() % alignment) b.push_back(std::byte{0});
        return *this;
    }
    raw& header(std::uint64_t n_tensors, std::uint64_t n_kv, std::uint32_t version = 3) {
        return text("GGUF").u32(version).u64(n_tensors).u64(n_kv);
    }
    // A whole metadata entry: key, type, then the caller appends the value.
    raw& key(std::string_view k, gguf::value_type t) { return str(k).u32(static_cast<std::uint32_t>(t)); }
    // A tensor info with the dims given.
    raw& tensor(std::string_view name, std::initializer_list<std::int64_t> ne, std::uint32_t type, std::uint64_t offset) {
        str(name).u32(static_cast<std::uint32_t>(ne.size()));
        for (std::int64_t d : ne) i64(d);
        return u32(type).u64(offset);
    }
    std::size_t size() const { return b.size(); }

private:
    template <class T> raw& put(T v) {
        unsigned char tmp[sizeof(T)];
        std::memcpy(tmp, &v, sizeof(T));  // tests run on little-endian hosts
        for (unsigned char c : tmp) b.push_back(std::byte{c});
        return *this;
    }
};

inline std::span<const std::byte> view(const bytes& b) { return {b.data(), b.size()}; }

// Everything a consumer might touch: all values decoded generically, every getter tried with
// every type, all tensor bytes read. Returns a checksum so the work cannot be optimised away.
inline std::uint64_t exercise(const gguf::reader& r) {
    std::uint64_t sum = r.version() + r.alignment() + r.data_offset() + r.metadata_count();
    auto visit = [&](auto&& self, const gguf::value& v) -> void {
        sum += static_cast<std::uint64_t>(v.type()) + v.size() + v.type_name().size();
        if (v.is_array()) {
            for (const gguf::value& e : v.elements()) self(self, e);
        } else if (v.type() == gguf::value_type::string) {
            sum += v.as<std::string_view>().size();
        } else {
            sum += v.encoded().size();
        }
    };
    auto try_get = [&]<class T>(std::string_view key) {
        try {
            if (auto x = r.get<T>(key)) sum += 1;
        } catch (const qinfer::error&) {
            sum += 2;
        }
        try {
            if (auto x = r.get_array<T>(key)) sum += x->size();
        } catch (const qinfer::error&) {
            sum += 3;
        }
    };
    for (const gguf::metadata_entry& e : r.metadata()) {
        sum += e.key.size() + e.offset;
        visit(visit, e.value);
        CHECK(r.contains(e.key));
        CHECK(r.type_of(e.key) == e.value.type());
        try_get.template operator()<std::uint8_t>(e.key);
        try_get.template operator()<std::int8_t>(e.key);
        try_get.template operator()<std::uint16_t>(e.key);
        try_get.template operator()<std::int16_t>(e.key);
        try_get.template operator()<std::uint32_t>(e.key);
        try_get.template operator()<std::int32_t>(e.key);
        try_get.template operator()<std::uint64_t>(e.key);
        try_get.template operator()<std::int64_t>(e.key);
        try_get.template operator()<float>(e.key);
        try_get.template operator()<double>(e.key);
        try_get.template operator()<bool>(e.key);
        try_get.template operator()<std::string_view>(e.key);
    }
    for (const gguf::tensor_info& t : r.tensors()) {
        CHECK(r.find_tensor(t.name) == &t);
        for (std::byte x : t.bytes()) sum += std::to_integer<std::uint8_t>(x);
    }
    return sum;
}

inline std::string parse_error(std::span<const std::byte> b, std::string name = "bad.gguf") {
    try {
        (void)gguf::reader::from_memory(b, std::move(name));
    } catch (const qinfer::error& e) {
        return e.what();
    }
    return {};
}

// Where llama.cpp's reference files are; nullopt (after a skip message, a failure in CI) when absent.
using qtest::refdata;

}  // namespace gtest

namespace gtest {

// An array of arrays (which the writer cannot build from C++ values): arr[arr[i32]] holding
// [[1, 2], [], [3]], encoded after the type tag.
inline bytes nested_i32_array() {
    raw v;
    v.u32(static_cast<std::uint32_t>(gguf::value_type::array)).u64(3);
    v.u32(static_cast<std::uint32_t>(gguf::value_type::i32)).u64(2).i32(1).i32(2);
    v.u32(static_cast<std::uint32_t>(gguf::value_type::i32)).u64(0);
    v.u32(static_cast<std::uint32_t>(gguf::value_type::i32)).u64(1).i32(3);
    return v.b;
}

// The fuzzer's seed corpus (tests/fuzz/corpus/), rebuilt here so the committed files can be
// checked against it and regenerated (QINFER_WRITE_FUZZ_SEEDS=dir ./test-gguf).
inline std::vector<std::pair<std::string, bytes>> fuzz_seeds() {
    std::vector<std::pair<std::string, bytes>> seeds;

    {  // every value type, scalars and arrays, plus a nested array
        raw nested;
        nested.header(0, 1).key("test.nested", gguf::value_type::array);
        const bytes arr = nested_i32_array();
        nested.b.insert(nested.b.end(), arr.begin(), arr.end());
        const auto holder = gguf::reader::from_memory(view(nested.b));

        gguf::writer w;
        w.set("general.architecture", "llama");
        w.set("t.u8", std::uint8_t{200});
        w.set("t.i8", std::int8_t{-100});
        w.set("t.u16", std::uint16_t{60000});
        w.set("t.i16", std::int16_t{-30000});
        w.set("t.u32", std::uint32_t{4000000000u});
        w.set("t.i32", std::int32_t{-2000000000});
        w.set("t.f32", 1.5f);
        w.set("t.bool", true);
        w.set("t.u64", std::uint64_t{1} << 60);
        w.set("t.i64", std::int64_t{-1} << 60);
        w.set("t.f64", -0.25);
        w.set("t.arr.u8", std::vector<std::uint8_t>{1, 2});
        w.set("t.arr.i16", std::vector<std::int16_t>{-1, 1});
        w.set("t.arr.i32", std::vector<std::int32_t>{2, 3, 3});
        w.set("t.arr.f32", std::vector<float>{0.5f, -1.0f});
        w.set("t.arr.bool", std::vector<bool>{true, false});
        w.set("t.arr.u64", std::vector<std::uint64_t>{7});
        w.set("t.arr.f64", std::vector<double>{});
        w.set("t.arr.str", std::vector<std::string>{"<unk>", "", "\xe2\x96\x81the"});
        w.set("test.nested", holder.find("test.nested")->value);
        seeds.emplace_back("kv-all-types.gguf", w.bytes());
    }
    {  // a few small tensors of different types, default alignment
        gguf::writer w;
        w.set("general.architecture", "llama");
        w.set("llama.block_count", std::uint32_t{1});
        const std::int64_t a[] = {4, 2}, b[] = {32}, c[] = {3};
        w.add_tensor("a.weight", qinfer::type_id::f32, a, bytes(32, std::byte{0x3f}));
        w.add_tensor("b.weight", qinfer::type_id::q4_0, b, bytes(18, std::byte{0x11}));
        w.add_tensor("c.weight", qinfer::type_id::f16, c, bytes(6, std::byte{0x3c}));
        seeds.emplace_back("tensors-align32.gguf", w.bytes());
    }
    {  // alignment 64 and a 3-d tensor
        gguf::writer w;
        w.set_alignment(64);
        const std::int64_t a[] = {32, 2}, b[] = {1, 2, 3};
        w.add_tensor("q.weight", qinfer::type_id::q8_0, a, bytes(68, std::byte{0x01}));
        w.add_tensor("i.weight", qinfer::type_id::i32, b, bytes(24, std::byte{0x02}));
        seeds.emplace_back("tensors-align64.gguf", w.bytes());
    }
    seeds.emplace_back("empty.gguf", gguf::writer().bytes());
    {  // version 2, no padding after the last string (as gguf-py writes vocab files)
        raw r;
        r.header(0, 2, 2).key("tokenizer.ggml.model", gguf::value_type::string).str("gpt2");
        r.key("tokenizer.ggml.tokens", gguf::value_type::array).u32(8).u64(3).str("a").str("b").str("ab");
        seeds.emplace_back("vocab-v2.gguf", r.b);
    }
    return seeds;
}

}  // namespace gtest

namespace gtest {

// One to three random edits of a file: bit flips, random bytes, "nasty" little-endian values
// written over 4 or 8 bytes (often a length or count), or a cut.
inline bytes mutate(const bytes& original, std::mt19937_64& rng) {
    static constexpr std::uint64_t nasty[] = {
        0, 1, 2, 3, 4, 8, 9, 12, 13, 63, 64, 255, 0x7fff, 0xffff, 0x7fffffff, 0x80000000, 0xffffffff,
        0x100000000ull, 0x7fffffffffffffffull, 0x8000000000000000ull, 0xffffffffffffffffull,
        0x7FFFFFFFFFFFFFC0ull, 1ull << 30, (1ull << 30) + 1};
    bytes b = original;
    const int edits = 1 + static_cast<int>(rng() % 3);
    for (int e = 0; e < edits && !b.empty(); ++e) {
        const std::size_t pos = rng() % b.size();
        switch (rng() % 4) {
            case 0: b[pos] ^= static_cast<std::byte>(1u << (rng() % 8)); break;
            case 1: b[pos] = static_cast<std::byte>(rng()); break;
            case 2: {
                const std::uint64_t v = nasty[rng() % std::size(nasty)];
                const std::size_t width = rng() % 2 ? 8 : 4;
                for (std::size_t i = 0; i < width && pos + i < b.size(); ++i)
                    b[pos + i] = static_cast<std::byte>(v >> (8 * i));
                break;
            }
            default: b.resize(pos); break;
        }
    }
    return b;
}

}  // namespace gtest
