// qinfer's quantizer (tools/quantize.hpp, the qinfer-quantize tool) against llama.cpp's own
// llama_model_quantize: for synthetic F32 models, every file type must give the same file,
// byte for byte. Where it does not, the test says which key / tensor differs and how.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <random>
#include <sstream>

#include <qinfer/tools/imatrix.hpp>
#include <qinfer/tools/quantize.hpp>

#include "model/synthetic.hpp"
#include "oracle/ggml_oracle.hpp"
#include "oracle/llama_quantize.hpp"

namespace {

namespace fs = std::filesystem;
namespace tools = qinfer::tools;

std::vector<char> slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<char>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

// "" when the files are identical, else what differs first (metadata, tensor infos, data).
std::string describe_difference(const std::string& ours_path, const std::string& theirs_path) {
    const auto a_bytes = slurp(ours_path), b_bytes = slurp(theirs_path);
    if (a_bytes == b_bytes) return "";
    namespace gguf = qinfer::gguf;
    const gguf::reader a(ours_path), b(theirs_path);
    std::ostringstream out;
    const auto ma = a.metadata(), mb = b.metadata();
    for (std::size_t i = 0; i < std::max(ma.size(), mb.size()); ++i) {
        if (i >= ma.size() || i >= mb.size()) {
            out << "metadata count " << ma.size() << " vs llama.cpp's " << mb.size() << "; ";
            break;
        }
        if (ma[i].key != mb[i].key || ma[i].value.type() != mb[i].value.type() ||
            !std::ranges::equal(ma[i].value.encoded(), mb[i].value.encoded())) {
            out << "metadata #" << i << ": " << ma[i].key << " (" << ma[i].value.type_name() << ") vs llama.cpp's "
                << mb[i].key << " (" << mb[i].value.type_name() << "); ";
            break;
        }
    }
    const auto& ta = a.tensors();
    const auto& tb = b.tensors();
    if (ta.size() != tb.size()) out << "tensor count " << ta.size() << " vs " << tb.size() << "; ";
    for (std::size_t i = 0; i < std::min(ta.size(), tb.size()); ++i) {
        const auto& x = ta[i];
        const auto& y = tb[i];
        if (x.name != y.name) {
            out << "tensor #" << i << " is " << x.name << ", llama.cpp's is " << y.name << "; ";
            break;
        }
        if (x.type != y.type || x.n_dims != y.n_dims || x.ne != y.ne) {
            out << x.name << ": type " << qinfer::type_name(x.type) << " vs llama.cpp's " << qinfer::type_name(y.type)
                << " (or shape); ";
            continue;
        }
        if (!std::ranges::equal(x.bytes(), y.bytes())) {
            std::size_t at = 0;
            while (at < x.n_bytes && x.data[at] == y.data[at]) ++at;
            out << x.name << " (" << qinfer::type_name(x.type) << "): data differs from byte " << at << " of "
                << x.n_bytes << "; ";
        }
    }
    if (out.str().empty())
        out << "files differ (" << a_bytes.size() << " vs " << b_bytes.size()
            << " bytes) outside metadata, tensor infos and data: padding or alignment";
    return out.str();
}

struct case_type {
    const char* name;
    oracle::llama_ftype ftype;
};
const case_type ftypes[] = {
    {"F16", oracle::ftype_f16},       {"BF16", oracle::ftype_bf16},     {"Q8_0", oracle::ftype_q8_0},
    {"Q4_0", oracle::ftype_q4_0},     {"Q4_1", oracle::ftype_q4_1},     {"Q5_0", oracle::ftype_q5_0},
    {"Q5_1", oracle::ftype_q5_1},     {"Q2_K", oracle::ftype_q2_k},     {"Q3_K_S", oracle::ftype_q3_k_s},
    {"Q3_K_M", oracle::ftype_q3_k_m}, {"Q3_K_L", oracle::ftype_q3_k_l}, {"Q4_K_S", oracle::ftype_q4_k_s},
    {"Q4_K_M", oracle::ftype_q4_k_m}, {"Q5_K_S", oracle::ftype_q5_k_s}, {"Q5_K_M", oracle::ftype_q5_k_m},
    {"Q6_K", oracle::ftype_q6_k},     {"IQ4_NL", oracle::ftype_iq4_nl}, {"IQ4_XS", oracle::ftype_iq4_xs},
};

// The quantizer, or null after a skip message (a failure where the oracle is required).
const oracle::llama_quantizer* quantizer() {
    static const oracle::llama_quantizer q(oracle::lib_dir());
    if (q.loaded()) return &q;
    QTEST_UNAVAILABLE("llama.cpp quantizer: " << q.why_missing());
    return nullptr;
}

// Each shape runs the file types in `only` (together every type at least once, in under a
// minute on 2 cores); QINFER_QUANTIZE_ALL=1 runs every type on every shape.
// Returns the number of fallback tensors seen (-1: skipped).
// from_f16: the input is llama.cpp's F16 conversion of the F32 model (the F16 -> F32 path).
int compare_arch(const mtest::synthetic_shape& shape, unsigned seed, const std::vector<std::string>& only,
                 bool from_f16 = false) {
    const bool all = std::getenv("QINFER_QUANTIZE_ALL") != nullptr;
    if (!qtest::have_file(shape.vocab_file)) return -1;
    const oracle::llama_quantizer* llama = quantizer();
    if (!llama) return -1;
    int fallbacks = 0;
    const fs::path dir = fs::path("model-ref") / ("quantize-tool-" + shape.arch);
    fs::create_directories(dir);
    std::string f32 = (dir / "model-F32.gguf").string();
    mtest::write_synthetic(shape, f32, seed);
    if (from_f16) {
        const std::string f16 = (dir / "model-F16.gguf").string();
        REQUIRE(llama->quantize(f32, f16, oracle::ftype_f16, 2) == 0);
        fs::remove(f32);
        f32 = f16;
    }

    for (const case_type& ft : ftypes) {
        if (!all && std::find(only.begin(), only.end(), ft.name) == only.end()) continue;
        CAPTURE(ft.name);
        const std::string theirs = (dir / ("llama-" + std::string(ft.name) + ".gguf")).string();
        const std::string ours = (dir / ("qinfer-" + std::string(ft.name) + ".gguf")).string();
        const auto t0 = std::chrono::steady_clock::now();
        REQUIRE_MESSAGE(llama->quantize(f32, theirs, ft.ftype, 2) == 0, "llama_model_quantize failed for " << ft.name);
        const double llama_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        tools::quantize_options o;
        o.type = tools::parse_ftype(ft.name);
        o.n_threads = 2;
        const tools::quantize_result r = tools::quantize_model(f32, ours, o);
        fallbacks += r.n_fallback;
        const std::string diff = describe_difference(ours, theirs);
        char line[160];
        std::snprintf(line, sizeof line, "%-6s %-6s %5.2f bpw, %2d fallbacks, qinfer %.2f s, llama.cpp %.2f s: ",
                      shape.arch.c_str(), ft.name, r.bpw_to(), r.n_fallback, r.seconds, llama_s);
        MESSAGE(line << (diff.empty() ? std::string("identical") : "DIFFERS: " + diff));
        CHECK(diff.empty());
        fs::remove(theirs);
        fs::remove(ours);
    }
    fs::remove(f32);
    return fallbacks;
}

std::string vocab(const char* name) { return std::string(QINFER_REFDATA_DIR) + "/vocab/ggml-vocab-" + name + ".gguf"; }

std::string error_of(const std::function<void()>& f) {
    try {
        f();
    } catch (const qinfer::error& e) {
        return e.what();
    }
    return "";
}

// --- importance matrices ------------------------------------------------------------------

// A synthetic importance matrix for a model file: for every 2-D weight, per-column sums of
// squared activations (log-normal, every 9th column zero) and a token count. Entries:
// blk.0.attn_k.weight all zeros; blk.1.attn_q.weight counted 0 times (its importance is 1);
// token_embd.weight with the wrong length (llama.cpp skips it silently); `omit` left out.
struct imatrix_source {
    struct entry { std::vector<float> sums; float count; };
    std::map<std::string, entry> entries;
    std::string dataset = "test-corpus.txt";
    std::uint32_t chunks = 42;

