// Differential tests against llama.cpp's own GGUF code (libggml-base.so from the oracle
// install, loaded with dlopen): the writers produce the same bytes, each reader reads the
// other's files, and on thousands of hostile inputs qinfer accepts only what llama.cpp
// accepts, reading the same values. Where qinfer is stricter, the reason must be one of the
// documented extra rules.
#include "gguf/support.hpp"

#include "oracle/ggml_oracle.hpp"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>

using namespace gtest;
using gguf::value_type;

namespace {

// Declarations from llama.cpp's gguf.h / ggml.h (matching version), only what is used here.
struct gguf_init_params_c {
    bool no_alloc;
    void** ctx;
};
struct ggml_init_params_c {
    std::size_t mem_size;
    void* mem_buffer;
    bool no_alloc;
};
using log_callback = void (*)(int level, const char* text, void* user);

struct llama_gguf {
    void* (*init_from_buffer)(const void*, std::size_t, gguf_init_params_c) = nullptr;
    void* (*init_empty)() = nullptr;
    void (*free_ctx)(void*) = nullptr;
    std::uint32_t (*get_version)(const void*) = nullptr;
    std::size_t (*get_alignment)(const void*) = nullptr;
    std::size_t (*get_data_offset)(const void*) = nullptr;
    std::int64_t (*get_n_kv)(const void*) = nullptr;
    const char* (*get_key)(const void*, std::int64_t) = nullptr;
    int (*get_kv_type)(const void*, std::int64_t) = nullptr;
    int (*get_arr_type)(const void*, std::int64_t) = nullptr;
    std::size_t (*get_arr_n)(const void*, std::int64_t) = nullptr;
    const void* (*get_arr_data)(const void*, std::int64_t) = nullptr;
    const char* (*get_arr_str)(const void*, std::int64_t, std::size_t) = nullptr;
    const void* (*get_val_data)(const void*, std::int64_t) = nullptr;
    const char* (*get_val_str)(const void*, std::int64_t) = nullptr;
    std::int64_t (*get_n_tensors)(const void*) = nullptr;
    const char* (*get_tensor_name)(const void*, std::int64_t) = nullptr;
    int (*get_tensor_type)(const void*, std::int64_t) = nullptr;
    std::size_t (*get_tensor_offset)(const void*, std::int64_t) = nullptr;
    std::size_t (*get_tensor_size)(const void*, std::int64_t) = nullptr;
    const std::int64_t* (*get_tensor_ne)(const void*, std::int64_t) = nullptr;
    void (*set_val_u8)(void*, const char*, std::uint8_t) = nullptr;
    void (*set_val_i8)(void*, const char*, std::int8_t) = nullptr;
    void (*set_val_u16)(void*, const char*, std::uint16_t) = nullptr;
    void (*set_val_i16)(void*, const char*, std::int16_t) = nullptr;
    void (*set_val_u32)(void*, const char*, std::uint32_t) = nullptr;
    void (*set_val_i32)(void*, const char*, std::int32_t) = nullptr;
    void (*set_val_f32)(void*, const char*, float) = nullptr;
    void (*set_val_u64)(void*, const char*, std::uint64_t) = nullptr;
    void (*set_val_i64)(void*, const char*, std::int64_t) = nullptr;
    void (*set_val_f64)(void*, const char*, double) = nullptr;
    void (*set_val_bool)(void*, const char*, bool) = nullptr;
    void (*set_val_str)(void*, const char*, const char*) = nullptr;
    void (*set_arr_data)(void*, const char*, int, const void*, std::size_t) = nullptr;
    void (*set_arr_str)(void*, const char*, const char**, std::size_t) = nullptr;
    void (*add_tensor)(void*, const void*) = nullptr;
    void (*set_tensor_data)(void*, const char*, const void*) = nullptr;
    bool (*write_to_file)(const void*, const char*, bool) = nullptr;
    void* (*ggml_init)(ggml_init_params_c) = nullptr;
    void (*ggml_free)(void*) = nullptr;
    void* (*ggml_new_tensor)(void*, int, int, const std::int64_t*) = nullptr;
    void* (*ggml_set_name)(void*, const char*) = nullptr;
    void (*log_set)(log_callback, void*) = nullptr;

