// Model files whose hyper-parameters disagree with their tensors or with themselves: each
// must give a qinfer::error naming the key or tensor at fault, never a crash or a huge
// allocation. The files are small synthetic models (model/synthetic.hpp) with one thing wrong.
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

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

// The tokenizer's arrays and ids, and the other counts the loader could size from: each
// checked against what the file holds before anything is allocated from it.
TEST_CASE("bad model: vocabulary and context counts the file does not back give errors naming the key") {
    const auto edited = [](const char* vocab_name, std::function<void(qinfer::gguf::writer&)> edit) {
        auto s = small("llama");
        s.vocab_file = mtest::vocab(vocab_name);
        s.edit = std::move(edit);
        return s;
    };
    const auto contains = [](const std::string& e, const std::string& part) {
        INFO(e);
        CHECK(e.find(part) != std::string::npos);
    };
    SUBCASE("vocab_size disagreeing with the token list") {
        contains(load_error(edited("llama-spm", [](auto& w) { w.set("llama.vocab_size", std::uint32_t(0x7fffffff)); }),
                            "vocab-size"),
                 "llama.vocab_size = 2147483647 but tokenizer.ggml.tokens holds 32000 tokens");
    }
    SUBCASE("an empty token list") {
        contains(load_error(edited("llama-spm", [](auto& w) { w.set("tokenizer.ggml.tokens", std::vector<std::string>{}); }),
                            "tokens-empty"),
                 "tokenizer.ggml.tokens\" is an empty array");
    }
    SUBCASE("a token list that is not strings") {
        contains(load_error(edited("llama-spm", [](auto& w) { w.set("tokenizer.ggml.tokens", std::vector<std::int32_t>{1, 2}); }),
                            "tokens-type"),
                 "tokenizer.ggml.tokens");
    }
    SUBCASE("fewer scores than tokens") {
        contains(load_error(edited("llama-spm", [](auto& w) { w.set("tokenizer.ggml.scores", std::vector<float>(10, 0.5f)); }),
                            "scores-short"),
                 "key \"tokenizer.ggml.scores\" has 10 entries for 32000 tokens");
    }
    SUBCASE("fewer token types than tokens") {
        contains(load_error(edited("llama-spm", [](auto& w) { w.set("tokenizer.ggml.token_type", std::vector<std::int32_t>(10, 1)); }),
                            "types-short"),
                 "key \"tokenizer.ggml.token_type\" has 10 entries for 32000 tokens");
    }
    SUBCASE("token types that are not int32") {
        contains(load_error(edited("llama-spm", [](auto& w) { w.set("tokenizer.ggml.token_type", std::vector<float>(32000, 1.0f)); }),
                            "types-type"),
                 "tokenizer.ggml.token_type");
    }
    SUBCASE("a BPE vocabulary without merges") {
        contains(load_error(edited("gpt-2", [](auto& w) { w.erase("tokenizer.ggml.merges"); }), "merges-missing"),
                 "BPE vocabulary without key \"tokenizer.ggml.merges\"");
    }
    SUBCASE("merges that are not strings") {
        contains(load_error(edited("gpt-2", [](auto& w) { w.set("tokenizer.ggml.merges", std::vector<std::int32_t>{1, 2, 3}); }),
                            "merges-type"),
                 "tokenizer.ggml.merges");
    }
    SUBCASE("a special token id of the wrong type") {
        contains(load_error(edited("llama-spm", [](auto& w) { w.set("tokenizer.ggml.bos_token_id", std::string("1")); }),
                            "bos-type"),
                 "tokenizer.ggml.bos_token_id");
    }
    SUBCASE("a context length no u32 holds") {
        contains(load_error(edited("llama-spm", [](auto& w) { w.set("llama.context_length", std::uint64_t(1) << 40); }),
                            "context-length"),
                 "llama.context_length = 1099511627776 is out of range");
    }
    SUBCASE("a context length of 0") {
        contains(load_error(edited("llama-spm", [](auto& w) { w.set("llama.context_length", std::uint32_t(0)); }),
                            "context-length-0"),
                 "llama.context_length = 0 is out of range");
    }
}

// A special token id outside the vocabulary is not an error in llama.cpp (it warns "bad
// special token" and keeps the default id), so qinfer loads the file the same way: the id
// stays in range.
TEST_CASE("bad model: special token ids outside the vocabulary keep llama.cpp's defaults") {
    auto s = small("llama");
    s.edit = [](qinfer::gguf::writer& w) {
        w.set("tokenizer.ggml.bos_token_id", std::uint32_t(0x7fffffff));
        w.set("tokenizer.ggml.eos_token_id", std::uint32_t(32000));
        w.set("tokenizer.ggml.padding_token_id", std::uint32_t(0xffffffff));
    };
    REQUIRE(load_error(s, "special-ids") == "(loaded without error)");
    const qinfer::model m("model-ref/bad/special-ids.gguf");
    CHECK(m.tokenizer().vocab().bos == 1);
    CHECK(m.tokenizer().vocab().eos == 2);
    CHECK(m.tokenizer().vocab().pad == qinfer::text::no_token);
    CHECK(m.tokenizer().encode("Hello").front() == 1);
}
