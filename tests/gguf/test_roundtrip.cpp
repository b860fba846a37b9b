// Writer -> reader round trips for every value type, arrays of each, string arrays, nested
// arrays and tensors at several alignments; the typed getters' error messages.
#include "gguf/support.hpp"

#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

using namespace gtest;
using gguf::value_type;
using qinfer::type_id;

namespace {

template <class T> void check_scalar_roundtrip(T v, value_type expected_type) {
    CAPTURE(gguf::value_type_name(expected_type));
    gguf::writer w;
    w.set("k", v);
    const bytes b = w.bytes();
    const auto r = gguf::reader::from_memory(view(b));
    CHECK(r.type_of("k") == expected_type);
    const auto got = r.get<T>("k");
    REQUIRE(got.has_value());
    if constexpr (std::is_floating_point_v<T>)
        CHECK(std::bit_cast<std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>(*got) ==
              std::bit_cast<std::conditional_t<sizeof(T) == 4, std::uint32_t, std::uint64_t>>(v));
    else
        CHECK(*got == v);
}

template <class T> void check_array_roundtrip(const std::vector<T>& v, value_type element) {
    CAPTURE(gguf::value_type_name(element));
    gguf::writer w;
    w.set("arr", v);
    w.set("after", std::uint8_t{42});  // the array's length must be consumed exactly
    const bytes b = w.bytes();
    const auto r = gguf::reader::from_memory(view(b));
    REQUIRE(r.type_of("arr") == value_type::array);
    const gguf::value& val = r.find("arr")->value;
    CHECK(val.element_type() == element);
    CHECK(val.size() == v.size());
    const auto got = r.get_array<T>("arr");
    REQUIRE(got.has_value());
    REQUIRE(got->size() == v.size());
    for (std::size_t i = 0; i < v.size(); ++i) {
        if constexpr (std::is_floating_point_v<T>)
            CHECK(std::memcmp(&(*got)[i], &v[i], sizeof(T)) == 0);
        else
            CHECK((*got)[i] == v[i]);
    }
    CHECK(r.get<std::uint8_t>("after") == 42);
    // the generic element walk agrees with the typed one
    std::size_t n = 0;
    for (const gguf::value& e : val.elements()) {
        CHECK(e.type() == element);
        if constexpr (!std::is_floating_point_v<T>) CHECK(e.as<T>() == v[n]);
        ++n;
    }
    CHECK(n == v.size());
}

}  // namespace

TEST_CASE("round trip: every scalar type, including extremes") {
    using L8 = std::numeric_limits<std::int8_t>;
    check_scalar_roundtrip<std::uint8_t>(0, value_type::u8);
    check_scalar_roundtrip<std::uint8_t>(255, value_type::u8);
    check_scalar_roundtrip<std::int8_t>(L8::min(), value_type::i8);
    check_scalar_roundtrip<std::int8_t>(L8::max(), value_type::i8);
    check_scalar_roundtrip<std::uint16_t>(65535, value_type::u16);
    check_scalar_roundtrip<std::int16_t>(-32768, value_type::i16);
    check_scalar_roundtrip<std::uint32_t>(4294967295u, value_type::u32);
    check_scalar_roundtrip<std::int32_t>(std::numeric_limits<std::int32_t>::min(), value_type::i32);
    check_scalar_roundtrip<std::uint64_t>(std::numeric_limits<std::uint64_t>::max(), value_type::u64);
    check_scalar_roundtrip<std::int64_t>(std::numeric_limits<std::int64_t>::min(), value_type::i64);
    check_scalar_roundtrip<float>(-0.0f, value_type::f32);
    check_scalar_roundtrip<float>(1e-5f, value_type::f32);
    check_scalar_roundtrip<float>(std::numeric_limits<float>::denorm_min(), value_type::f32);
    check_scalar_roundtrip<float>(std::numeric_limits<float>::infinity(), value_type::f32);
    check_scalar_roundtrip<float>(std::bit_cast<float>(0x7fc01234u), value_type::f32);  // NaN payload kept
    check_scalar_roundtrip<double>(-1e300, value_type::f64);
    check_scalar_roundtrip<double>(std::bit_cast<double>(0x7ff0000000000001ull), value_type::f64);
    check_scalar_roundtrip<bool>(true, value_type::boolean);
    check_scalar_roundtrip<bool>(false, value_type::boolean);
}