    imatrix_source(const std::string& model, unsigned seed, const std::string& omit = "") {
        const qinfer::gguf::reader r(model);
        std::mt19937 rng(seed);
        std::normal_distribution<float> normal;
        for (const auto& t : r.tensors()) {
            if (t.n_dims < 2 || t.name == omit || t.name.find("_norm") != std::string::npos) continue;
            entry e;
            const std::int64_t n = t.name == "token_embd.weight" ? t.ne[0] + 32 : t.ne[0];
            e.count = float(1 + rng() % 200);
            for (std::int64_t i = 0; i < n; ++i)
                e.sums.push_back(i % 9 == 4 ? 0.0f : std::exp(2.0f * normal(rng)) * e.count);
            if (t.name == "blk.0.attn_k.weight") std::fill(e.sums.begin(), e.sums.end(), 0.0f);
            if (t.name == "blk.1.attn_q.weight") e.count = 0;
            entries[t.name] = std::move(e);
        }
    }

    // What llama-quantize computes from a GGUF imatrix: sums / count, 1 where the count is 0.
    std::map<std::string, std::vector<float>> expected_gguf() const {
        std::map<std::string, std::vector<float>> m;
        for (const auto& [name, e] : entries) {
            std::vector<float> v;
            for (float x : e.sums) v.push_back(e.count > 0 ? x / e.count : 1.0f);
            m[name] = v;
        }
        return m;
    }
    // ... and from the legacy format (values divided by ncall; as they are when ncall is 0).
    std::map<std::string, std::vector<float>> expected_legacy() const {
        std::map<std::string, std::vector<float>> m;
        for (const auto& [name, e] : entries) {
            std::vector<float> v;
            for (float x : e.sums) v.push_back(e.count > 0 ? x / e.count : x);
            m[name] = v;
        }
        return m;
    }

