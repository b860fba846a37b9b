// Reads llama.cpp's real files from ../shared/refdata.
//
// Expected values were read by hand from an independent struct-based Python dumper of the
// GGUF layout (written for this purpose, not part of the project), cross-checked with the
// facts in refdata/README.md (stories260K: dim 64, 5 layers, 8 heads / 4 KV heads, FFN 172,
// vocab 512, all tensors F32).
#include "gguf/support.hpp"

#include <cstring>

using namespace gtest;
using qinfer::type_id;

TEST_CASE("stories260K: header, metadata and tensors") {
    const auto path = refdata("models/stories260K.gguf");
    if (!path) return;
    const gguf::reader r(*path);

    CHECK(r.is_mapped());
    CHECK(r.version() == 3);
    CHECK(r.metadata_count() == 19);
    CHECK(r.tensors().size() == 48);
    CHECK(r.alignment() == 32);
    CHECK(r.data_offset() == 14176);
    CHECK(r.file_bytes().size() == 1185376);

    CHECK(r.require<std::string_view>("general.architecture") == "llama");
    CHECK(r.require<std::string_view>("tokenizer.ggml.model") == "llama");
    CHECK(r.require<std::uint32_t>("llama.embedding_length") == 64);
    CHECK(r.require<std::uint32_t>("llama.block_count") == 5);
    CHECK(r.require<std::uint32_t>("llama.attention.head_count") == 8);
    CHECK(r.require<std::uint32_t>("llama.attention.head_count_kv") == 4);
    CHECK(r.require<std::uint32_t>("llama.feed_forward_length") == 172);
    CHECK(r.require<std::uint32_t>("llama.context_length") == 2048);
    CHECK(r.require<std::uint32_t>("llama.rope.dimension_count") == 8);
    CHECK(r.require<std::uint32_t>("tokenizer.ggml.seperator_token_id") == 4294967295u);
    CHECK(r.require<float>("llama.attention.layer_norm_rms_epsilon") == 1e-5f);
    CHECK(r.metadata()[0].key == "tokenizer.ggml.tokens");  // file order is kept
    CHECK(r.metadata()[0].offset == 24);
    CHECK(r.find("llama.block_count")->offset == 11218);

    const auto tokens = r.require_array<std::string_view>("tokenizer.ggml.tokens");
    REQUIRE(tokens.size() == 512);
    CHECK(tokens[0] == "<unk>");
    CHECK(tokens[1] == "<s>");
    CHECK(tokens[2] == "</s>");
    CHECK(tokens[3] == "<0x00>");
    CHECK(tokens[511] == "\xe2\x80\x8a");
    const auto scores = r.require_array<float>("tokenizer.ggml.scores");
    REQUIRE(scores.size() == 512);
    CHECK(scores[0] == 0.0f);
    CHECK(scores[510] == -251.0f);
    CHECK(scores[511] == -252.0f);
    const auto token_type = r.require_array<std::int32_t>("tokenizer.ggml.token_type");
    REQUIRE(token_type.size() == 512);
    CHECK(token_type[0] == 2);
    CHECK(token_type[1] == 3);
    CHECK(token_type[3] == 6);
    CHECK(token_type[511] == 1);

    struct expected_tensor {
        const char* name;
        int n_dims;
        std::int64_t ne0, ne1;
        std::uint64_t offset;
        float first;
    };
    const expected_tensor expected[] = {
        {"token_embd.weight", 2, 64, 512, 0, -0.29474878311157227f},
        {"output_norm.weight", 1, 64, 1, 131072, 2.4583089351654053f},
        {"output.weight", 2, 64, 512, 131328, -0.29474878311157227f},
        {"blk.0.attn_k.weight", 2, 64, 32, 278784, 0.2161301076412201f},
        {"blk.0.ffn_down.weight", 2, 172, 64, 355840, 0.13498419523239136f},
        {"blk.0.ffn_up.weight", 2, 64, 172, 399872, 0.07037118822336197f},
        {"blk.4.ffn_norm.weight", 1, 64, 1, 1170944, 1.0344241857528687f},
    };
    for (const expected_tensor& e : expected) {
        CAPTURE(e.name);
        const gguf::tensor_info& t = r.tensor(e.name);
        CHECK(t.type == type_id::f32);
        CHECK(t.n_dims == e.n_dims);
        CHECK(t.ne == std::array<std::int64_t, 4>{e.ne0, e.ne1, 1, 1});
        CHECK(t.offset == e.offset);
        CHECK(t.n_elements == e.ne0 * e.ne1);
        CHECK(t.n_bytes == static_cast<std::uint64_t>(e.ne0 * e.ne1 * 4));
        // A view into the mapping, not a copy.
        CHECK(t.data == r.file_bytes().data() + 14176 + e.offset);
        float first;
        std::memcpy(&first, t.data, 4);
        CHECK(first == e.first);
    }
    CHECK(r.tensors().front().name == "token_embd.weight");
    CHECK(r.tensors().back().name == "blk.4.ffn_norm.weight");
    CHECK(r.find_tensor("blk.5.ffn_norm.weight") == nullptr);
    for (const gguf::tensor_info& t : r.tensors()) CHECK(t.type == type_id::f32);
}

