// Synthetic llama / qwen2 / qwen3 models quantized by llama.cpp's own quantizer into every
// supported file type, run by qinfer and by llama.cpp: distributions and greedy tokens.
#include "model/shapes.hpp"

TEST_CASE("synthetic llama (SPM vocabulary, rope_freqs) in every file type matches llama.cpp") {
    mtest::run_arch(mtest::shape_llama(), 1);
}

TEST_CASE("synthetic qwen2 (BPE vocabulary, q/k/v biases, tied embeddings) in every file type matches llama.cpp") {
    mtest::run_arch(mtest::shape_qwen2(), 2);
}

TEST_CASE("synthetic qwen3 (q/k norms, head_dim != n_embd / n_head) in every file type matches llama.cpp") {
    mtest::run_arch(mtest::shape_qwen3(), 3);
}
