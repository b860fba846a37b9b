// Hand-made malformed files, one per family of llama.cpp's tests/test-gguf.cpp (and a few
// more): each must end in qinfer::error whose message names what was expected, the byte
// offset and the key or tensor. Offsets are computed from the builder, not from the reader.
#include "gguf/support.hpp"

#include <cstdint>
#include <limits>

using namespace gtest;
using gguf::value_type;

namespace {

constexpr std::uint32_t f32_id = 0, q4_0_id = 2, q8_0_id = 8, i8_id = 24, i64_id = 27;
constexpr std::uint64_t u64_max = std::numeric_limits<std::uint64_t>::max();

void expect_error(const bytes& b, std::initializer_list<std::string_view> parts) {
    const std::string msg = parse_error(view(b), "bad.gguf");
    CAPTURE(msg);
    REQUIRE_FALSE(msg.empty());
    CHECK(msg.rfind("bad.gguf: ", 0) == 0);
    for (std::string_view p : parts) {
        CAPTURE(p);
        CHECK(msg.find(p) != std::string::npos);
    }
}

std::string at(std::size_t offset) { return "byte offset " + std::to_string(offset) + ","; }
std::string at_end(std::size_t offset) { return "byte offset " + std::to_string(offset) + ":"; }

// A valid file: three metadata entries and two tensors, built field by field. The `mutate`
// hooks let each case replace exactly one field.
struct parts {
    std::uint32_t version = 3;
    std::uint64_t n_tensors = 2, n_kv = 3;
    std::uint32_t t0_type = q8_0_id, t1_type = f32_id;
    std::uint64_t t1_offset = 96;  // 68 bytes of q8_0 padded to 32
    std::string t0_name = "tok.weight", t1_name = "norm.weight";
    std::size_t data_bytes = 96 + 32;
    // byte offsets recorded while building
    std::size_t kv1_at = 0, kv2_at = 0, t0_at = 0, t1_at = 0, t1_offset_at = 0, infos_end = 0;

    bytes build() {
        raw r;
        r.header(n_tensors, n_kv, version);
        r.key("general.architecture", value_type::string).str("llama");
        kv1_at = r.size();
        r.key("test.count", value_type::u32).u32(7);
        kv2_at = r.size();
        r.key("test.tokens", value_type::array).u32(8).u64(2).str("a").str("bc");
        t0_at = r.size();
        r.tensor(t0_name, {32, 2}, t0_type, 0);
        t1_at = r.size();
        r.tensor(t1_name, {8}, t1_type, t1_offset);
        t1_offset_at = r.size() - 8;
        infos_end = r.size();
        r.pad_to(32);
        for (std::size_t i = 0; i < data_bytes; ++i) r.u8(static_cast<std::uint8_t>(i));
        return r.b;
    }
};

}  // namespace

TEST_CASE("malformed: the baseline file is valid") {
    parts p;
    const bytes b = p.build();
    const auto r = gguf::reader::from_memory(view(b));
    CHECK(r.tensors().size() == 2);
    CHECK(r.tensor("norm.weight").offset == 96);
    CHECK(r.get_array<std::string_view>("test.tokens") == std::vector<std::string_view>{"a", "bc"});
}

