// qinfer's quantizer (tools/quantize.hpp, the qinfer-quantize tool) against llama.cpp's own
// llama_model_quantize: for synthetic F32 models, every file type must give the same file,
// byte for byte. Where it does not, the test says which key / tensor differs and how.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

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
    if (oracle::required()) FAIL("llama.cpp quantizer required (CI) but unavailable: " << q.why_missing());
    MESSAGE("SKIPPED: llama.cpp quantizer unavailable: " << q.why_missing());
    return nullptr;
}

// Each shape runs the file types in `only` (together every type at least once, in under a
// minute on 2 cores); QINFER_QUANTIZE_ALL=1 runs every type on every shape.
// Returns the number of fallback tensors seen (-1: skipped).
// from_f16: the input is llama.cpp's F16 conversion of the F32 model (the F16 -> F32 path).
int compare_arch(const mtest::synthetic_shape& shape, unsigned seed, const std::vector<std::string>& only,
                 bool from_f16 = false) {
    const bool all = std::getenv("QINFER_QUANTIZE_ALL") != nullptr;
    if (!fs::exists(shape.vocab_file)) {
        MESSAGE("SKIPPED: vocabulary " << shape.vocab_file << " not present");
        return -1;
    }
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

}  // namespace

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
    CHECK(requant.find("--allow-requantize") != std::string::npos);
    CHECK_FALSE(fs::exists(dir / "out.gguf"));
    o.allow_requantize = true;
    const auto rq = tools::quantize_model(q8, dir / "out.gguf", o);
    CHECK(rq.tensors[2].to == qinfer::type_id::q6_K);  // Q4_K_M: ffn_down of layer 0 of 1 gets more bits
    fs::remove_all(dir);
}