TEST_CASE("round trip: strings, including empty, embedded NUL and non-ASCII") {
    gguf::writer w;
    w.set("s.empty", "");
    w.set("s.nul", std::string_view("a\0b", 3));
    w.set("s.utf8", std::string("\xe2\x96\x81hello \xf0\x9f\xa6\x99"));
    const bytes b = w.bytes();
    const auto r = gguf::reader::from_memory(view(b));
    CHECK(r.get<std::string_view>("s.empty") == "");
    CHECK(r.get<std::string_view>("s.nul") == std::string_view("a\0b", 3));
    CHECK(r.get<std::string>("s.utf8") == "\xe2\x96\x81hello \xf0\x9f\xa6\x99");
    // string_view results point into the buffer, not into a copy
    const std::string_view v = *r.get<std::string_view>("s.utf8");
    CHECK(reinterpret_cast<const std::byte*>(v.data()) >= b.data());
    CHECK(reinterpret_cast<const std::byte*>(v.data()) < b.data() + b.size());
}

TEST_CASE("round trip: arrays of every element type") {
    check_array_roundtrip<std::uint8_t>({0, 1, 255}, value_type::u8);
    check_array_roundtrip<std::int8_t>({-128, 0, 127}, value_type::i8);
    check_array_roundtrip<std::uint16_t>({1, 65535}, value_type::u16);
    check_array_roundtrip<std::int16_t>({-32768, 5}, value_type::i16);
    check_array_roundtrip<std::uint32_t>({7, 4294967295u}, value_type::u32);
    check_array_roundtrip<std::int32_t>({-1, 2, 3, 6, 6}, value_type::i32);
    check_array_roundtrip<std::uint64_t>({std::uint64_t{1} << 63}, value_type::u64);
    check_array_roundtrip<std::int64_t>({-5, std::numeric_limits<std::int64_t>::max()}, value_type::i64);
    check_array_roundtrip<float>({0.0f, -251.0f, 1e-5f}, value_type::f32);
    check_array_roundtrip<double>({0.1, -0.0}, value_type::f64);
    check_array_roundtrip<bool>({true, false, true}, value_type::boolean);
    check_array_roundtrip<std::int32_t>({}, value_type::i32);  // empty
    check_array_roundtrip<float>({}, value_type::f32);
}

TEST_CASE("round trip: arrays of strings") {
    const std::vector<std::string> tokens = {"<unk>", "<s>", "", "\xe2\x96\x81the", std::string("x\0y", 3)};
    gguf::writer w;
    w.set("tokenizer.ggml.tokens", tokens);
    const std::vector<std::string_view> views = {"a b", "c d"};
    w.set("tokenizer.ggml.merges", views);
    w.set("empty", std::vector<std::string>{});
    const bytes b = w.bytes();
    const auto r = gguf::reader::from_memory(view(b));
    const auto got = r.get_array<std::string_view>("tokenizer.ggml.tokens");
    REQUIRE(got.has_value());
    REQUIRE(got->size() == tokens.size());
    for (std::size_t i = 0; i < tokens.size(); ++i) CHECK((*got)[i] == tokens[i]);
    CHECK(r.get_array<std::string>("tokenizer.ggml.merges") == std::vector<std::string>{"a b", "c d"});
    CHECK(r.get_array<std::string_view>("empty")->empty());
    CHECK(r.find("empty")->value.type_name() == "arr[str]");
}

