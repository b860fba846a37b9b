// tests/model/conformance.hpp — one architecture's conformance row: a synthetic model
// (model/synthetic.hpp) quantized by llama.cpp's own quantizer into each file type, run by
// qinfer and by llama.cpp (node-llama-cpp): next-token distributions at every position and
// greedy tokens.
#pragma once

#include <filesystem>
#include <span>
#include <string>

#include <qinfer/model/session.hpp>

#include "model/reference.hpp"
#include "model/synthetic.hpp"
#include "oracle/llama_quantize.hpp"

namespace mtest {

struct file_type {
    const char* name;
    oracle::llama_ftype ftype;
    double max_abs;  // tolerance on |p_qinfer - p_llama|, see the README's conformance section
};

// Tolerances on |p_qinfer - p_llama| follow the precision of the activations the matmuls
// see. With F32 weights nothing is rounded and only summation order differs (measured
// <= 1e-4). F16 / BF16 weights round activations to 16 bits and block formats to 8 bits on
// both sides; a last-bit difference upstream (ggml sums in another order, its exp() is an
// approximation) flips a rounding, an 8-bit step of 1/127 in one activation, which peaked
// distributions amplify: measured <= 6e-3 (16-bit) and <= 5e-2 (8-bit).
inline constexpr double exact = 1e-3, half = 2e-2, eight_bit = 1e-1;
inline const file_type all_file_types[] = {
    {"F32", oracle::ftype_f32, exact},       {"F16", oracle::ftype_f16, half},
    {"BF16", oracle::ftype_bf16, half},      {"Q8_0", oracle::ftype_q8_0, eight_bit},
    {"Q4_0", oracle::ftype_q4_0, eight_bit}, {"Q4_1", oracle::ftype_q4_1, eight_bit},
    {"Q5_0", oracle::ftype_q5_0, eight_bit}, {"Q5_1", oracle::ftype_q5_1, eight_bit},
    {"Q2_K", oracle::ftype_q2_k, eight_bit}, {"Q3_K_M", oracle::ftype_q3_k_m, eight_bit},
    {"Q4_K_M", oracle::ftype_q4_k_m, eight_bit}, {"Q5_K_M", oracle::ftype_q5_k_m, eight_bit},
    {"Q6_K", oracle::ftype_q6_k, eight_bit}, {"IQ4_NL", oracle::ftype_iq4_nl, eight_bit},
    {"IQ4_XS", oracle::ftype_iq4_xs, eight_bit},
};

inline void run_arch(const synthetic_shape& shape, unsigned seed, std::span<const file_type> types = all_file_types) {
    namespace fs = std::filesystem;
    REQUIRE_MESSAGE(fs::exists(shape.vocab_file), "vocabulary " << shape.vocab_file << " not present (../shared/refdata)");
    if (!node_oracle_available()) return;
    oracle::llama_quantizer quantizer(oracle::lib_dir());
    REQUIRE_MESSAGE(quantizer.loaded(), "llama.cpp quantizer unavailable: " << quantizer.why_missing());
    const fs::path dir = fs::path("model-ref") / ("synthetic-" + shape.arch);
    fs::create_directories(dir);
    const std::string f32 = (dir / "model-F32.gguf").string();
    write_synthetic(shape, f32, seed);

    for (const file_type& ft : types) {
        const std::string file = (dir / ("model-" + std::string(ft.name) + ".gguf")).string();
        if (ft.ftype != oracle::ftype_f32) {
            REQUIRE_MESSAGE(quantizer.quantize(f32, file, ft.ftype) == 0, "llama_model_quantize failed for " << ft.name);
        }
        auto m = std::make_shared<const qinfer::model>(file);
        const std::vector<ref_case> cases = {
            {"a", "", {11, 22, 333, 4444, 555, 66, 7777, 888, 99, 1000}, true, 24},
            {"b", "", {5, 17, 1234, 31, 9}, true, 24},
        };
        const auto refs = run_reference(file, cases, m->config().n_vocab, dir / ft.name);
        qinfer::session_options opt;
        opt.n_ctx = 256;
        opt.n_threads = 2;
        qinfer::session s(m, opt);
        // A near-tie: llama.cpp's top-2 margin is within what the tolerance lets the two
        // probabilities move between them (each by up to max_abs), so either pick is right.
        const double tie = 2 * ft.max_abs;
        for (std::size_t i = 0; i < cases.size(); ++i) {
            const agreement a = compare(s, refs[i], tie);
            const auto ours = greedy(s, refs[i].prompt, refs[i].generated.size());
            int compared = 0;
            const bool greedy_ok = same_greedy(ours, refs[i], tie, &compared);
            const std::string greedy = ours == refs[i].generated ? std::string("identical")
                                       : greedy_ok ? "identical up to a near-tie after " + std::to_string(compared) + " tokens"
                                                   : std::string("DIFFERS");
            MESSAGE(shape.arch << " " << std::string(ft.name) << " case " << cases[i].name << ": " << a.positions
                               << " positions, max |dp| " << a.max_abs << ", max KL " << a.max_kl << ", argmax differs at "
                               << a.argmax_differs << " (near-ties " << a.near_ties << "), greedy " << greedy);
            CHECK(a.max_abs < ft.max_abs);
            CHECK(a.argmax_differs == 0);
            CHECK(greedy_ok);
        }
    }
}

inline std::string vocab(const char* name) { return std::string(QINFER_REFDATA_DIR) + "/vocab/ggml-vocab-" + name + ".gguf"; }

}  // namespace mtest