TEST_CASE("stories260K: the read() fallback gives the same bytes") {
    const auto path = refdata("models/stories260K.gguf");
    if (!path) return;
    const gguf::reader mapped(*path);
    const gguf::reader read(*path, qinfer::mapped_file::mode::read);
    CHECK_FALSE(read.is_mapped());
    REQUIRE(read.tensors().size() == mapped.tensors().size());
    for (std::size_t i = 0; i < read.tensors().size(); ++i) {
        const auto& a = mapped.tensors()[i];
        const auto& b = read.tensors()[i];
        CHECK(a.name == b.name);
        CHECK(std::memcmp(a.data, b.data, a.n_bytes) == 0);
        // The read buffer is page-aligned, so tensor data keeps the file's alignment.
        CHECK(reinterpret_cast<std::uintptr_t>(b.data) % 32 == 0);
    }
}

TEST_CASE("stories260K: copying it through the writer reproduces the file byte for byte") {
    // The file was written by llama.cpp's tools; an identical copy shows the writer uses the
    // same layout (entry order, tensor order, padding).
    const auto path = refdata("models/stories260K.gguf");
    if (!path) return;
    const gguf::reader r(*path);
    gguf::writer w;
    for (const gguf::metadata_entry& e : r.metadata()) w.set(std::string(e.key), e.value);
    for (const gguf::tensor_info& t : r.tensors())
        w.add_tensor(t.name, t.type, std::span(t.ne.data(), static_cast<std::size_t>(t.n_dims)), t.bytes());
    const bytes copy = w.bytes();
    const auto original = r.file_bytes();
    REQUIRE(copy.size() == original.size());
    CHECK(std::memcmp(copy.data(), original.data(), copy.size()) == 0);
}