    void write_gguf(const std::string& path) const {
        qinfer::gguf::writer w;
        const std::vector<std::string> ds{dataset};
        w.set("general.type", "imatrix");
        w.set("imatrix.datasets", std::span<const std::string>(ds));
        w.set("imatrix.chunk_count", chunks);
        w.set("imatrix.chunk_size", std::uint32_t(512));
        for (const auto& [name, e] : entries) {
            const std::vector<std::int64_t> ne{std::int64_t(e.sums.size()), 1}, ne1{1, 1};
            const float c = e.count;
            w.add_tensor(name + ".in_sum2", qinfer::type_id::f32, ne, std::as_bytes(std::span<const float>(e.sums)));
            w.add_tensor(name + ".counts", qinfer::type_id::f32, ne1, std::as_bytes(std::span<const float>(&c, 1)));
        }
        w.write(path);
    }

    void write_legacy(const std::string& path) const {
        std::ofstream f(path, std::ios::binary);
        auto i32 = [&](std::int32_t v) { f.write(reinterpret_cast<const char*>(&v), 4); };
        i32(std::int32_t(entries.size()));
        for (const auto& [name, e] : entries) {
            i32(std::int32_t(name.size()));
            f.write(name.data(), std::streamsize(name.size()));
            i32(std::int32_t(e.count));
            i32(std::int32_t(e.sums.size()));
            f.write(reinterpret_cast<const char*>(e.sums.data()), std::streamsize(e.sums.size() * 4));
        }
        i32(std::int32_t(chunks));
        i32(std::int32_t(dataset.size()));
        f.write(dataset.data(), std::streamsize(dataset.size()));
    }
};

bool same_values(const std::map<std::string, std::vector<float>>& a, const tools::imatrix& b) {
    if (a.size() != b.entries.size()) return false;
    for (const auto& [name, v] : a) {
        const auto* got = b.find(name);
        if (!got || got->size() != v.size() || std::memcmp(got->data(), v.data(), v.size() * 4) != 0) return false;
    }
    return true;
}

// llama-quantize --imatrix against qinfer-quantize --imatrix: llama_model_quantize gets the
// importance vectors the test computes from the file (not qinfer's reader) and the
// quantize.imatrix.* overrides llama-quantize adds; qinfer reads the file itself.
void compare_imatrix(const fs::path& dir, const std::string& model, const std::string& imatrix_path,
                     const std::map<std::string, std::vector<float>>& values, const imatrix_source& src,
                     const std::vector<std::pair<std::string, oracle::llama_ftype>>& types, int* used = nullptr) {
    const oracle::llama_quantizer* llama = quantizer();
    if (!llama) return;
    std::vector<oracle::llama_imatrix_entry> entries;
    for (const auto& [name, v] : values) entries.push_back({name.c_str(), v.data(), v.size()});
    entries.push_back({nullptr, nullptr, 0});
    std::vector<oracle::llama_kv_override> kv{
        oracle::kv_str("quantize.imatrix.file", imatrix_path), oracle::kv_str("quantize.imatrix.dataset", src.dataset),
        oracle::kv_int("quantize.imatrix.entries_count", std::int64_t(values.size())),
        oracle::kv_int("quantize.imatrix.chunks_count", src.chunks), oracle::llama_kv_override{}};
    const tools::imatrix imx = tools::load_imatrix(imatrix_path);
    for (const auto& [name, ft] : types) {
        CAPTURE(name);
        const std::string theirs = (dir / ("llama-imatrix-" + name + ".gguf")).string();
        const std::string ours = (dir / ("qinfer-imatrix-" + name + ".gguf")).string();
        const auto t0 = std::chrono::steady_clock::now();
        REQUIRE_MESSAGE(llama->quantize(model, theirs, ft, 2, entries.data(), kv.data()) == 0,
                        "llama_model_quantize failed for " << name);
        const double llama_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        tools::quantize_options o;
        o.type = tools::parse_ftype(name);
        o.n_threads = 2;
        o.importance = &imx;
        const tools::quantize_result r = tools::quantize_model(model, ours, o);
        int with = 0, quantized = 0;
        for (const auto& p : r.tensors) {
            with += p.used_imatrix;
            quantized += p.to != p.from && qinfer::info(p.to).quantized;
        }
        if (used) *used = with;
        const std::string diff = describe_difference(ours, theirs);
        char line[200];
        std::snprintf(line, sizeof line, "imatrix %-6s %5.2f bpw, %2d of %2d tensors with imatrix, qinfer %.2f s, llama.cpp %.2f s: ",
                      name.c_str(), r.bpw_to(), with, quantized, r.seconds, llama_s);
        MESSAGE(line << (diff.empty() ? std::string("identical") : "DIFFERS: " + diff));
        CHECK(diff.empty());
        fs::remove(theirs);
        fs::remove(ours);
    }
}

}  // namespace

