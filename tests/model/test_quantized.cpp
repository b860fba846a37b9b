// Synthetic llama / qwen2 / qwen3 models quantized by llama.cpp's own quantizer into every
// supported file type, run by qinfer and by llama.cpp: distributions and greedy tokens.
#include "model/conformance.hpp"

using mtest::vocab;

TEST_CASE("synthetic llama (SPM vocabulary, rope_freqs) in every file type matches llama.cpp") {
    mtest::synthetic_shape s{"llama", vocab("llama-spm")};
    s.rope_freqs = true;
    mtest::run_arch(s, 1);
}

TEST_CASE("synthetic qwen2 (BPE vocabulary, q/k/v biases, tied embeddings) in every file type matches llama.cpp") {
    mtest::synthetic_shape s{"qwen2", vocab("gpt-2")};
    s.tied = true;
    mtest::run_arch(s, 2);
}

TEST_CASE("synthetic qwen3 (q/k norms, head_dim != n_embd / n_head) in every file type matches llama.cpp") {
    mtest::synthetic_shape s{"qwen3", vocab("phi-3")};
    s.n_head = 8;
    s.n_head_kv = 4;
    mtest::run_arch(s, 3);
}