TEST_CASE("malformed: header") {
    SUBCASE("bad magic") {
        bytes b = parts{}.build();
        b[0] = std::byte{'F'}, b[1] = std::byte{'U'}, b[2] = std::byte{'G'}, b[3] = std::byte{'G'};
        expect_error(b, {"byte offset 0", "expected the magic 'GGUF', found 'FUGG'"});
    }
    SUBCASE("binary magic is escaped") {
        raw r;
        r.u32(0xdeadbeef).u32(3);
        expect_error(r.b, {"found '\\xef\\xbe\\xad\\xde'"});
    }
    SUBCASE("empty and tiny files") {
        expect_error({}, {"byte offset 0", "found a file of only 0 bytes"});
        raw r;
        r.text("GGU");
        expect_error(r.b, {"found a file of only 3 bytes"});
        r.text("F");
        expect_error(r.b, {"byte offset 4", "the version"});
    }
    SUBCASE("version 0") {
        parts p;
        p.version = 0;
        expect_error(p.build(), {"byte offset 4", "header", "found version 0"});
    }
    SUBCASE("version 1") {
        parts p;
        p.version = 1;
        expect_error(p.build(), {"byte offset 4", "found version 1", "no longer supported"});
    }
    SUBCASE("future version") {
        parts p;
        p.version = 4;
        expect_error(p.build(), {"byte offset 4", "found version 4", "newer than this reader supports"});
    }
    SUBCASE("big-endian (byte-swapped) file") {
        parts p;
        p.version = 0x03000000;  // version 3 written big-endian
        expect_error(p.build(), {"byte offset 4", "version 3 byte-swapped", "big-endian"});
    }
    SUBCASE("version 2 is accepted") {
        parts p;
        p.version = 2;
        CHECK(gguf::reader::from_memory(view(p.build())).version() == 2);
    }
    SUBCASE("huge tensor count") {
        parts p;
        p.n_tensors = u64_max;
        expect_error(p.build(), {"byte offset 8", "tensor count", "found 18446744073709551615 (negative as int64)"});
        p.n_tensors = 1000000;
        expect_error(p.build(), {"byte offset 8", "tensor count", "found 1000000"});
    }
    SUBCASE("huge metadata count") {
        parts p;
        p.n_kv = u64_max;
        expect_error(p.build(), {"byte offset 16", "metadata count", "negative as int64"});
        p.n_kv = std::uint64_t{1} << 40;
        expect_error(p.build(), {"byte offset 16", "metadata count", "found 1099511627776"});
    }
    SUBCASE("counts larger than what follows") {
        parts p;
        p.n_kv = 4;  // one more entry than the file has: the tensor infos are misread as one
        const std::string msg = parse_error(view(p.build()));
        CHECK_FALSE(msg.empty());
    }
}

TEST_CASE("malformed: metadata") {
    SUBCASE("bad key size") {
        raw r;
        r.header(0, 1).u64(u64_max).text("abc").zeros(16);
        expect_error(r.b, {"byte offset 24", "metadata entry #0", "a key of at most 65535 bytes, found length 18446744073709551615"});
        raw r2;
        r2.header(0, 2).key("ok", value_type::u8).u8(1).u64(100).text("short");
        expect_error(r2.b, {"byte offset 39", "metadata entry #1", "a key of 100 bytes, found only 5 bytes left"});
    }
    SUBCASE("empty key") {
        raw r;
        r.header(0, 1).key("", value_type::u8).u8(1).zeros(8);
        expect_error(r.b, {"byte offset 24", "non-empty key"});
    }
    SUBCASE("bad value type") {
        raw r;
        r.header(0, 1).key("my.key", static_cast<value_type>(13)).u32(0);
        expect_error(r.b, {"byte offset 38", "key 'my.key'", "value type in 0..12, found 13"});
        raw r2;
        r2.header(0, 1).key("my.key", static_cast<value_type>(0xffffffffu)).u32(0);
        expect_error(r2.b, {"key 'my.key'", "found 4294967295"});
    }
    SUBCASE("bad array element type") {
        raw r;
        r.header(0, 1).key("my.arr", value_type::array).u32(13).u64(0);
        expect_error(r.b, {"byte offset 42", "key 'my.arr'", "array element type in 0..12, found 13"});
    }
    SUBCASE("bad value size: string") {
        raw r;
        r.header(0, 1).key("my.str", value_type::string).u64(u64_max);
        expect_error(r.b, {"byte offset 42", "key 'my.str'", "a string of at most 1073741824 bytes"});
        raw r2;
        r2.header(0, 1).key("my.str", value_type::string).u64(50).text("only this");
        expect_error(r2.b, {"key 'my.str'", "a string of 50 bytes, found only 9 bytes left"});
    }
    SUBCASE("bad value size: scalar cut short") {
        raw r;
        r.header(0, 1).key("my.u64", value_type::u64).u32(1);
        expect_error(r.b, {"byte offset 42", "key 'my.u64'", "expected 8 bytes for a value, found only 4"});
    }
    SUBCASE("bad value size: arrays") {
        raw r;
        r.header(0, 1).key("my.arr", value_type::array).u32(10).u64(std::uint64_t{1} << 40);
        expect_error(r.b, {"byte offset 46", "key 'my.arr'", "array length of at most 1073741824"});
        raw r2;
        r2.header(0, 1).key("my.arr", value_type::array).u32(10).u64(1000).u64(1);
        expect_error(r2.b, {"byte offset 46", "key 'my.arr'", "an array of 1000 u64 elements", "found only 8 bytes"});
        raw r3;  // strings need at least their 8-byte length each
        r3.header(0, 1).key("tokens", value_type::array).u32(8).u64(100000).str("a");
        expect_error(r3.b, {"key 'tokens'", "an array of 100000 str elements"});
        raw r4;  // one string inside the array claims too much
        r4.header(0, 1).key("tokens", value_type::array).u32(8).u64(2).str("a").u64(999).text("b");
        expect_error(r4.b, {"key 'tokens'", "a string of 999 bytes"});
    }
    SUBCASE("arrays nested too deep") {
        raw r;
        r.header(0, 1).key("deep", value_type::array);
        for (int i = 0; i < 9; ++i) r.u32(9).u64(1);
        r.u32(0).u64(0);
        expect_error(r.b, {"key 'deep'", "nested at most 8 deep"});
    }
    SUBCASE("duplicate key") {
        raw r;
        r.header(0, 2).key("test.count", value_type::u32).u32(1);
        const std::size_t second = r.size();
        r.key("test.count", value_type::u32).u32(2);
        expect_error(r.b, {at(second), "key 'test.count'", "unique keys", "first at byte offset 24"});
    }
    SUBCASE("keys with control characters are quoted safely") {
        raw r;
        r.header(0, 1).key(std::string_view("a\nb\0c", 5), static_cast<value_type>(99)).u32(0);
        expect_error(r.b, {"key 'a\\x0ab\\x00c'"});
    }
}