TEST_CASE("quantize tool: with an importance matrix (GGUF and legacy files) byte-identical with llama.cpp") {
    mtest::synthetic_shape s{"qwen3", vocab("phi-3")};
    if (!qtest::have_file(s.vocab_file)) return;
    // 8 layers (Q4_0 / Q5_0 / IQ4 ffn_down rules), GQA 4, row lengths 128 and 480 (fallbacks,
    // which get the importance matrix too).
    s.n_layer = 8;
    s.n_head = 8;
    s.n_head_kv = 2;
    s.head_dim = 16;
    s.n_ff = 480;
    s.tied = true;
    const fs::path dir = fs::path("model-ref") / "quantize-tool-imatrix";
    fs::create_directories(dir);
    const std::string model = (dir / "model-F32.gguf").string();
    mtest::write_synthetic(s, model, 21);
    const imatrix_source src(model, 5);
    const std::string gguf_path = (dir / "imatrix.gguf").string(), dat_path = (dir / "imatrix.dat").string();
    src.write_gguf(gguf_path);
    src.write_legacy(dat_path);

    const tools::imatrix from_gguf = tools::load_imatrix(gguf_path), from_dat = tools::load_imatrix(dat_path);
    CHECK_FALSE(from_gguf.legacy);
    CHECK(from_dat.legacy);
    CHECK(same_values(src.expected_gguf(), from_gguf));
    CHECK(same_values(src.expected_legacy(), from_dat));
    CHECK(from_gguf.chunk_count == 42);
    CHECK(from_dat.chunk_count == 42);
    REQUIRE(from_gguf.datasets.size() == 1);
    CHECK(from_gguf.datasets[0] == "test-corpus.txt");
    REQUIRE(from_dat.datasets.size() == 1);
    CHECK(from_dat.datasets[0] == "test-corpus.txt");

    using P = std::pair<std::string, oracle::llama_ftype>;
    const bool all = std::getenv("QINFER_QUANTIZE_ALL") != nullptr;
    std::vector<P> types{{"Q2_K_S", oracle::ftype_q2_k_s}, {"Q3_K_M", oracle::ftype_q3_k_m},
                         {"Q4_0", oracle::ftype_q4_0},     {"Q5_1", oracle::ftype_q5_1},
                         {"Q4_K_M", oracle::ftype_q4_k_m}, {"Q5_K_S", oracle::ftype_q5_k_s},
                         {"Q6_K", oracle::ftype_q6_k},     {"IQ4_XS", oracle::ftype_iq4_xs}};
    std::vector<P> legacy_types{{"Q2_K", oracle::ftype_q2_k}, {"Q4_1", oracle::ftype_q4_1},
                                {"Q5_0", oracle::ftype_q5_0}, {"IQ4_NL", oracle::ftype_iq4_nl},
                                {"Q8_0", oracle::ftype_q8_0}};
    if (all) {
        types.insert(types.end(), legacy_types.begin(), legacy_types.end());
        legacy_types = types;
    }
    compare_imatrix(dir, model, gguf_path, src.expected_gguf(), src, types);
    compare_imatrix(dir, model, dat_path, src.expected_legacy(), src, legacy_types);

    // The importance matrix does change the result (and the Q4_0 mix: ffn_down 0 in Q4_1).
    tools::quantize_options o;
    o.type = tools::ftype::q4_0;
    const auto plain = tools::quantize_model(model, dir / "plain.gguf", o);
    o.importance = &from_gguf;
    const auto weighted = tools::quantize_model(model, dir / "weighted.gguf", o);
    CHECK(slurp((dir / "plain.gguf").string()) != slurp((dir / "weighted.gguf").string()));
    for (std::size_t i = 0; i < plain.tensors.size(); ++i)
        if (plain.tensors[i].name == "blk.0.ffn_down.weight") {
            CHECK(plain.tensors[i].to == qinfer::type_id::q4_0);
            CHECK(weighted.tensors[i].to == qinfer::type_id::q4_1);
        }
    fs::remove(dir / "plain.gguf");
    fs::remove(dir / "weighted.gguf");
    o.importance = nullptr;

    // Q2_K_S needs an entry for every Q2_K tensor: none at all, or one missing, is an error.
    o.type = tools::ftype::q2_K_S;
    const std::string none = error_of([&] { tools::quantize_model(model, dir / "out.gguf", o); });
    CHECK(none.find("needs an importance matrix") != std::string::npos);
    CHECK(none.find("tensor 'blk.0.") != std::string::npos);
    const imatrix_source partial(model, 5, "blk.3.ffn_up.weight");
    partial.write_gguf(gguf_path);
    const tools::imatrix part = tools::load_imatrix(gguf_path);
    o.importance = &part;
    const std::string missing = error_of([&] { tools::quantize_model(model, dir / "out.gguf", o); });
    CHECK(missing.find("'blk.3.ffn_up.weight': no importance matrix entry") != std::string::npos);
    CHECK_FALSE(fs::exists(dir / "out.gguf"));

    // Other types quantize such a tensor without one, as llama.cpp does; filters thin it out.
    int used = 0;
    compare_imatrix(dir, model, gguf_path, partial.expected_gguf(), partial, {{"Q4_K_S", oracle::ftype_q4_k_s}}, &used);
    tools::imatrix only_ffn = part;
    tools::filter_imatrix(only_ffn, {"ffn_"}, {});
    CHECK(only_ffn.entries.size() == 8 * 3 - 1);
    tools::imatrix no_ffn = part;
    tools::filter_imatrix(no_ffn, {}, {"ffn_"});
    CHECK(no_ffn.entries.size() == part.entries.size() - only_ffn.entries.size());

    // A wrongly sized entry (other than token_embd's) and non-finite values are errors.
    tools::imatrix bad = part;
    bad.entries["blk.2.attn_v.weight"].push_back(1.0f);
    o.importance = &bad;
    o.type = tools::ftype::q4_K_M;
    const std::string size = error_of([&] { tools::quantize_model(model, dir / "out.gguf", o); });
    CHECK(size.find("imatrix entry 'blk.2.attn_v.weight' has 257 values") != std::string::npos);
    bad = part;
    bad.entries["blk.2.attn_v.weight"][3] = std::numeric_limits<float>::quiet_NaN();
    const std::string nan = error_of([&] { tools::quantize_model(model, dir / "out.gguf", o); });
    CHECK(nan.find("'blk.2.attn_v.weight' has a non-finite value at 3") != std::string::npos);
    fs::remove_all(dir);
}