    bool loaded = false;
};

const llama_gguf* load_llama_gguf() {
    const oracle::ggml* g = oracle::get();
    if (!g) return nullptr;
    static const llama_gguf api = [g] {
        llama_gguf a;
        bool ok = true;
        auto bind = [&](auto& fn, const char* name) {
            fn = g->base_symbol<std::remove_reference_t<decltype(fn)>>(name);
            ok = ok && fn != nullptr;
        };
        bind(a.init_from_buffer, "gguf_init_from_buffer");
        bind(a.init_empty, "gguf_init_empty");
        bind(a.free_ctx, "gguf_free");
        bind(a.get_version, "gguf_get_version");
        bind(a.get_alignment, "gguf_get_alignment");
        bind(a.get_data_offset, "gguf_get_data_offset");
        bind(a.get_n_kv, "gguf_get_n_kv");
        bind(a.get_key, "gguf_get_key");
        bind(a.get_kv_type, "gguf_get_kv_type");
        bind(a.get_arr_type, "gguf_get_arr_type");
        bind(a.get_arr_n, "gguf_get_arr_n");
        bind(a.get_arr_data, "gguf_get_arr_data");
        bind(a.get_arr_str, "gguf_get_arr_str");
        bind(a.get_val_data, "gguf_get_val_data");
        bind(a.get_val_str, "gguf_get_val_str");
        bind(a.get_n_tensors, "gguf_get_n_tensors");
        bind(a.get_tensor_name, "gguf_get_tensor_name");
        bind(a.get_tensor_type, "gguf_get_tensor_type");
        bind(a.get_tensor_offset, "gguf_get_tensor_offset");
        bind(a.get_tensor_size, "gguf_get_tensor_size");
        bind(a.get_tensor_ne, "gguf_get_tensor_ne");
        bind(a.set_val_u8, "gguf_set_val_u8");
        bind(a.set_val_i8, "gguf_set_val_i8");
        bind(a.set_val_u16, "gguf_set_val_u16");
        bind(a.set_val_i16, "gguf_set_val_i16");
        bind(a.set_val_u32, "gguf_set_val_u32");
        bind(a.set_val_i32, "gguf_set_val_i32");
        bind(a.set_val_f32, "gguf_set_val_f32");
        bind(a.set_val_u64, "gguf_set_val_u64");
        bind(a.set_val_i64, "gguf_set_val_i64");
        bind(a.set_val_f64, "gguf_set_val_f64");
        bind(a.set_val_bool, "gguf_set_val_bool");
        bind(a.set_val_str, "gguf_set_val_str");
        bind(a.set_arr_data, "gguf_set_arr_data");
        bind(a.set_arr_str, "gguf_set_arr_str");
        bind(a.add_tensor, "gguf_add_tensor");
        bind(a.set_tensor_data, "gguf_set_tensor_data");
        bind(a.write_to_file, "gguf_write_to_file");
        bind(a.ggml_init, "ggml_init");
        bind(a.ggml_free, "ggml_free");
        bind(a.ggml_new_tensor, "ggml_new_tensor");
        bind(a.ggml_set_name, "ggml_set_name");
        bind(a.log_set, "ggml_log_set");
        a.loaded = ok;
        return a;
    }();
    if (!api.loaded) {
        QTEST_UNAVAILABLE("llama.cpp's gguf functions are missing from libggml-base.so");
        return nullptr;
    }
    return &api;
}

// llama.cpp logs every rejected file; thousands of them are noise here.
struct quiet_llama_logs {
    const llama_gguf& api;
    explicit quiet_llama_logs(const llama_gguf& a) : api(a) {
        api.log_set([](int, const char*, void*) {}, nullptr);
    }
    ~quiet_llama_logs() { api.log_set(nullptr, nullptr); }
};

struct llama_ctx {
    const llama_gguf& api;
    void* ctx;
    ~llama_ctx() {
        if (ctx) api.free_ctx(ctx);
    }
};

bytes read_file(const std::filesystem::path& p) {
    std::ifstream f(p, std::ios::binary);
    const std::string s((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return bytes(reinterpret_cast<const std::byte*>(s.data()), reinterpret_cast<const std::byte*>(s.data()) + s.size());
}

bool has_nested_array(const gguf::reader& r) {
    for (const auto& e : r.metadata())
        if (e.value.is_array() && e.value.element_type() == value_type::array) return true;
    return false;
}

// Both readers accepted `b`: they must report the same header, metadata and tensors.
void compare_readings(const llama_gguf& api, const void* ctx, const gguf::reader& r) {
    REQUIRE(api.get_version(ctx) == r.version());
    CHECK(api.get_alignment(ctx) == r.alignment());
    CHECK(api.get_data_offset(ctx) == r.data_offset());
    REQUIRE(api.get_n_kv(ctx) == static_cast<std::int64_t>(r.metadata_count()));
    for (std::int64_t i = 0; i < api.get_n_kv(ctx); ++i) {
        const gguf::metadata_entry& e = r.metadata()[static_cast<std::size_t>(i)];
        CAPTURE(std::string(e.key));
        CHECK(std::string_view(api.get_key(ctx, i)) == e.key.substr(0, std::strlen(api.get_key(ctx, i))));
        REQUIRE(api.get_kv_type(ctx, i) == static_cast<int>(e.value.type()));
        const auto& v = e.value;
        // C strings end at a NUL, so compare up to the first one.
        auto same_c_string = [](const char* c, std::string_view s) { return std::string_view(c) == s.substr(0, std::strlen(c)); };
        if (v.type() == value_type::string) {
            CHECK(same_c_string(api.get_val_str(ctx, i), v.as<std::string_view>()));
        } else if (v.is_array()) {
            REQUIRE(api.get_arr_type(ctx, i) == static_cast<int>(v.element_type()));
            REQUIRE(api.get_arr_n(ctx, i) == v.size());
            if (v.element_type() == value_type::string) {
                std::size_t k = 0;
                for (const gguf::value& s : v.elements())
                    CHECK(same_c_string(api.get_arr_str(ctx, i, k++), s.as<std::string_view>()));
            } else if (v.element_type() == value_type::boolean) {
                const auto ours = v.as_array<bool>();
                const auto* theirs = static_cast<const std::uint8_t*>(api.get_arr_data(ctx, i));
                for (std::size_t k = 0; k < ours.size(); ++k) CHECK(ours[k] == (theirs[k] != 0));
            } else if (v.size() > 0) {
                const auto enc = v.encoded().subspan(12);
                CHECK(std::memcmp(api.get_arr_data(ctx, i), enc.data(), enc.size()) == 0);
            }
        } else if (v.type() == value_type::boolean) {
            CHECK((*static_cast<const std::uint8_t*>(api.get_val_data(ctx, i)) != 0) == v.as<bool>());
        } else {
            CHECK(std::memcmp(api.get_val_data(ctx, i), v.encoded().data(), v.encoded().size()) == 0);
        }
    }
    REQUIRE(api.get_n_tensors(ctx) == static_cast<std::int64_t>(r.tensors().size()));
    for (std::int64_t i = 0; i < api.get_n_tensors(ctx); ++i) {
        const gguf::tensor_info& t = r.tensors()[static_cast<std::size_t>(i)];
        CAPTURE(t.name);
        CHECK(std::string_view(api.get_tensor_name(ctx, i)) == t.name);
        CHECK(api.get_tensor_type(ctx, i) == static_cast<int>(t.type));
        CHECK(api.get_tensor_offset(ctx, i) == t.offset);
        CHECK(api.get_tensor_size(ctx, i) == t.n_bytes);
        const std::int64_t* ne = api.get_tensor_ne(ctx, i);
        for (std::size_t d = 0; d < 4; ++d) CHECK(ne[d] == t.ne[d]);
    }
}

// Rules qinfer adds on top of llama.cpp's (see docs-gguf.md). A file llama.cpp accepts may
// only be rejected for one of these.
bool is_documented_extra_rule(const std::string& msg) {
    for (const char* rule : {
             "to be at least 1, found 0",         // zero-sized dimensions
             "1 to 4 dimensions, found 0",        // zero dimensions
             "non-empty tensor name",             // empty tensor names
             "tensor name without NUL bytes",     // names llama.cpp would cut at the NUL
             "bytes of data at byte offset",      // tensor data past the end of the file (llama.cpp checks it later, when loading)
             "a key of at most 65535 bytes",      // the GGUF spec's key length limit
             "power of two between 1 and",        // alignments above 2^24
             "tensor count that fits",            // only reachable with empty names or 0 dimensions, see above
         })
        if (msg.find(rule) != std::string::npos) return true;
    return false;
}

}  // namespace

TEST_CASE("llama.cpp oracle: both writers produce the same bytes, each reads the other's file") {
    const llama_gguf* api = load_llama_gguf();
    if (!api) return;

    gguf::writer ours;
    void* theirs = api->init_empty();
    llama_ctx theirs_guard{*api, theirs};
    ours.set("general.architecture", "llama");
    api->set_val_str(theirs, "general.architecture", "llama");
    ours.set("t.u8", std::uint8_t{250}), api->set_val_u8(theirs, "t.u8", 250);
    ours.set("t.i8", std::int8_t{-7}), api->set_val_i8(theirs, "t.i8", -7);
    ours.set("t.u16", std::uint16_t{65000}), api->set_val_u16(theirs, "t.u16", 65000);
    ours.set("t.i16", std::int16_t{-300}), api->set_val_i16(theirs, "t.i16", -300);
    ours.set("t.u32", std::uint32_t{4000000000u}), api->set_val_u32(theirs, "t.u32", 4000000000u);
    ours.set("t.i32", std::int32_t{-123456}), api->set_val_i32(theirs, "t.i32", -123456);
    ours.set("t.f32", 1e-5f), api->set_val_f32(theirs, "t.f32", 1e-5f);
    ours.set("t.u64", std::uint64_t{1} << 63), api->set_val_u64(theirs, "t.u64", std::uint64_t{1} << 63);
    ours.set("t.i64", std::int64_t{-5}), api->set_val_i64(theirs, "t.i64", -5);
    ours.set("t.f64", 0.1), api->set_val_f64(theirs, "t.f64", 0.1);
    ours.set("t.bool", true), api->set_val_bool(theirs, "t.bool", true);
    const std::vector<std::int32_t> ids = {2, 3, -1};
    ours.set("t.arr.i32", ids), api->set_arr_data(theirs, "t.arr.i32", 5, ids.data(), ids.size());
    const std::vector<float> scores = {0.0f, -1.5f};
    ours.set("t.arr.f32", scores), api->set_arr_data(theirs, "t.arr.f32", 6, scores.data(), scores.size());
    const std::vector<std::uint8_t> flags = {1, 0, 1};
    ours.set("t.arr.bool", std::vector<bool>{true, false, true});
    api->set_arr_data(theirs, "t.arr.bool", 7, flags.data(), flags.size());
    const std::vector<std::uint64_t> big = {};
    ours.set("t.arr.u64.empty", big), api->set_arr_data(theirs, "t.arr.u64.empty", 10, big.data(), 0);
    const char* tokens[] = {"<unk>", "", "\xe2\x96\x81the"};
    ours.set("tokenizer.ggml.tokens", std::vector<std::string_view>(std::begin(tokens), std::end(tokens)));
    api->set_arr_str(theirs, "tokenizer.ggml.tokens", tokens, std::size(tokens));

    struct spec {
        const char* name;
        qinfer::type_id type;
        std::vector<std::int64_t> ne;
    };
    const spec specs[] = {{"token_embd.weight", qinfer::type_id::q4_0, {64, 3}},
                          {"norm.weight", qinfer::type_id::f32, {5}},
                          {"blk.0.ffn_down.weight", qinfer::type_id::q8_0, {32, 2, 2}},
                          {"output.weight", qinfer::type_id::f16, {3, 7}}};
    void* ggml = api->ggml_init({1 << 20, nullptr, true});
    REQUIRE(ggml);
    std::vector<bytes> data;
    for (const spec& s : specs) {
        const auto& ti = qinfer::info(s.type);
        std::int64_t n = 1;
        for (auto d : s.ne) n *= d;
        bytes d(static_cast<std::size_t>(n / ti.block_size * ti.block_bytes));
        for (std::size_t i = 0; i < d.size(); ++i) d[i] = static_cast<std::byte>(i * 13 + 1);
        ours.add_tensor(s.name, s.type, s.ne, d);
        void* t = api->ggml_new_tensor(ggml, static_cast<int>(s.type), static_cast<int>(s.ne.size()), s.ne.data());
        api->ggml_set_name(t, s.name);
        api->add_tensor(theirs, t);
        data.push_back(std::move(d));
        api->set_tensor_data(theirs, s.name, data.back().data());
    }
    const auto path = std::filesystem::temp_directory_path() / "qinfer-test-gguf-llama-writer.gguf";
    REQUIRE(api->write_to_file(theirs, path.string().c_str(), false));
    api->ggml_free(ggml);
    const bytes llama_bytes = read_file(path);
    std::filesystem::remove(path);
    const bytes our_bytes = ours.bytes();
    REQUIRE(our_bytes.size() == llama_bytes.size());
    CHECK(std::memcmp(our_bytes.data(), llama_bytes.data(), our_bytes.size()) == 0);

    // llama.cpp reads qinfer's file and sees the same values qinfer's reader does.
    const auto r = gguf::reader::from_memory(view(our_bytes));
    void* parsed = api->init_from_buffer(our_bytes.data(), our_bytes.size(), {true, nullptr});
    REQUIRE(parsed);
    llama_ctx parsed_guard{*api, parsed};
    compare_readings(*api, parsed, r);
}

TEST_CASE("llama.cpp oracle: the reference files read the same in both readers") {
    const llama_gguf* api = load_llama_gguf();
    if (!api) return;
    std::vector<std::filesystem::path> files;
    if (const auto m = refdata("models/stories260K.gguf")) files.push_back(*m);
    if (const auto v = refdata("vocab/ggml-vocab-gpt-2.gguf")) files.push_back(*v);
    if (const auto v = refdata("vocab/ggml-vocab-llama-spm.gguf")) files.push_back(*v);
    for (const auto& p : files) {
        CAPTURE(p.string());
        const gguf::reader r(p);
        const auto b = r.file_bytes();
        void* ctx = api->init_from_buffer(b.data(), b.size(), {true, nullptr});
        REQUIRE(ctx);
        llama_ctx guard{*api, ctx};
        compare_readings(*api, ctx, r);
    }
}

TEST_CASE("llama.cpp oracle: on hostile inputs qinfer accepts only what llama.cpp accepts") {
    const llama_gguf* api = load_llama_gguf();
    if (!api) return;
    const quiet_llama_logs quiet(*api);

    std::vector<bytes> inputs;
    const auto seeds = fuzz_seeds();
    for (const auto& [name, file] : seeds) {
        inputs.push_back(file);
        for (std::size_t n = 0; n < file.size(); ++n) inputs.emplace_back(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(n));
    }
    std::mt19937_64 rng(77);
    for (int i = 0; i < 4000; ++i) inputs.push_back(mutate(seeds[static_cast<std::size_t>(i) % seeds.size()].second, rng));

    std::size_t both = 0, neither = 0, only_llama = 0, nested = 0;
    for (const bytes& b : inputs) {
        CAPTURE(b.size());
        std::string our_error;
        std::optional<gguf::reader> r;
        try {
            r.emplace(gguf::reader::from_memory(view(b), "input"));
        } catch (const qinfer::error& e) {
            our_error = e.what();
        }
        void* ctx = api->init_from_buffer(b.data(), b.size(), {true, nullptr});
        llama_ctx guard{*api, ctx};
        if (r && has_nested_array(*r)) {  // llama.cpp refuses arrays of arrays; qinfer reads them
            CHECK(ctx == nullptr);
            ++nested;
        } else if (r) {
            REQUIRE_MESSAGE(ctx != nullptr, "qinfer accepted a file llama.cpp rejects");
            compare_readings(*api, ctx, *r);
            ++both;
        } else if (ctx) {
            CAPTURE(our_error);
            CHECK(is_documented_extra_rule(our_error));
            ++only_llama;
        } else {
            ++neither;
        }
    }
    MESSAGE("hostile inputs: " << both << " accepted by both, " << neither << " rejected by both, "
                               << only_llama << " rejected only by qinfer's extra rules, " << nested
                               << " with nested arrays (qinfer only)");
    CHECK(both > 0);
    CHECK(neither > 0);
}