TEST_CASE("nested arrays: parsed, walkable, refused by typed getters, copied by the writer") {
    raw f;
    f.header(0, 2).key("nested", value_type::array);
    const bytes arr = nested_i32_array();
    f.b.insert(f.b.end(), arr.begin(), arr.end());
    f.key("after", value_type::string).str("ok");
    const auto r = gguf::reader::from_memory(view(f.b), "nested.gguf");
    CHECK(r.get<std::string_view>("after") == "ok");
    const gguf::value& v = r.find("nested")->value;
    CHECK(v.type_name() == "arr[arr]");
    CHECK(v.size() == 3);
    std::vector<std::vector<std::int32_t>> inner;
    for (const gguf::value& e : v.elements()) inner.push_back(e.as_array<std::int32_t>());
    CHECK(inner == std::vector<std::vector<std::int32_t>>{{1, 2}, {}, {3}});
    const std::string msg = [&] {
        try {
            (void)r.get_array<std::int32_t>("nested");
        } catch (const qinfer::error& e) {
            return std::string(e.what());
        }
        return std::string();
    }();
    CHECK(msg.find("expected type arr[i32], found arr[arr]") != std::string::npos);

    gguf::writer w;
    w.set("nested", v);
    const bytes b = w.bytes();
    const auto r2 = gguf::reader::from_memory(view(b));
    const auto enc1 = v.encoded();
    const auto enc2 = r2.find("nested")->value.encoded();
    REQUIRE(enc1.size() == enc2.size());
    CHECK(std::memcmp(enc1.data(), enc2.data(), enc1.size()) == 0);
}

TEST_CASE("typed getters name the key, the expected and the found type") {
    gguf::writer w;
    w.set("general.architecture", "llama");
    w.set("llama.block_count", std::uint32_t{5});
    w.set("llama.eps", 1e-5f);
    w.set("tokens", std::vector<std::string>{"a"});
    w.set("ids", std::vector<std::uint32_t>{1});
    const bytes b = w.bytes();
    const auto r = gguf::reader::from_memory(view(b), "model.gguf");

    auto message_of = [](auto&& f) -> std::string {
        try {
            f();
        } catch (const qinfer::error& e) {
            return e.what();
        }
        return "(no error)";
    };
    const std::string m1 = message_of([&] { (void)r.get<std::int32_t>("llama.block_count"); });
    CHECK(m1.find("model.gguf") != std::string::npos);
    CHECK(m1.find("key 'llama.block_count'") != std::string::npos);
    CHECK(m1.find("expected type i32, found u32") != std::string::npos);
    CHECK(m1.find("byte offset " + std::to_string(r.find("llama.block_count")->offset)) != std::string::npos);

    CHECK(message_of([&] { (void)r.get<double>("llama.eps"); }).find("expected type f64, found f32") != std::string::npos);
    CHECK(message_of([&] { (void)r.get<std::uint32_t>("tokens"); }).find("expected type u32, found arr[str]") != std::string::npos);
    CHECK(message_of([&] { (void)r.get_array<std::int32_t>("ids"); }).find("expected type arr[i32], found arr[u32]") != std::string::npos);
    CHECK(message_of([&] { (void)r.get_array<std::string_view>("general.architecture"); })
              .find("expected type arr[str], found str") != std::string::npos);

    const std::string missing = message_of([&] { (void)r.require<std::uint32_t>("llama.context_length"); });
    CHECK(missing.find("model.gguf") != std::string::npos);
    CHECK(missing.find("'llama.context_length'") != std::string::npos);
    CHECK(message_of([&] { (void)r.require_array<float>("scores"); }).find("'scores' is missing") != std::string::npos);
    const std::string no_tensor = message_of([&] { (void)r.tensor("output.weight"); });
    CHECK(no_tensor.find("model.gguf") != std::string::npos);
    CHECK(no_tensor.find("tensor 'output.weight' not found") != std::string::npos);

    CHECK_FALSE(r.get<std::uint32_t>("absent").has_value());
    CHECK_FALSE(r.get_array<std::uint32_t>("absent").has_value());
    CHECK_FALSE(r.type_of("absent").has_value());
    CHECK_FALSE(r.contains("absent"));
    CHECK(r.find_tensor("absent") == nullptr);
}