// Mixture of experts: 3-D expert tensors [ne0, rows, experts] take one importance row per
// expert (ne0 * experts values), llama.cpp's rows / experts indexing.
TEST_CASE("quantize tool: per-expert importance matrix of a MoE model is byte-identical with llama.cpp") {
    const oracle::llama_quantizer* llama = quantizer();
    if (!llama) return;
    const fs::path dir = fs::path("model-ref") / "quantize-tool-imatrix-moe";
    fs::create_directories(dir);
    const std::int64_t n_embd = 256, n_ff = 256, n_expert = 4, n_layer = 8, n_vocab = 1000;
    std::mt19937 rng(31);
    std::normal_distribution<float> normal;
    qinfer::gguf::writer w;
    w.set("general.architecture", "llama");
    w.set("llama.context_length", std::uint32_t(256));
    w.set("llama.embedding_length", std::uint32_t(n_embd));
    w.set("llama.block_count", std::uint32_t(n_layer));
    w.set("llama.feed_forward_length", std::uint32_t(n_ff));
    w.set("llama.attention.head_count", std::uint32_t(4));
    w.set("llama.attention.head_count_kv", std::uint32_t(4));
    w.set("llama.rope.dimension_count", std::uint32_t(64));
    w.set("llama.attention.layer_norm_rms_epsilon", 1e-5f);
    w.set("llama.expert_count", std::uint32_t(n_expert));
    w.set("llama.expert_used_count", std::uint32_t(2));
    w.set("general.file_type", std::uint32_t(0));
    // tensor name -> its importance (ne0 * experts values) and per-expert token counts
    struct imp { std::vector<float> sums; std::vector<float> counts; std::int64_t ne0; };
    std::map<std::string, imp> entries;
    auto tensor = [&](const std::string& name, std::vector<std::int64_t> ne) {
        std::int64_t n = 1;
        for (auto d : ne) n *= d;
        std::vector<float> v(static_cast<std::size_t>(n));
        for (auto& x : v) x = normal(rng) * 0.05f;
        w.add_tensor(name, qinfer::type_id::f32, ne, std::as_bytes(std::span<const float>(v)));
        if (ne.size() < 2 || name.find("_norm") != std::string::npos) return;
        imp e;
        e.ne0 = ne[0];
        const std::int64_t nexp = ne.size() == 3 ? ne[2] : 1;
        for (std::int64_t x = 0; x < nexp; ++x) {
            // expert 1 saw no tokens (importance 1), expert 2 has all-zero sums
            e.counts.push_back(x == 1 ? 0.0f : float(1 + rng() % 50));
            for (std::int64_t i = 0; i < ne[0]; ++i)
                e.sums.push_back(x == 2 ? 0.0f : std::exp(2.0f * normal(rng)) * e.counts.back());
        }
        entries[name] = std::move(e);
    };
    tensor("token_embd.weight", {n_embd, n_vocab});
    tensor("output_norm.weight", {n_embd});
    tensor("output.weight", {n_embd, n_vocab});
    for (std::int64_t l = 0; l < n_layer; ++l) {
        const std::string b = "blk." + std::to_string(l) + ".";
        tensor(b + "attn_norm.weight", {n_embd});
        for (const char* m : {"attn_q", "attn_k", "attn_v", "attn_output"}) tensor(b + m + ".weight", {n_embd, n_embd});
        tensor(b + "ffn_norm.weight", {n_embd});
        tensor(b + "ffn_gate_inp.weight", {n_embd, n_expert});
        tensor(b + "ffn_gate_exps.weight", {n_embd, n_ff, n_expert});
        tensor(b + "ffn_up_exps.weight", {n_embd, n_ff, n_expert});
        tensor(b + "ffn_down_exps.weight", {n_ff, n_embd, n_expert});
    }
    const std::string model = (dir / "moe-F32.gguf").string();
    w.write(model);

    // The imatrix file (GGUF: in_sum2 [ne0, experts], counts [1, experts]) and what
    // llama-quantize computes from it: sums / count per expert, 1 where the count is 0.
    qinfer::gguf::writer iw;
    const std::vector<std::string> ds{"moe-corpus"};
    iw.set("imatrix.datasets", std::span<const std::string>(ds));
    iw.set("imatrix.chunk_count", std::uint32_t(9));
    iw.set("imatrix.chunk_size", std::uint32_t(512));
    std::map<std::string, std::vector<float>> expected;
    for (const auto& [name, e] : entries) {
        const std::int64_t nexp = std::int64_t(e.counts.size());
        const std::vector<std::int64_t> ne{e.ne0, nexp}, ne1{1, nexp};
        iw.add_tensor(name + ".in_sum2", qinfer::type_id::f32, ne, std::as_bytes(std::span<const float>(e.sums)));
        iw.add_tensor(name + ".counts", qinfer::type_id::f32, ne1, std::as_bytes(std::span<const float>(e.counts)));
        std::vector<float> v;
        for (std::int64_t x = 0; x < nexp; ++x)
            for (std::int64_t i = 0; i < e.ne0; ++i)
                v.push_back(e.counts[std::size_t(x)] > 0 ? e.sums[std::size_t(x * e.ne0 + i)] / e.counts[std::size_t(x)] : 1.0f);
        expected[name] = v;
    }
    const std::string imatrix_path = (dir / "imatrix.gguf").string();
    iw.write(imatrix_path);
    const tools::imatrix imx = tools::load_imatrix(imatrix_path);
    CHECK(same_values(expected, imx));

    std::vector<oracle::llama_imatrix_entry> list;
    for (const auto& [name, v] : expected) list.push_back({name.c_str(), v.data(), v.size()});
    list.push_back({nullptr, nullptr, 0});
    std::vector<oracle::llama_kv_override> kv{
        oracle::kv_str("quantize.imatrix.file", imatrix_path), oracle::kv_str("quantize.imatrix.dataset", "moe-corpus"),
        oracle::kv_int("quantize.imatrix.entries_count", std::int64_t(expected.size())),
        oracle::kv_int("quantize.imatrix.chunks_count", 9), oracle::llama_kv_override{}};
    const std::pair<const char*, oracle::llama_ftype> types[] = {
        {"Q4_0", oracle::ftype_q4_0}, {"Q4_K_M", oracle::ftype_q4_k_m}, {"IQ4_XS", oracle::ftype_iq4_xs},
        {"Q2_K_S", oracle::ftype_q2_k_s}};
    for (const auto& [name, ft] : types) {
        CAPTURE(name);
        const std::string theirs = (dir / (std::string("llama-") + name + ".gguf")).string();
        const std::string ours = (dir / (std::string("qinfer-") + name + ".gguf")).string();
        REQUIRE(llama->quantize(model, theirs, ft, 2, list.data(), kv.data()) == 0);
        tools::quantize_options o;
        o.type = tools::parse_ftype(name);
        o.n_threads = 2;
        o.importance = &imx;
        const auto r = tools::quantize_model(model, ours, o);
        int experts = 0;
        for (const auto& p : r.tensors) experts += p.used_imatrix && p.ne[2] == n_expert;
        CHECK(experts == 3 * n_layer);
        const std::string diff = describe_difference(ours, theirs);
        MESSAGE("moe imatrix " << std::string(name) << ": " << (diff.empty() ? std::string("identical") : "DIFFERS: " + diff));
        CHECK(diff.empty());
        fs::remove(theirs);
        fs::remove(ours);
    }
    fs::remove_all(dir);
}

