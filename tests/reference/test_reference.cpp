// tests/reference/test_reference.cpp — the exact reference forward pass (qinfer/reference/)
// against llama.cpp, and qinfer's fast path against the reference at every trace stage.
//
// Metric, everywhere: for two vectors (a stage's values at one layer and position, or one
// position's logits) rel = max_i |x_i - ref_i| / max_i |ref_i|.
//
// llama.cpp's logits come through its probabilities (node-llama-cpp gives no raw logits):
// log p_i = l_i - logsumexp(l), one constant per position, so the centred logits
// l_i - mean_j(l_j) = log p_i - mean_j(log p_j) are llama.cpp's exactly (to the float
// rounding of p, ~1e-7 absolute). Reference and llama.cpp are compared as centred logits.
//
// Tolerances of the fast path against the reference (not fitted: derived from what the fast
// path rounds). Let eps be the relative size of the roundings a run makes, summed:
//   - float arithmetic in another order: (sqrt(K) + n) * 2^-24, the probabilistic bound of a
//     float dot product of length K (Higham & Mary 2019; the worst case K * 2^-24 is reached
//     only by sums that never cancel), K the longest inner dimension, plus RoPE's angle
//     recurrence, whose float error grows with the position: pos * 2^-24, pos < n tokens;
//   - an fp16 KV cache: q, k, v and the attention probabilities rounded to fp16, 2^-11;
//   - GeGLU (gemma): the GELU input and result rounded to fp16 (ggml's table), 2^-11;
//   - block-quantized weights: the matmul input rounded to 8 bits per block (Q8_0 / Q8_K,
//     round to nearest of max|block| / 127), half a step: 1/254 of the block's largest value.
// Each rounding moves a value by at most eps of the largest in its vector. A layer rounds at
// most 8 vectors on the way to any stage (the attention input for q/k/v, q, k, v and the
// probabilities, the attention output for Wo, the FFN input for gate/up, the gated product
// for down); the norms and the attention softmax (scores of order 1 in these models) pass
// relative errors on at most doubled; so a layer adds at most 8 * 2 = 16 eps, and the
// residual stream carries every earlier layer's: tol(layer l) = eps * sum_{j <= l} g_j,
// g_j = 16, result_norm and the logits one and two layers deeper. A router's softmax is the
// exception: its logits are large (sd 6 by design), and a softmax turns an absolute error
// dl of its inputs into a relative error of up to 2 dl in its outputs; the router logits
// carry 2 eps of their largest value R, so the experts' weights move by up to 4 R eps, and a
// layer of experts adds g_j = 16 + 4 R, R read off the reference's own run.
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include <qinfer/model/session.hpp>
#include <qinfer/reference/forward.hpp>

#include "skip.hpp"
#include "model/shapes.hpp"

