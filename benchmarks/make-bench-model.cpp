// make-bench-model — writes a TinyLlama-1.1B-shaped llama model with random weights (dim 2048,
// 22 layers, 32 heads, 4 KV heads, FFN 5632, the 32000-token llama-spm vocabulary of the
// reference data) and has llama.cpp's own quantizer (npm package, see tests/oracle) make the
// requested file types, for side-by-side speed runs (scripts/bench-vs-llama.sh).
//
//   make-bench-model OUT_DIR TYPE...     (TYPE: F16 Q8_0 Q4_0 Q4_K_M Q5_K_M Q6_K ...)
#include <cstdio>
#include <filesystem>
#include <map>
#include <string>

#include "model/synthetic.hpp"
#include "oracle/ggml_oracle.hpp"
#include "oracle/llama_quantize.hpp"

int main(int argc, char** argv) {
    namespace fs = std::filesystem;
    if (argc < 3) {
        std::fprintf(stderr, "usage: make-bench-model OUT_DIR TYPE...\n");
        return 2;
    }
    const std::map<std::string, oracle::llama_ftype> types = {
        {"F16", oracle::ftype_f16},       {"BF16", oracle::ftype_bf16},     {"Q8_0", oracle::ftype_q8_0},
        {"Q4_0", oracle::ftype_q4_0},     {"Q4_1", oracle::ftype_q4_1},     {"Q5_0", oracle::ftype_q5_0},
        {"Q5_1", oracle::ftype_q5_1},     {"Q2_K", oracle::ftype_q2_k},     {"Q3_K_M", oracle::ftype_q3_k_m},
        {"Q4_K_M", oracle::ftype_q4_k_m}, {"Q5_K_M", oracle::ftype_q5_k_m}, {"Q6_K", oracle::ftype_q6_k},
        {"IQ4_NL", oracle::ftype_iq4_nl}, {"IQ4_XS", oracle::ftype_iq4_xs},
    };
    try {
        const fs::path dir = argv[1];
        fs::create_directories(dir);
        const fs::path f32 = dir / "tinyllama-shape-F32.gguf";
        if (!fs::exists(f32)) {
            mtest::synthetic_shape s{"llama", std::string(QINFER_REFDATA_DIR) + "/vocab/ggml-vocab-llama-spm.gguf"};
            s.n_embd = 2048;
            s.n_layer = 22;
            s.n_head = 32;
            s.n_head_kv = 4;
            s.head_dim = 64;
            s.n_ff = 5632;
            std::fprintf(stderr, "make-bench-model: writing %s (4.4 GB)\n", f32.c_str());
            mtest::write_synthetic(s, f32.string(), 1);
        }
        oracle::llama_quantizer q(oracle::lib_dir());
        if (!q.loaded()) throw std::runtime_error("llama.cpp quantizer unavailable: " + q.why_missing());
        for (int i = 2; i < argc; ++i) {
            const auto it = types.find(argv[i]);
            if (it == types.end()) throw std::runtime_error(std::string("unknown type ") + argv[i]);
            const fs::path out = dir / ("tinyllama-shape-" + it->first + ".gguf");
            if (fs::exists(out)) continue;
            std::fprintf(stderr, "make-bench-model: llama_model_quantize -> %s\n", out.c_str());
            if (q.quantize(f32.string(), out.string(), it->second) != 0) throw std::runtime_error("quantization failed: " + out.string());
        }
    } catch (const std::exception& e) {
        std::fprintf(stderr, "make-bench-model: %s\n", e.what());
        return 1;
    }
    return 0;
}