TEST_CASE("quantize tool: malformed imatrix files are clear errors naming the file and the entry") {
    auto bytes_of = [](const std::vector<std::int32_t>& words, const std::string& tail = "") {
        std::vector<std::byte> b(words.size() * 4);
        std::memcpy(b.data(), words.data(), b.size());
        for (char c : tail) b.push_back(std::byte(c));
        return b;
    };
    auto parse_error = [&](const std::vector<std::byte>& b) {
        return error_of([&] { tools::parse_imatrix(b, "bad.dat"); });
    };
    auto name = [](const char* s) { std::int32_t w; std::memcpy(&w, s, 4); return w; };  // 4 chars as a word
    // n_entries, then {len, name, ncall, nval, values...}
    CHECK(parse_error({}).find("bad.dat: truncated legacy imatrix file: the entry count") != std::string::npos);
    CHECK(parse_error(bytes_of({0})).find("bad.dat: legacy imatrix file has no entries") != std::string::npos);
    CHECK(parse_error(bytes_of({-3})).find("no entries") != std::string::npos);
    CHECK(parse_error(bytes_of({1000000, 4, 0, 0, 0})).find("entry count 1000000 does not fit") != std::string::npos);
    CHECK(parse_error(bytes_of({1, -4, name("abcd"), 1, 1, 0})).find("entry 1 of 1: negative name length -4") !=
          std::string::npos);
    CHECK(parse_error(bytes_of({1, 400, name("abcd"), 1, 1, 0})).find("entry 1 of 1: name needs 400 bytes") !=
          std::string::npos);
    CHECK(parse_error(bytes_of({1, 4, name("abcd"), 1, 0, 0})).find("entry 1 of 1 ('abcd'): value count 0") !=
          std::string::npos);
    CHECK(parse_error(bytes_of({1, 4, name("abcd"), 1, 1 << 30, 0})).find("entry 1 of 1 ('abcd'): values needs") !=
          std::string::npos);
    CHECK(parse_error(bytes_of({2, 4, name("abcd"), 1, 1, 0})).find("entry count 2 does not fit") != std::string::npos);
    CHECK(parse_error(bytes_of({2, 4, name("abcd"), 1, 1, 0, 4, name("efgh"), 1, 5}))
              .find("bad.dat: truncated legacy imatrix file: entry 2 of 2 ('efgh'): values needs 20 bytes") !=
          std::string::npos);
    // a trailer too short for its chunk count, or its dataset name
    CHECK(parse_error(bytes_of({1, 4, name("abcd"), 1, 1, 0}, "xy")).find("trailer: chunk count") != std::string::npos);
    CHECK(parse_error(bytes_of({1, 4, name("abcd"), 1, 1, 0, 7, 50}, "short")).find("trailer: dataset name") !=
          std::string::npos);
    // a well-formed file: values divided by the call count, trailer read
    float two = 6.0f;
    std::int32_t two_bits;
    std::memcpy(&two_bits, &two, 4);
    const auto ok = tools::parse_imatrix(bytes_of({1, 4, name("abcd"), 3, 1, two_bits, 7, 2}, "ds"), "ok.dat");
    REQUIRE(ok.find("abcd"));
    CHECK(ok.find("abcd")->at(0) == 2.0f);
    CHECK(ok.chunk_count == 7);
    CHECK(ok.datasets == std::vector<std::string>{"ds"});

    // GGUF files: metadata, pairs, types and shapes are checked.
    const fs::path dir = fs::path("model-ref") / "imatrix-errors";
    fs::create_directories(dir);
    auto gguf_error = [&](auto build) {
        qinfer::gguf::writer w;
        build(w);
        const std::string path = (dir / "bad.gguf").string();
        w.write(path);
        return error_of([&] { tools::load_imatrix(path); });
    };
    const std::vector<float> four{1, 2, 3, 4}, one{2}, two_counts{2, 0};
    const std::vector<std::string> ds{"d"};
    auto meta = [&](qinfer::gguf::writer& w) {
        w.set("imatrix.datasets", std::span<const std::string>(ds));
        w.set("imatrix.chunk_count", std::uint32_t(1));
        w.set("imatrix.chunk_size", std::uint32_t(1));
    };
    auto f32 = [](qinfer::gguf::writer& w, const std::string& n, const std::vector<float>& v) {
        const std::vector<std::int64_t> ne{std::int64_t(v.size())};
        w.add_tensor(n, qinfer::type_id::f32, ne, std::as_bytes(std::span<const float>(v)));
    };
    std::string e = gguf_error([&](auto& w) { f32(w, "a.in_sum2", four); f32(w, "a.counts", one); });
    CHECK(e.find("bad.gguf: missing imatrix metadata: key 'imatrix.datasets'") != std::string::npos);
    e = gguf_error([&](auto& w) { meta(w); f32(w, "a.in_sum2", four); });
    CHECK(e.find("bad.gguf: entry 'a' has sums but no counts (tensor 'a.counts' is missing)") != std::string::npos);
    e = gguf_error([&](auto& w) {
        meta(w);
        f32(w, "a.in_sum2", four);
        const std::vector<std::int64_t> ne{1};
        const std::uint16_t h = 0x3c00;
        w.add_tensor("a.counts", qinfer::type_id::f16, ne, std::as_bytes(std::span<const std::uint16_t>(&h, 1)));
    });
    CHECK(e.find("bad.gguf: tensor 'a.counts' has type f16, expected f32") != std::string::npos);
    e = gguf_error([&](auto& w) { meta(w); f32(w, "a.in_sum2", {1, 2, 3}); f32(w, "a.counts", two_counts); });
    CHECK(e.find("entry 'a' has 3 sums, not a multiple of its 2 counts") != std::string::npos);
    e = gguf_error([&](auto& w) { meta(w); f32(w, "a.in_sum2", four); f32(w, "a.counts", {std::numeric_limits<float>::infinity()}); });
    CHECK(e.find("entry 'a': count 0 is inf") != std::string::npos);
    e = gguf_error([&](auto& w) { meta(w); f32(w, "other", four); });
    CHECK(e.find("no '<tensor>.in_sum2' / '<tensor>.counts' pairs") != std::string::npos);
    // two experts: the second saw no tokens, its importance is 1
    qinfer::gguf::writer w;
    meta(w);
    f32(w, "a.in_sum2", four);
    f32(w, "a.counts", two_counts);
    w.write((dir / "ok.gguf").string());
    const auto two_experts = tools::load_imatrix(dir / "ok.gguf");
    CHECK(*two_experts.find("a") == std::vector<float>{0.5f, 1.0f, 1.0f, 1.0f});
    const std::string absent = error_of([&] { tools::load_imatrix(dir / "absent.gguf"); });
    CHECK(absent.find("absent.gguf: imatrix file does not exist") != std::string::npos);
    fs::remove_all(dir);
}

