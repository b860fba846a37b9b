// One conformance row per architecture beyond the dense llama / qwen2 / qwen3 of
// test_quantized.cpp: a synthetic model with llama.cpp's key and tensor names, quantized by
// llama_model_quantize into F32, F16, Q8_0, Q4_K_M and Q6_K, compared with llama.cpp at every
// position and in greedy decoding. Sliding windows are 8 tokens; the prompts plus their 24
// generated tokens run past 30, so every local layer masks keys.
#include "model/shapes.hpp"

namespace {

const mtest::file_type row_types[] = {
    {"F32", oracle::ftype_f32, mtest::exact},          {"F16", oracle::ftype_f16, mtest::half},
    {"Q8_0", oracle::ftype_q8_0, mtest::eight_bit},    {"Q4_K_M", oracle::ftype_q4_k_m, mtest::eight_bit},
    {"Q6_K", oracle::ftype_q6_k, mtest::eight_bit},
};

}  // namespace

TEST_CASE("architecture llama with experts (Mixtral-style: 4 experts, 2 used, softmax top-k renormalised)") {
    mtest::run_arch(mtest::shape_llama_experts(), 11, row_types);
}

TEST_CASE("architecture qwen3moe (8 experts, 2 used, expert width 128, q/k norms)") {
    mtest::run_arch(mtest::shape_qwen3moe(), 12, row_types);
}

TEST_CASE("architecture gemma2 (sandwich norms, GeGLU, scaled embeddings, soft-caps, window 8 on even layers)") {
    mtest::run_arch(mtest::shape_gemma2(), 13, row_types);
}

TEST_CASE("architecture gemma3 (q/k norms, window 8 on local layers, local RoPE base 10000, global base 1e6 scaled x2)") {
    mtest::run_arch(mtest::shape_gemma3(), 14, row_types);
}

TEST_CASE("architecture phi3 (fused attn_qkv and gate/up, LongRoPE factors and attn_factor, ignored window)") {
    mtest::run_arch(mtest::shape_phi3(), 15, row_types);
}

TEST_CASE("architecture gpt-oss (sinks, YaRN x4, biases, clamped SwiGLU experts, softmax over the top 2, window 8 on even layers)") {
    // llama.cpp's MXFP4_MOE file type: the experts in MXFP4, the other matrices in Q8_0.
    const mtest::file_type types[] = {
        row_types[0], row_types[1], row_types[2], {"MXFP4_MOE", oracle::ftype_mxfp4_moe, mtest::eight_bit},
        row_types[3], row_types[4],
    };
    mtest::run_arch(mtest::shape_gpt_oss(), 16, types);
}

TEST_CASE("architecture smollm3 (no RoPE on every fourth layer, tied embeddings)") {
    mtest::run_arch(mtest::shape_smollm3(), 17, row_types);
}

TEST_CASE("architecture granite (embedding, residual, attention and logit scales)") {
    mtest::run_arch(mtest::shape_granite(), 18, row_types);
}

TEST_CASE("architecture olmo2 (post-norms only, whole-vector q/k norms, window 8 on 3 of 4 layers)") {
    mtest::run_arch(mtest::shape_olmo2(), 19, row_types);
}