namespace {

namespace fs = std::filesystem;

double rel(std::span<const float> x, std::span<const float> ref) {
    double num = 0, den = 0;
    for (std::size_t i = 0; i < ref.size(); ++i) {
        num = std::max(num, std::fabs(double(x[i]) - double(ref[i])));
        den = std::max(den, std::fabs(double(ref[i])));
    }
    return den > 0 ? num / den : num;
}

// Max over positions of rel(centred reference logits, centred llama.cpp logits from probs).
// Tokens whose llama.cpp probability underflowed to 0 carry no logit and are left out.
double logits_vs_llama(const std::vector<float>& logits, const mtest::ref_result& ref, std::int64_t* dropped) {
    const std::int64_t V = ref.n_vocab;
    double worst = 0;
    for (std::int64_t pos = 0; pos < ref.positions(); ++pos) {
        const float* l = logits.data() + pos * V;
        const float* p = ref.probs.data() + pos * V;
        double mean_ours = 0, mean_llama = 0;
        std::int64_t n = 0;
        for (std::int64_t i = 0; i < V; ++i)
            if (p[i] > 0) { mean_ours += l[i]; mean_llama += std::log(double(p[i])); ++n; }
        *dropped += V - n;
        mean_ours /= double(n);
        mean_llama /= double(n);
        double num = 0, den = 0;
        for (std::int64_t i = 0; i < V; ++i) {
            if (!(p[i] > 0)) continue;
            const double ours = l[i] - mean_ours, theirs = std::log(double(p[i])) - mean_llama;
            num = std::max(num, std::fabs(ours - theirs));
            den = std::max(den, std::fabs(ours));
        }
        worst = std::max(worst, num / den);
    }
    return worst;
}

// Every trace event of one run, by (layer, stage, position).
struct trace_store {
    std::map<std::tuple<int, std::string, std::int64_t>, std::vector<float>> values;
    qinfer::trace_hook hook() {
        return [this](const qinfer::trace_event& e) {
            values[{e.layer, std::string(e.stage), e.pos}].assign(e.values.begin(), e.values.end());
        };
    }
};

// One configuration of the fast path: its eps (see the top of the file) and a label.
struct rounding {
    std::string label;
    double eps;
};

constexpr double fp16_unit = 1.0 / 2048, eight_bit_unit = 1.0 / 254;

// The gain sum_{j <= l} g_j of every depth l (see the top of the file): layers 0 .. n_layer - 1,
// then result_norm, then the logits.
std::vector<double> cumulative_gain(const qinfer::model& m, const trace_store& ref) {
    const qinfer::model_config& c = m.config();
    std::vector<double> gain;
    double total = 0;
    for (std::int64_t l = 0; l < c.n_layer; ++l) {
        double g = 16;
        if (const auto& E = m.weights().layers[std::size_t(l)].experts) {
            qinfer::reference::matrix x(0, c.n_embd);
            for (const auto& [key, v] : ref.values) {
                if (std::get<0>(key) != int(l) || std::get<1>(key) != "ffn_inp") continue;
                x.conservativeResize(x.rows() + 1, Eigen::NoChange);
                x.row(x.rows() - 1) = Eigen::Map<const Eigen::RowVectorXf>(v.data(), c.n_embd).cast<double>();
            }
            const auto xn = qinfer::reference::rms_norm(x, m.weights().layers[std::size_t(l)].ffn_norm, c.rms_eps);
            const double R = qinfer::reference::linear(xn, E.router).cwiseAbs().maxCoeff();
            g += 4 * R;
        }
        gain.push_back(total += g);
    }
    gain.push_back(total += 16);
    gain.push_back(total += 16);
    return gain;
}

// The fast path's stages and logits against the reference's: fails where rel exceeds
// eps * gain[depth] anywhere; reports the worst rel and the stage nearest its tolerance.
void check_stages(const trace_store& fast, const std::vector<float>& fast_logits, const trace_store& ref,
                  const std::vector<float>& ref_logits, const qinfer::model_config& c, const rounding& r,
                  const std::vector<double>& gain, const std::string& what) {
    REQUIRE(fast.values.size() == ref.values.size());
    double worst = 0, worst_share = 0;
    std::string worst_at;
    auto one = [&](int layer, const std::string& stage, std::int64_t pos, std::span<const float> x, std::span<const float> y) {
        const double tol = r.eps * gain[std::size_t(layer < 0 ? int(c.n_layer) : layer)];
        const double e = rel(x, y);
        worst = std::max(worst, e);
        if (e / tol > worst_share) {
            worst_share = e / tol;
            worst_at = "layer " + std::to_string(layer) + " " + stage + " pos " + std::to_string(pos) + " (rel " +
                       std::to_string(e) + ", tolerance " + std::to_string(tol) + ")";
        }
    };
    for (const auto& [key, y] : ref.values) {
        const auto it = fast.values.find(key);
        REQUIRE_MESSAGE(it != fast.values.end(), "fast path lacks stage " << std::get<1>(key) << " of layer " << std::get<0>(key));
        one(std::get<0>(key), std::get<1>(key), std::get<2>(key), it->second, y);
    }
    const std::int64_t V = c.n_vocab;
    for (std::int64_t pos = 0; pos < std::int64_t(ref_logits.size()) / V; ++pos)
        one(int(c.n_layer) + 1, "logits", pos, std::span(fast_logits).subspan(std::size_t(pos * V), std::size_t(V)),
            std::span(ref_logits).subspan(std::size_t(pos * V), std::size_t(V)));
    MESSAGE(what << " " << r.label << " (eps " << r.eps << "): max rel " << worst << ", worst share of tolerance "
                 << worst_share << " at " << worst_at);
    CHECK_MESSAGE(worst_share <= 1.0, what << " " << r.label << ": beyond tolerance at " << worst_at);
}

// The largest inner dimension of any product or sum the forward pass does.
std::int64_t longest_sum(const qinfer::model_config& c, std::int64_t n_tokens) {
    return std::max({c.n_embd, c.n_head * c.head_dim, c.n_ff, c.n_ff_exp, n_tokens});
}

// eps of float arithmetic in another order (see the top of the file).
double summation_eps(const qinfer::model_config& c, std::int64_t n_tokens) {
    return (std::sqrt(double(longest_sum(c, n_tokens))) + double(n_tokens)) / (1 << 24);
}

// The fast path (kv f32, then f16) against the reference on `file`, token sequence `seq`.
void check_file(const std::string& file, const std::vector<std::int32_t>& seq, bool eight_bit, const std::string& what) {
    auto m = std::make_shared<const qinfer::model>(file);
    const qinfer::model_config& c = m->config();
    trace_store ref;
    const qinfer::trace_hook ref_hook = ref.hook();
    qinfer::reference::options ro;
    ro.n_ctx = 256;
    ro.trace = &ref_hook;
    const std::vector<float> ref_logits = qinfer::reference::forward(*m, seq, ro);

    const bool gelu = c.arch == "gemma2" || c.arch == "gemma3";
    const double sum_eps = summation_eps(c, std::int64_t(seq.size()));
    const std::vector<double> gain = cumulative_gain(*m, ref);
    for (const qinfer::kv_type kv : {qinfer::kv_type::f32, qinfer::kv_type::f16}) {
        const bool f16 = kv == qinfer::kv_type::f16;
        const rounding r{std::string(f16 ? "kv f16" : "kv f32"),
                         sum_eps + (f16 ? fp16_unit : 0) + (gelu ? fp16_unit : 0) + (eight_bit ? eight_bit_unit : 0)};
        qinfer::session_options opt;
        opt.n_ctx = 256;
        opt.n_threads = 2;
        opt.cache_type = kv;
        qinfer::session s(m, opt);
        trace_store fast;
        s.set_trace(fast.hook());
        const auto logits = s.eval_all(seq);
        check_stages(fast, std::vector<float>(logits.begin(), logits.end()), ref, ref_logits, c, r, gain, what);
    }
}

// One architecture: the F32 file against llama.cpp (F32 KV cache) and against the fast
// path; then the same model quantized by llama.cpp to Q8_0 and Q4_K_M, against the fast path.
void check_arch(const mtest::synthetic_shape& shape, unsigned seed, const std::string& label) {
    REQUIRE_MESSAGE(fs::exists(shape.vocab_file), "vocabulary " << shape.vocab_file << " not present (../shared/refdata)");
    if (!mtest::node_oracle_available()) return;
    oracle::llama_quantizer quantizer(oracle::lib_dir());
    REQUIRE_MESSAGE(quantizer.loaded(), "llama.cpp quantizer unavailable: " << quantizer.why_missing());
    const fs::path dir = fs::path("reference-models") / label;
    fs::create_directories(dir);
    const std::string f32 = (dir / "model-F32.gguf").string();
    mtest::write_synthetic(shape, f32, seed);

    const qinfer::model m(f32);
    // 32 positions (past every sliding window of 8); one token generated, the least the
    // oracle script takes (a generated token costs it ~0.5 s, a prompt token nothing).
    std::vector<std::int32_t> ids;
    for (std::int32_t i = 0; i < 31; ++i) ids.push_back((i * 7919 + 13) % 30000);
    const std::vector<mtest::ref_case> cases = {{"a", "", ids, true, 1}};
    const auto llama = mtest::run_reference(f32, cases, m.config().n_vocab, dir / "llama-F32", 256, "F32");
    const std::vector<std::int32_t>& seq = llama[0].prompt;
    qinfer::reference::options ro;
    ro.n_ctx = 256;
    const std::vector<float> logits = qinfer::reference::forward(m, seq, ro);
    std::int64_t dropped = 0;
    const double e = logits_vs_llama(logits, llama[0], &dropped);
    // llama.cpp's GeGLU goes through ggml's fp16 GELU table: gemma's logits carry that
    // rounding (2^-11 of the GELU output, relative), which the reference does not make.
    const bool gelu = shape.arch == "gemma2" || shape.arch == "gemma3";
    const double tol = gelu ? 16 * (fp16_unit + summation_eps(m.config(), std::int64_t(seq.size()))) * double(m.config().n_layer + 2) : 1e-4;
    MESSAGE(label << " F32: reference vs llama.cpp (kv F32), " << seq.size() << " positions: max rel of centred logits " << e
                  << " (tolerance " << tol << ", " << dropped << " underflowed probabilities left out)");
    CHECK(e < tol);
    check_file(f32, seq, false, label + " F32");

    for (const auto& [name, ftype] : {std::pair{"Q8_0", oracle::ftype_q8_0}, std::pair{"Q4_K_M", oracle::ftype_q4_k_m}}) {
        const std::string file = (dir / ("model-" + std::string(name) + ".gguf")).string();
        REQUIRE_MESSAGE(quantizer.quantize(f32, file, ftype) == 0, "llama_model_quantize failed for " << std::string(name));
        check_file(file, seq, true, label + " " + name);
    }
}

}  // namespace