TEST_CASE("quantize tool: synthetic llama (SPM vocabulary, untied output) is byte-identical with llama.cpp") {
    mtest::synthetic_shape s{"llama", vocab("llama-spm")};
    s.rope_freqs = true;
    compare_arch(s, 11, {"Q8_0", "Q4_0", "Q2_K", "Q3_K_M", "Q4_K_M", "Q5_K_S", "Q6_K"});
}

TEST_CASE("quantize tool: synthetic qwen2 (GPT-2 vocabulary, tied embeddings) is byte-identical with llama.cpp") {
    mtest::synthetic_shape s{"qwen2", vocab("gpt-2")};
    s.tied = true;
    compare_arch(s, 12, {"F16", "BF16", "Q4_1", "Q5_0", "Q5_1", "Q3_K_S", "Q3_K_L", "Q4_K_S", "Q5_K_M", "IQ4_NL"});
}

// 8 layers (the "more bits" layer pattern), GQA 4 (attn_v rules of Q2_K / IQ4), and row lengths
// 128 (attn_output) and 480 (ffn_down) that no 256-block fits: the fallback types. The input
// is F16 (llama.cpp's own conversion of the F32 model).
TEST_CASE("quantize tool: synthetic qwen3 F16 with 8 layers, GQA 4 and odd row lengths is byte-identical with llama.cpp") {
    mtest::synthetic_shape s{"qwen3", vocab("phi-3")};
    s.n_layer = 8;
    s.n_head = 8;
    s.n_head_kv = 2;
    s.head_dim = 16;
    s.n_ff = 480;
    s.tied = true;
    CHECK(compare_arch(s, 13, {"Q2_K", "Q3_K_M", "Q4_K_S", "Q4_K_M", "Q5_K_M", "Q6_K", "IQ4_XS"}, true) != 0);
}