TEST_CASE("malformed: alignment") {
    auto file_with_alignment = [](value_type type, std::uint32_t value) {
        raw r;
        r.header(0, 2).key("a", value_type::u8).u8(0);
        r.key("general.alignment", type).u32(value);
        return r.b;
    };
    expect_error(file_with_alignment(value_type::u32, 13), {"byte offset 38", "key 'general.alignment'", "power of two", "found 13"});
    expect_error(file_with_alignment(value_type::u32, 0), {"key 'general.alignment'", "found 0"});
    expect_error(file_with_alignment(value_type::u32, 1u << 25), {"key 'general.alignment'", "found 33554432"});
    expect_error(file_with_alignment(value_type::i32, 32), {"key 'general.alignment'", "expected type u32, found i32"});
    raw r;
    r.header(0, 1).key("general.alignment", value_type::string).str("32");
    expect_error(r.b, {"key 'general.alignment'", "expected type u32, found str"});
    CHECK(gguf::reader::from_memory(view(file_with_alignment(value_type::u32, 1))).alignment() == 1);
    CHECK(gguf::reader::from_memory(view(file_with_alignment(value_type::u32, 1u << 24))).alignment() == 1u << 24);
}

TEST_CASE("malformed: tensor infos") {
    SUBCASE("bad name size") {
        parts p;
        p.t1_name = std::string(64, 'n');
        {
            const bytes b = p.build();  // first: it records the offsets read below
            expect_error(b, {at(p.t1_at), "tensor info #1", "a tensor name of at most 63 bytes, found length 64"});
        }
        raw r;
        r.header(1, 0).u64(u64_max).zeros(64);
        expect_error(r.b, {"byte offset 24", "tensor info #0", "found length 18446744073709551615"});
    }
    SUBCASE("empty name") {
        parts p;
        p.t0_name = "";
        expect_error(p.build(), {"tensor info #0", "non-empty tensor name"});
    }
    SUBCASE("NUL inside a tensor name") {
        parts p;
        p.t1_name = std::string("norm\0x", 6);
        expect_error(p.build(), {"tensor info #1", "without NUL bytes, found one at position 4 of 'norm\\x00x'"});
    }
    SUBCASE("duplicate tensor name") {
        parts p;
        p.t1_name = p.t0_name;
        {
            const bytes b = p.build();  // first: it records the offsets read below
            expect_error(b, {at(p.t1_at), "tensor 'tok.weight'", "unique tensor names", "first was tensor #0"});
        }
    }
    auto one_tensor = [](std::string_view name, std::initializer_list<std::int64_t> ne, std::uint32_t type,
                         std::uint32_t n_dims_override = 0) {
        raw r;
        r.header(1, 0).str(name).u32(n_dims_override ? n_dims_override : static_cast<std::uint32_t>(ne.size()));
        for (auto d : ne) r.i64(d);
        r.u32(type).u64(0).pad_to(32).zeros(256);
        return r.b;
    };
    const std::size_t dims_at = 24 + 8 + 5;  // header, name length, "w.0.x"
    SUBCASE("bad n_dims") {
        expect_error(one_tensor("w.0.x", {1, 1, 1, 1, 1}, f32_id), {at(dims_at), "tensor 'w.0.x'", "1 to 4 dimensions, found 5"});
        expect_error(one_tensor("w.0.x", {}, f32_id), {at(dims_at), "tensor 'w.0.x'", "found 0"});
        expect_error(one_tensor("w.0.x", {4}, f32_id, 0xffffffffu), {"tensor 'w.0.x'", "found 4294967295"});
    }
    SUBCASE("bad shape: negative and zero dimensions") {
        expect_error(one_tensor("w.0.x", {-1}, f32_id), {at(dims_at + 4), "tensor 'w.0.x'", "dimension 0 to be at least 1, found -1"});
        expect_error(one_tensor("w.0.x", {4, 0}, f32_id), {at(dims_at + 12), "tensor 'w.0.x'", "dimension 1 to be at least 1, found 0"});
    }
    SUBCASE("element count too big") {
        const std::int64_t big = 4 * std::int64_t{std::numeric_limits<std::int32_t>::max()};
        expect_error(one_tensor("w.0.x", {big, big, big, big}, f32_id),
                     {at(dims_at + 12), "tensor 'w.0.x'", "element count that fits in int64"});
    }
    SUBCASE("byte size too big") {
        const std::int64_t d = std::int64_t{1} << 31;  // 2^62 elements of 8 bytes
        expect_error(one_tensor("w.0.x", {d, d}, i64_id), {"tensor 'w.0.x'", "byte size that fits in 64 bits"});
    }
    SUBCASE("bad type") {
        const std::size_t type_at = dims_at + 4 + 8;
        expect_error(one_tensor("w.0.x", {4}, 43), {at(type_at), "tensor 'w.0.x'", "known ggml type id, found 43"});
        expect_error(one_tensor("w.0.x", {4}, 4), {"found 4 (an id ggml removed)"});
        expect_error(one_tensor("w.0.x", {4}, 31), {"found 31 (an id ggml removed)"});
        expect_error(one_tensor("w.0.x", {4}, 0xffffffffu), {"found 4294967295 (-1 as int32)"});
    }
    SUBCASE("row length not a multiple of the block size") {
        expect_error(one_tensor("w.0.x", {33, 2}, q4_0_id), {at(dims_at), "tensor 'w.0.x'", "multiple of q4_0's block size 32, found 33"});
    }
}