TEST_CASE("writer: set replaces in place, erase removes") {
    gguf::writer w;
    w.set("a", std::uint32_t{1});
    w.set("b", "x");
    w.set("a", "now a string");
    CHECK(w.metadata_count() == 2);
    const bytes b1 = w.bytes();
    const auto r = gguf::reader::from_memory(view(b1));
    CHECK(r.metadata()[0].key == "a");
    CHECK(r.get<std::string_view>("a") == "now a string");
    CHECK(w.erase("b"));
    CHECK_FALSE(w.erase("b"));
    const bytes b2 = w.bytes();
    CHECK(gguf::reader::from_memory(view(b2)).metadata_count() == 1);
}

TEST_CASE("tensors: several types at alignments 1, 32 and 64") {
    struct spec {
        const char* name;
        type_id type;
        std::vector<std::int64_t> ne;
    };
    const spec specs[] = {
        {"token_embd.weight", type_id::q4_0, {64, 3}},      // 2 blocks x 3 rows x 18 bytes = 108
        {"blk.0.attn_norm.weight", type_id::f32, {5}},      // 20
        {"blk.0.ffn_down.weight", type_id::q4_K, {256, 2}}, // 2 x 144 = 288
        {"blk.0.attn_q.weight", type_id::q8_0, {32, 1, 2, 2}},
        {"blk.0.small.weight", type_id::f16, {3, 1, 1}},
        {"output.weight", type_id::bf16, {7, 2}},
    };
    for (std::size_t alignment : {std::size_t{1}, std::size_t{32}, std::size_t{64}}) {
        CAPTURE(alignment);
        gguf::writer w;
        if (alignment != 32) w.set_alignment(alignment);
        w.set("general.architecture", "llama");
        std::vector<bytes> data;
        for (const spec& s : specs) {
            const auto& ti = qinfer::info(s.type);
            std::int64_t n = 1;
            for (auto d : s.ne) n *= d;
            bytes d(static_cast<std::size_t>(n / ti.block_size * ti.block_bytes));
            for (std::size_t i = 0; i < d.size(); ++i) d[i] = static_cast<std::byte>(i * 7 + data.size());
            w.add_tensor(s.name, s.type, s.ne, d);
            data.push_back(std::move(d));
        }
        CHECK(w.alignment() == alignment);
        const bytes b = w.bytes();
        CHECK(b.size() % alignment == 0);
        const auto r = gguf::reader::from_memory(view(b));
        CHECK(r.alignment() == alignment);
        CHECK(r.data_offset() % alignment == 0);
        REQUIRE(r.tensors().size() == std::size(specs));
        std::uint64_t expected_offset = 0;
        for (std::size_t i = 0; i < std::size(specs); ++i) {
            const gguf::tensor_info& t = r.tensors()[i];
            CAPTURE(t.name);
            CHECK(t.name == specs[i].name);
            CHECK(t.type == specs[i].type);
            CHECK(t.n_dims == static_cast<int>(specs[i].ne.size()));
            for (std::size_t d = 0; d < 4; ++d)
                CHECK(t.ne[d] == (d < specs[i].ne.size() ? specs[i].ne[d] : 1));
            CHECK(t.offset == expected_offset);
            CHECK(t.offset % alignment == 0);
            CHECK(t.n_bytes == data[i].size());
            CHECK(t.data == b.data() + r.data_offset() + t.offset);
            CHECK(std::memcmp(t.data, data[i].data(), data[i].size()) == 0);
            expected_offset += (t.n_bytes + alignment - 1) / alignment * alignment;
        }
        CHECK(r.tensor("blk.0.ffn_down.weight").n_elements == 512);
    }
}