TEST_CASE("quantize tool: type names") {
    CHECK(tools::parse_ftype("q4_k_m") == tools::ftype::q4_K_M);
    CHECK(tools::parse_ftype("Q4_K") == tools::ftype::q4_K_M);
    CHECK(tools::parse_ftype("15") == tools::ftype::q4_K_M);
    CHECK(tools::parse_ftype("bf16") == tools::ftype::bf16);
    CHECK(tools::parse_ftype("q2_k_s") == tools::ftype::q2_K_S);  // possible with an importance matrix
    CHECK(tools::parse_ftype("21") == tools::ftype::q2_K_S);
    const std::string unknown = error_of([] { tools::parse_ftype("Q7_K"); });
    CHECK(unknown.find("unknown type 'Q7_K'") != std::string::npos);
    CHECK(unknown.find("Q4_K_M") != std::string::npos);
    const std::string iq2 = error_of([] { tools::parse_ftype("IQ2_XXS"); });
    CHECK(iq2.find("IQ2_XXS is not supported") != std::string::npos);
}

TEST_CASE("quantize tool: clear errors for a missing file and for quantized input without --allow-requantize") {
    const fs::path dir = fs::path("model-ref") / "quantize-tool-errors";
    fs::create_directories(dir);
    tools::quantize_options o;
    o.type = tools::ftype::q4_K_M;
    const std::string missing = error_of([&] { tools::quantize_model(dir / "nope.gguf", dir / "out.gguf", o); });
    CHECK(missing.find("nope.gguf") != std::string::npos);
    CHECK(missing.find("does not exist") != std::string::npos);

    // A tiny llama-shaped model, then its Q8_0 version, then Q4_K_M from the Q8_0 one.
    qinfer::gguf::writer w;
    w.set("general.architecture", "llama");
    w.set("llama.block_count", std::uint32_t(1));
    w.set("llama.attention.head_count", std::uint32_t(2));
    std::vector<float> v(256 * 64);
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = float(int(i * 7919 % 255) - 127) / 64.0f;
    const std::vector<std::int64_t> ne = {256, 64};
    w.add_tensor("token_embd.weight", qinfer::type_id::f32, ne, std::as_bytes(std::span<const float>(v)));
    w.add_tensor("blk.0.ffn_down.weight", qinfer::type_id::f32, ne, std::as_bytes(std::span<const float>(v)));
    const std::vector<std::int64_t> ne1 = {256};
    w.add_tensor("blk.0.attn_norm.weight", qinfer::type_id::f32, ne1,
                 std::as_bytes(std::span<const float>(v).subspan(0, 256)));
    const std::string f32 = (dir / "tiny-F32.gguf").string(), q8 = (dir / "tiny-Q8_0.gguf").string();
    w.write(f32);
    o.type = tools::ftype::q8_0;
    const auto r = tools::quantize_model(f32, q8, o);
    REQUIRE(r.tensors.size() == 3);
    CHECK(r.tensors[0].name == "token_embd.weight");  // llama.cpp's order: non-layer tensors first
    CHECK(r.tensors[0].to == qinfer::type_id::q8_0);  // tied: the output head's rule, which keeps Q8_0
    CHECK(r.tensors[1].to == qinfer::type_id::f32);   // blk.0.attn_norm: 1-D stays F32
    CHECK(r.tensors[2].to == qinfer::type_id::q8_0);

    o.type = tools::ftype::q4_K_M;
    const std::string requant = error_of([&] { tools::quantize_model(q8, dir / "out.gguf", o); });
    CHECK(requant.find("'token_embd.weight' is already quantized (q8_0)") != std::string::npos);
    CHECK(requant.find("allow_requantize") != std::string::npos);
    CHECK(requant.find("--allow-requantize") == std::string::npos);  // the library names no tool flag
    CHECK_FALSE(fs::exists(dir / "out.gguf"));
    o.allow_requantize = true;
    const auto rq = tools::quantize_model(q8, dir / "out.gguf", o);
    CHECK(rq.tensors[2].to == qinfer::type_id::q6_K);  // Q4_K_M: ffn_down of layer 0 of 1 gets more bits
    fs::remove_all(dir);
}