TEST_CASE("vocabulary files: architecture, token counts and token strings") {
    struct vocab_facts {
        const char* file;
        std::size_t n_kv;
        const char* arch;
        const char* tokenizer;
        std::size_t n_tokens;
        const char* token_100;
        const char* last_token;
        std::size_t n_merges;  // 0: no merges key
    };
    const vocab_facts files[] = {
        {"ggml-vocab-baichuan.gguf", 18, "baichuan", "llama", 64000, "<reserved_7>", "\xef\x87\xa9", 0},
        {"ggml-vocab-bert-bge.gguf", 20, "bert", "bert", 30522, "[UNK]", "\xef\xbd\x9e", 0},
        {"ggml-vocab-deepseek-coder.gguf", 25, "llama", "gpt2", 32256, "\xc2\xa7", "[PAD32255]", 31757},
        {"ggml-vocab-deepseek-llm.gguf", 23, "llama", "gpt2", 102400, "\xc2\xa7", "[PAD102399]", 99757},
        {"ggml-vocab-falcon.gguf", 18, "falcon", "gpt2", 65024, "y", "\xc4\xa0victoria", 64784},
        {"ggml-vocab-gpt-2.gguf", 16, "gpt2", "gpt2", 50257, "\xc2\xa7", "<|endoftext|>", 50000},
        {"ggml-vocab-gpt-neox.gguf", 17, "gptneox", "gpt2", 50432, "\xc2\xa5", "[PAD50431]", 50009},
        {"ggml-vocab-llama-spm.gguf", 22, "llama", "llama", 32000, "<0x61>", "\xe7\xbb\x99", 0},
        {"ggml-vocab-mpt.gguf", 17, "mpt", "gpt2", 50432, "\xc2\xa5", "[PAD50431]", 50009},
        {"ggml-vocab-phi-3.gguf", 26, "phi3", "llama", 32064, "<0x61>", "[PAD32063]", 0},
        {"ggml-vocab-refact.gguf", 18, "refact", "gpt2", 49216, "r", "[PAD49215]", 48891},
        {"ggml-vocab-starcoder.gguf", 19, "starcoder2", "gpt2", 49152, "_", "sdb", 48872},
    };
    for (const vocab_facts& f : files) {
        CAPTURE(f.file);
        const auto path = refdata(std::string("vocab/") + f.file);
        if (!path) continue;
        const gguf::reader r(*path);
        CHECK(r.version() == 3);
        CHECK(r.tensors().empty());
        CHECK(r.metadata_count() == f.n_kv);
        CHECK(r.require<std::string_view>("general.architecture") == f.arch);
        CHECK(r.require<std::string_view>("tokenizer.ggml.model") == f.tokenizer);
        const auto tokens = r.require_array<std::string_view>("tokenizer.ggml.tokens");
        REQUIRE(tokens.size() == f.n_tokens);
        CHECK(tokens[100] == f.token_100);
        CHECK(tokens.back() == f.last_token);
        CHECK(r.type_of("tokenizer.ggml.tokens") == gguf::value_type::array);
        CHECK(r.find("tokenizer.ggml.tokens")->value.element_type() == gguf::value_type::string);
        CHECK(r.require_array<std::int32_t>("tokenizer.ggml.token_type").size() == f.n_tokens);
        if (f.n_merges)
            CHECK(r.require_array<std::string_view>("tokenizer.ggml.merges").size() == f.n_merges);
        else
            CHECK_FALSE(r.contains("tokenizer.ggml.merges"));
    }
}

TEST_CASE("vocabulary files: a few exact values") {
    // llama-spm
    if (const auto path = refdata("vocab/ggml-vocab-llama-spm.gguf")) {
        const gguf::reader r(*path);
        CHECK(r.require<std::string_view>("general.name") == "llama-spm");
        CHECK(r.require<std::string_view>("tokenizer.ggml.pre") == "default");
        CHECK(r.require<std::uint32_t>("llama.vocab_size") == 32000);
        CHECK(r.require<std::uint32_t>("tokenizer.ggml.bos_token_id") == 1);
        CHECK(r.require<bool>("tokenizer.ggml.add_bos_token") == true);
        CHECK(r.require<bool>("tokenizer.ggml.add_eos_token") == false);
        const auto scores = r.require_array<float>("tokenizer.ggml.scores");
        CHECK(scores.size() == 32000);
        CHECK(scores.back() == -31740.0f);
        CHECK(r.find("tokenizer.ggml.scores")->offset == 467560);
    }
    // gpt-2: merges are "left right" strings
    if (const auto path = refdata("vocab/ggml-vocab-gpt-2.gguf")) {
        const gguf::reader r(*path);
        const auto merges = r.require_array<std::string_view>("tokenizer.ggml.merges");
        CHECK(merges[0] == "\xc4\xa0 t");
        CHECK(merges[2] == "h e");
        CHECK(merges.back() == "\xc4\xa0g azed");
        CHECK(r.require<std::uint32_t>("tokenizer.ggml.eos_token_id") == 50256);
        CHECK(r.data_offset() == 1766807);  // no tensors: no padding after the infos
    }
    // bert-bge: a bool and an f32 that is not 1e-5
    if (const auto path = refdata("vocab/ggml-vocab-bert-bge.gguf")) {
        const gguf::reader r(*path);
        CHECK(r.require<bool>("bert.attention.causal") == false);
        CHECK(r.require<float>("bert.attention.layer_norm_epsilon") == 1e-12f);
        CHECK(r.require<std::uint32_t>("tokenizer.ggml.mask_token_id") == 103);
        CHECK(r.require_array<std::string_view>("tokenizer.ggml.tokens")[0] == "[PAD]");
    }
}