TEST_CASE("writer refuses what the reader would reject") {
    gguf::writer w;
    const bytes four(4);
    const std::int64_t one[] = {1}, zero[] = {0}, row33[] = {33}, five_dims[] = {1, 1, 1, 1, 1};
    CHECK_THROWS_AS(w.add_tensor("x", type_id::f32, one, bytes(3)), qinfer::error);      // wrong data size
    CHECK_THROWS_AS(w.add_tensor("x", type_id::f32, zero, {}), qinfer::error);           // zero dimension
    CHECK_THROWS_AS(w.add_tensor("x", type_id::q4_0, row33, bytes(18)), qinfer::error);  // not whole blocks
    CHECK_THROWS_AS(w.add_tensor("x", type_id::f32, five_dims, four), qinfer::error);
    CHECK_THROWS_AS(w.add_tensor("x", type_id::f32, {}, four), qinfer::error);
    CHECK_THROWS_AS(w.add_tensor("", type_id::f32, one, four), qinfer::error);
    CHECK_THROWS_AS(w.add_tensor(std::string(64, 'n'), type_id::f32, one, four), qinfer::error);
    w.add_tensor(std::string(63, 'n'), type_id::f32, one, four);
    CHECK_THROWS_AS(w.add_tensor(std::string(63, 'n'), type_id::f32, one, four), qinfer::error);  // duplicate
    CHECK_THROWS_AS(w.set_alignment(0), qinfer::error);
    CHECK_THROWS_AS(w.set_alignment(48), qinfer::error);
    CHECK_THROWS_AS(w.set_alignment(std::size_t{1} << 25), qinfer::error);
    CHECK_THROWS_AS(w.set("general.alignment", std::int32_t{32}), qinfer::error);
    CHECK_THROWS_AS(w.set("general.alignment", std::uint32_t{12}), qinfer::error);
    CHECK_THROWS_AS(w.set("", std::uint8_t{1}), qinfer::error);
    CHECK_THROWS_AS(w.set(std::string(65536, 'k'), std::uint8_t{1}), qinfer::error);
    const std::string msg = [&] {
        try {
            w.add_tensor("blk.0.w", type_id::q8_0, std::vector<std::int64_t>{32, 2}, bytes(67));
        } catch (const qinfer::error& e) {
            return std::string(e.what());
        }
        return std::string();
    }();
    CHECK(msg.find("tensor 'blk.0.w'") != std::string::npos);
    CHECK(msg.find("expected 68 bytes") != std::string::npos);
    CHECK(msg.find("got 67") != std::string::npos);
}

TEST_CASE("writer: files on disk, mapped and read back; unwritable paths are named") {
    const auto dir = std::filesystem::temp_directory_path() / "qinfer-test-gguf-writer";
    std::filesystem::create_directories(dir);
    const auto path = dir / "small.gguf";
    gguf::writer w;
    w.set("general.name", "small");
    const std::int64_t ne[] = {8};
    bytes d(32);
    for (std::size_t i = 0; i < d.size(); ++i) d[i] = static_cast<std::byte>(i);
    w.add_tensor("w", type_id::f32, ne, d);
    w.write(path);
    CHECK(std::filesystem::file_size(path) == w.bytes().size());
    for (auto how : {qinfer::mapped_file::mode::map, qinfer::mapped_file::mode::read}) {
        gguf::reader r(path, how);
        CHECK(r.is_mapped() == (how == qinfer::mapped_file::mode::map));
        CHECK(r.path() == path.string());
        CHECK(r.get<std::string_view>("general.name") == "small");
        const std::byte* before = r.tensor("w").data;
        gguf::reader moved = std::move(r);  // views survive a move
        CHECK(moved.tensor("w").data == before);
        CHECK(moved.get<std::string_view>("general.name") == "small");
        CHECK(std::memcmp(moved.tensor("w").data, d.data(), d.size()) == 0);
    }
    const auto bad = dir / "no-such-dir" / "x.gguf";
    try {
        w.write(bad);
        FAIL("write to a missing directory succeeded");
    } catch (const qinfer::error& e) {
        CHECK(std::string(e.what()).find(bad.string()) != std::string::npos);
    }
    std::filesystem::remove_all(dir);
}
