// Model files whose hyper-parameters disagree with their tensors or with themselves: each
// must give a qinfer::error naming the key or tensor at fault, never a crash or a huge
// allocation. The files are small synthetic models (model/synthetic.hpp) with one thing wrong.
#include <filesystem>
#include <string>

#include <doctest/doctest.h>
#include <qinfer/model/model.hpp>

#include "model/conformance.hpp"

namespace {

namespace fs = std::filesystem;

mtest::synthetic_shape small(const std::string& arch) {
    mtest::synthetic_shape s{arch, mtest::vocab("llama-spm")};
    s.n_embd = 64;
    s.n_layer = 1;
    s.n_head = 4;
    s.n_head_kv = 2;
    s.head_dim = 16;
    s.n_ff = 128;
    return s;
}

// The message qinfer::model's constructor throws for the file `s` describes.
std::string load_error(const mtest::synthetic_shape& s, const std::string& name) {
    REQUIRE_MESSAGE(fs::exists(s.vocab_file), "vocabulary " << s.vocab_file << " not present (../shared/refdata)");
    fs::create_directories("model-ref/bad");
    const std::string path = "model-ref/bad/" + name + ".gguf";
    mtest::write_synthetic(s, path, 7);
    try {
        qinfer::model m(path);
    } catch (const qinfer::error& e) {
        return e.what();
    }
    return "(loaded without error)";
}

}  // namespace

TEST_CASE("bad model: hyper-parameters inconsistent with the tensors give errors naming the key or tensor") {
    SUBCASE("a sound file loads") {
        auto s = small("llama");
        s.n_expert = 4;
        s.n_expert_used = 2;
        CHECK(load_error(s, "sound") == "(loaded without error)");
    }
    SUBCASE("expert_used_count > expert_count") {
        auto s = small("llama");
        s.n_expert = 4;
        s.n_expert_used = 5;
        CHECK(load_error(s, "used-gt-count").find("llama.expert_used_count = 5") != std::string::npos);
    }
    SUBCASE("a 3-D expert tensor with the wrong expert dimension") {
        auto s = small("llama");
        s.n_expert = 4;
        s.n_expert_used = 2;
        s.n_expert_tensors = 3;
        const std::string e = load_error(s, "expert-dim");
        CHECK(e.find("blk.0.ffn_gate_exps.weight") != std::string::npos);
        CHECK(e.find("expected [64, 128, 4]") != std::string::npos);
    }
    SUBCASE("qwen3moe without experts") {
        auto s = small("qwen3moe");
        CHECK(load_error(s, "moe-no-experts").find("qwen3moe.expert_count") != std::string::npos);
    }
    SUBCASE("experts in an architecture that has none") {
        auto s = small("qwen2");
        s.n_expert = 4;
        s.n_expert_used = 2;
        CHECK(load_error(s, "dense-with-experts").find("qwen2.expert_count = 4") != std::string::npos);
    }
    SUBCASE("a sliding window of 0") {
        auto s = small("gemma2");
        s.tied = true;
        s.edit = [](qinfer::gguf::writer& w) { w.set("gemma2.attention.sliding_window", std::uint32_t(0)); };
        CHECK(load_error(s, "window-0").find("gemma2.attention.sliding_window = 0") != std::string::npos);
    }
    SUBCASE("a soft-cap of 0") {
        auto s = small("gemma2");
        s.tied = true;
        s.edit = [](qinfer::gguf::writer& w) { w.set("gemma2.attn_logit_softcapping", 0.0f); };
        CHECK(load_error(s, "softcap-0").find("gemma2.attn_logit_softcapping must be > 0") != std::string::npos);
    }
    SUBCASE("a per-layer array where qinfer reads one value") {
        auto s = small("llama");
        s.edit = [](qinfer::gguf::writer& w) {
            const std::vector<std::int32_t> per_layer{2, 2, 2};
            w.set("llama.attention.head_count_kv", std::span<const std::int32_t>(per_layer));
        };
        CHECK(load_error(s, "per-layer-array").find("llama.attention.head_count_kv must be an integer") != std::string::npos);
    }
    SUBCASE("a block_count the tensors cannot back (no terabyte allocation)") {
        auto s = small("llama");
        s.edit = [](qinfer::gguf::writer& w) { w.set("llama.block_count", std::uint32_t(0x7fffffff)); };
        const std::string e = load_error(s, "block-count");
        CHECK(e.find("llama.block_count = 2147483647") != std::string::npos);
    }
    SUBCASE("a fused attn_qkv of the wrong height") {
        auto s = small("phi3");
        s.fused = true;
        s.edit = [](qinfer::gguf::writer& w) { w.set("phi3.attention.head_count_kv", std::uint32_t(4)); };
        CHECK(load_error(s, "qkv-height").find("blk.0.attn_qkv.weight") != std::string::npos);
    }
}