TEST_CASE("reference: stories260K logits match llama.cpp's within 1e-4 relative") {
    const std::string stories = std::string(QINFER_REFDATA_DIR) + "/models/stories260K.gguf";
    if (!qtest::have_file(stories)) return;
    if (!mtest::node_oracle_available()) return;
    const qinfer::model m(stories);
    // A prompt of ~60 tokens, one token generated (see check_arch).
    const std::vector<mtest::ref_case> cases = {
        {"story", "Once upon a time, there was a little girl named Lily. She loved to play outside in the park with her "
                  "mom. One day, they saw a big red ball under a tree. Lily was very happy and she ran to get it.", {}, true, 1},
    };
    const auto refs = mtest::run_reference(stories, cases, m.config().n_vocab, "reference-models/stories260K", 256, "F32");
    for (const auto& ref : refs) {
        const std::vector<std::int32_t>& seq = ref.prompt;
        const auto logits = qinfer::reference::forward(m, seq);
        std::int64_t dropped = 0;
        const double e = logits_vs_llama(logits, ref, &dropped);
        MESSAGE("stories260K, " << seq.size() << " positions: max rel of centred logits vs llama.cpp (kv F32) " << e << " ("
                                << dropped << " underflowed probabilities left out)");
        CHECK(e < 1e-4);
    }
}

TEST_CASE("reference: llama") { check_arch(mtest::shape_llama(), 1, "llama"); }
TEST_CASE("reference: qwen2") { check_arch(mtest::shape_qwen2(), 2, "qwen2"); }
TEST_CASE("reference: qwen3") { check_arch(mtest::shape_qwen3(), 3, "qwen3"); }
TEST_CASE("reference: llama with experts") { check_arch(mtest::shape_llama_experts(), 11, "llama-experts"); }
TEST_CASE("reference: qwen3moe") { check_arch(mtest::shape_qwen3moe(), 12, "qwen3moe"); }
TEST_CASE("reference: gemma2") { check_arch(mtest::shape_gemma2(), 13, "gemma2"); }
TEST_CASE("reference: gemma3") { check_arch(mtest::shape_gemma3(), 14, "gemma3"); }
TEST_CASE("reference: phi3") { check_arch(mtest::shape_phi3(), 15, "phi3"); }