TEST_CASE("malformed: tensor data") {
    SUBCASE("bad offset") {
        parts p;
        p.t1_offset = u64_max;
        {
            const bytes b = p.build();  // first: it records the offsets read below
            expect_error(b, {at(p.t1_offset_at), "tensor 'norm.weight'", "multiple of the alignment 32, found 18446744073709551615"});
        }
        p.t1_offset = std::uint64_t{1} << 40;
        {
            const bytes b = p.build();  // first: it records the offsets read below
            expect_error(b, {at(p.t1_offset_at), "tensor 'norm.weight'", "expected data offset 96", "found 1099511627776"});
        }
        p.t1_offset = 0;  // overlaps the first tensor
        expect_error(p.build(), {"tensor 'norm.weight'", "expected data offset 96", "found 0"});
    }
    SUBCASE("inconsistent alignment: offsets packed as if alignment were 1") {
        parts p;
        p.t1_offset = 68;
        {
            const bytes b = p.build();  // first: it records the offsets read below
            expect_error(b, {at(p.t1_offset_at), "tensor 'norm.weight'", "multiple of the alignment 32, found 68"});
        }
    }
    SUBCASE("not enough data") {
        parts p;
        p.data_bytes = 96 + 31;
        const bytes b = p.build();
        const std::size_t data_start = b.size() - p.data_bytes;
        expect_error(b, {at(p.t1_offset_at), "tensor 'norm.weight'",
                         "expected 32 bytes of data at byte offset " + std::to_string(data_start + 96),
                         "found only 31 bytes"});
    }
    SUBCASE("no data section at all") {
        parts p;
        bytes b = p.build();
        b.resize(p.infos_end);  // not even the padding
        expect_error(b, {at_end(p.infos_end), "expected the data section at byte offset " + std::to_string(p.infos_end + 32 - p.infos_end % 32)});
    }
    SUBCASE("sizes that would overflow an allocator (llama.cpp's MEM_SIZE_OVERFLOW)") {
        raw r;
        const std::int64_t huge = 0x7FFFFFFFFFFFFFC0;
        r.header(2, 0).tensor("a", {huge}, i8_id, 0).tensor("b", {huge}, i8_id, static_cast<std::uint64_t>(huge));
        r.pad_to(32).zeros(32);
        expect_error(r.b, {"tensor 'a'", "expected 9223372036854775744 bytes of data", "found only 32 bytes"});
    }
}
