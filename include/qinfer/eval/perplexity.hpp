// qinfer/eval/perplexity.hpp — perplexity of a model over a token stream, the way
// llama.cpp's llama-perplexity computes it, and the KL divergence of a model's next-token
// distributions from a base model's (what a quantization costs).
//
// Method (llama-perplexity, tools/perplexity/perplexity.cpp, without --ppl-stride):
//   - the text is tokenized with BOS (as the vocabulary asks); it needs at least 2 * n_ctx
//     tokens; it is cut into floor(n_tokens / n_ctx) chunks of n_ctx tokens (the rest is unused);
//   - each chunk is evaluated from an empty context, its first token replaced by BOS;
//   - only the second half is scored: the logits at positions first = n_ctx / 2 ...
//     n_ctx - 2 predict the tokens at first + 1 ... n_ctx - 1 (n_ctx - first - 1 per chunk);
//   - NLL = max + log(sum exp(l - max)) - l[tok] (expf summed in double, as there);
//     PPL = exp(mean NLL), its error exp(mean) * sqrt(var(NLL) / (count - 1)).
//
// KL divergence: `save_kld_base` runs the base model and writes the log-probabilities of every
// scored position to a file; `kl_divergence` runs another model over the same tokens (read
// from the file) and compares. The file is qinfer's own format (not llama.cpp's, which stores
// 16-bit quantized log-probabilities), all little-endian:
//
//   char     magic[8]    "QINFKLD1"
//   uint32   n_ctx, n_vocab, n_chunk, reserved (0)
//   int32    tokens[n_chunk * n_ctx]             the evaluated token stream (BOS not substituted)
//   float32  log_probs[n_chunk][n_ctx - n_ctx/2 - 1][n_vocab]
//                                               log-softmax of the base model's logits at each
//                                               scored position, chunk by chunk
#pragma once

#include <algorithm>
#include <bit>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "../core/config.hpp"
#include "../core/error.hpp"
#include "../model/session.hpp"

QINFER_NAMESPACE_BEGIN
namespace eval {

struct perplexity_options {
    std::int64_t n_ctx = 512;    // tokens per chunk (the session's n_ctx must be at least this)
    std::int64_t n_batch = 0;    // tokens per eval call (0: n_ctx)
    std::int64_t max_chunks = -1;// < 0: all chunks the tokens make
};

// Running sums of negative log-likelihoods.
struct nll_stats {
    double sum = 0, sum2 = 0;
    std::int64_t count = 0;

    void add(double v) { sum += v; sum2 += v * v; ++count; }
    double mean() const { return count ? sum / double(count) : 0.0; }
    double ppl() const { return std::exp(mean()); }
    // llama-perplexity's "+/-": exp(mean) times the standard error of the mean NLL.
    double ppl_error() const {
        if (count < 2) return 0.0;
        const double m = mean(), var = sum2 / double(count) - m * m;
        return var > 0 ? std::sqrt(var / double(count - 1)) * ppl() : 0.0;
    }
};

struct perplexity_result {
    nll_stats nll;
    std::int64_t n_chunks = 0, n_ctx = 0, n_tokens = 0;  // n_tokens: of the whole input
    double ppl() const { return nll.ppl(); }
    double ppl_error() const { return nll.ppl_error(); }
};

struct kld_result {
    nll_stats nll, nll_base;           // the model's and the base model's NLL of the same tokens
    double sum_kld = 0, sum_kld2 = 0, max_kld = 0;
    std::int64_t same_top = 0, count = 0, n_chunks = 0, n_ctx = 0;
    std::vector<float> kld_values;     // per scored position, in order

    double mean_kld() const { return count ? sum_kld / double(count) : 0.0; }
    double mean_kld_error() const {
        if (count < 2) return 0.0;
        const double m = mean_kld(), var = sum_kld2 / double(count) - m * m;
        return var > 0 ? std::sqrt(var / double(count - 1)) : 0.0;
    }
    double same_top_percent() const { return count ? 100.0 * double(same_top) / double(count) : 0.0; }
};

// Called after each chunk: its index (0-based), the number of chunks, the chunk's evaluation
// time in seconds, and the running NLL statistics.
using chunk_callback = std::function<void(std::int64_t chunk, std::int64_t n_chunks, double seconds, const nll_stats& so_far)>;

namespace detail {

// llama.cpp's log_softmax: float max, expf summed in double; returns the NLL of `tok`.
inline double nll_of(std::span<const float> logits, std::int32_t tok) {
    float max = logits[0];
    for (float l : logits) max = std::max(max, l);
    double sum = 0;
    for (float l : logits) sum += std::exp(l - max);
    return double(max) + std::log(sum) - double(logits[std::size_t(tok)]);
}

// log-softmax in double, stored as float.
inline void log_softmax(std::span<const float> logits, std::span<float> out) {
    float max = logits[0];
    for (float l : logits) max = std::max(max, l);
    double sum = 0;
    for (float l : logits) sum += std::exp(double(l) - double(max));
    const double lse = double(max) + std::log(sum);
    for (std::size_t i = 0; i < logits.size(); ++i) out[i] = float(double(logits[i]) - lse);
}

}  // namespace detail

// How many chunks perplexity() scores for n_tokens tokens; throws if there are fewer than
// 2 * n_ctx (llama-perplexity's minimum).
inline std::int64_t chunk_count(std::size_t n_tokens, const perplexity_options& opt) {
    if (opt.n_ctx < 4) throw error("eval::perplexity: n_ctx must be at least 4, got " + std::to_string(opt.n_ctx));
    if (std::int64_t(n_tokens) < 2 * opt.n_ctx)
        throw error("eval::perplexity: the text tokenizes to only " + std::to_string(n_tokens) + " tokens; a context of " +
                    std::to_string(opt.n_ctx) + " needs at least " + std::to_string(2 * opt.n_ctx) +
                    " (use a longer text or a smaller n_ctx)", errc::invalid_argument);
    const std::int64_t max = std::int64_t(n_tokens) / opt.n_ctx;
    return opt.max_chunks < 0 ? max : std::min(opt.max_chunks, max);
}

namespace detail {

// Evaluates every chunk and calls on_scored(chunk, i, logits row, next token) for each scored
// position i = first .. n_ctx - 2 of the chunk, then on_chunk.
template <class OnScored, class OnChunk>
void run_chunks(session& s, std::span<const std::int32_t> tokens, const perplexity_options& opt, std::int64_t n_chunk,
                OnScored&& on_scored, OnChunk&& on_chunk) {
    const model& m = s.get_model();
    const std::int64_t n_ctx = opt.n_ctx, n_vocab = m.config().n_vocab;
    if (s.n_ctx() < n_ctx)
        throw error("eval::perplexity: the session's context (" + std::to_string(s.n_ctx()) + ") is smaller than the chunk size " +
                    std::to_string(n_ctx));
    const auto& v = m.tokenizer().vocab();
    if (v.add_bos && v.bos == text::no_token) throw error("eval::perplexity: the vocabulary asks for BOS but defines none");
    const std::int64_t n_batch = opt.n_batch > 0 ? std::min(opt.n_batch, n_ctx) : n_ctx;
    const std::int64_t first = n_ctx / 2;
    std::vector<std::int32_t> chunk(std::size_t(n_ctx), 0);
    for (std::int64_t c = 0; c < n_chunk; ++c) {
        const auto t0 = std::chrono::steady_clock::now();
        std::copy_n(tokens.begin() + c * n_ctx, n_ctx, chunk.begin());
        if (v.add_bos) chunk[0] = v.bos;
        s.reset();
        for (std::int64_t b = 0; b < n_ctx; b += n_batch) {
            const std::int64_t nb = std::min(n_batch, n_ctx - b);
            const bool needed = b + nb - 1 >= first;  // any scored row in this batch
            const auto batch = std::span<const std::int32_t>(chunk).subspan(std::size_t(b), std::size_t(nb));
            if (!needed) { s.eval(batch); continue; }
            const std::span<const float> logits = s.eval_all(batch);
            for (std::int64_t k = 0; k < nb; ++k) {
                const std::int64_t pos = b + k;
                if (pos < first || pos >= n_ctx - 1) continue;
                on_scored(c, pos, logits.subspan(std::size_t(k * n_vocab), std::size_t(n_vocab)), chunk[std::size_t(pos + 1)]);
            }
        }
        on_chunk(c, std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
}

inline void put_u32(std::ostream& o, std::uint32_t v) {
    unsigned char b[4] = {std::uint8_t(v), std::uint8_t(v >> 8), std::uint8_t(v >> 16), std::uint8_t(v >> 24)};
    o.write(reinterpret_cast<const char*>(b), 4);
}
inline std::uint32_t get_u32(const unsigned char* b) {
    return std::uint32_t(b[0]) | std::uint32_t(b[1]) << 8 | std::uint32_t(b[2]) << 16 | std::uint32_t(b[3]) << 24;
}
inline constexpr char kld_magic[8] = {'Q', 'I', 'N', 'F', 'K', 'L', 'D', '1'};

}  // namespace detail

// The token stream llama-perplexity evaluates: the text with BOS (if the vocabulary adds one).
inline std::vector<std::int32_t> tokenize_for_perplexity(const model& m, std::string_view text) {
    if (m.tokenizer().vocab().add_eos)
        throw error("eval::perplexity: the vocabulary adds EOS after every text; perplexity (as llama.cpp computes it) needs a vocabulary that does not");
    return m.tokenizer().encode(text, true, false);
}

// Perplexity over `tokens` (see the top of this file). Resets the session before every chunk.
inline perplexity_result perplexity(session& s, std::span<const std::int32_t> tokens, const perplexity_options& opt = {},
                                    const chunk_callback& on_chunk = {}) {
    perplexity_result r;
    r.n_chunks = chunk_count(tokens.size(), opt);
    r.n_ctx = opt.n_ctx;
    r.n_tokens = std::int64_t(tokens.size());
    detail::run_chunks(
        s, tokens, opt, r.n_chunks,
        [&](std::int64_t, std::int64_t, std::span<const float> logits, std::int32_t next) { r.nll.add(detail::nll_of(logits, next)); },
        [&](std::int64_t c, double sec) { if (on_chunk) on_chunk(c, r.n_chunks, sec, r.nll); });
    return r;
}

// Perplexity, also writing the base log-probabilities for `kl_divergence` to `path`.
inline perplexity_result save_kld_base(session& s, std::span<const std::int32_t> tokens, const std::filesystem::path& path,
                                       const perplexity_options& opt = {}, const chunk_callback& on_chunk = {}) {
    perplexity_result r;
    r.n_chunks = chunk_count(tokens.size(), opt);
    r.n_ctx = opt.n_ctx;
    r.n_tokens = std::int64_t(tokens.size());
    const std::int64_t n_vocab = s.get_model().config().n_vocab;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    if (!out) throw error(path.string() + ": cannot open for writing", errc::io);
    out.write(detail::kld_magic, 8);
    detail::put_u32(out, std::uint32_t(opt.n_ctx));
    detail::put_u32(out, std::uint32_t(n_vocab));
    detail::put_u32(out, std::uint32_t(r.n_chunks));
    detail::put_u32(out, 0);
    for (std::int64_t i = 0; i < r.n_chunks * opt.n_ctx; ++i) detail::put_u32(out, std::uint32_t(tokens[std::size_t(i)]));
    std::vector<float> lp(static_cast<std::size_t>(n_vocab));
    detail::run_chunks(
        s, tokens, opt, r.n_chunks,
        [&](std::int64_t, std::int64_t, std::span<const float> logits, std::int32_t next) {
            r.nll.add(detail::nll_of(logits, next));
            detail::log_softmax(logits, lp);
            for (float& f : lp) {  // little-endian on disk
                std::uint32_t u;
                std::memcpy(&u, &f, 4);
                detail::put_u32(out, u);
            }
        },
        [&](std::int64_t c, double sec) { if (on_chunk) on_chunk(c, r.n_chunks, sec, r.nll); });
    out.flush();
    if (!out) throw error(path.string() + ": write failed", errc::io);
    return r;
}

// A base log-probability file, read whole (see the top of this file for its layout).
struct kld_base {
    std::uint32_t n_ctx = 0, n_vocab = 0, n_chunk = 0;
    std::vector<std::int32_t> tokens;
    std::vector<float> log_probs;  // n_chunk * (n_ctx - n_ctx/2 - 1) rows of n_vocab

    std::int64_t scored_per_chunk() const { return std::int64_t(n_ctx) - n_ctx / 2 - 1; }

    static kld_base read(const std::filesystem::path& path) {
        const std::string p = path.string();
        std::ifstream in(path, std::ios::binary);
        if (!in) throw error(p + ": cannot open the KL-divergence base file", errc::io);
        std::vector<unsigned char> head(24);
        if (!in.read(reinterpret_cast<char*>(head.data()), 24) || std::memcmp(head.data(), detail::kld_magic, 8) != 0)
            throw error(p + ": not a qinfer KL-divergence base file (expected magic \"QINFKLD1\", as eval::save_kld_base writes)", errc::format);
        kld_base b;
        b.n_ctx = detail::get_u32(&head[8]);
        b.n_vocab = detail::get_u32(&head[12]);
        b.n_chunk = detail::get_u32(&head[16]);
        if (b.n_ctx < 4 || b.n_vocab == 0 || b.n_chunk == 0)
            throw error(p + ": bad header (n_ctx " + std::to_string(b.n_ctx) + ", n_vocab " + std::to_string(b.n_vocab) +
                        ", n_chunk " + std::to_string(b.n_chunk) + ")");
        const std::uint64_t n_tok = std::uint64_t(b.n_chunk) * b.n_ctx;
        const std::uint64_t n_lp = std::uint64_t(b.n_chunk) * std::uint64_t(b.scored_per_chunk()) * b.n_vocab;
        const std::uint64_t expect = 24 + 4 * (n_tok + n_lp);
        std::error_code ec;
        const std::uint64_t size = std::filesystem::file_size(path, ec);
        if (ec || size != expect)
            throw error(p + ": the header (n_ctx " + std::to_string(b.n_ctx) + ", n_vocab " + std::to_string(b.n_vocab) +
                        ", n_chunk " + std::to_string(b.n_chunk) + ") needs " + std::to_string(expect) + " bytes but the file has " +
                        std::to_string(size));
        std::vector<unsigned char> buf(std::size_t(4 * n_tok));
        in.read(reinterpret_cast<char*>(buf.data()), std::streamsize(buf.size()));
        b.tokens.resize(std::size_t(n_tok));
        for (std::size_t i = 0; i < b.tokens.size(); ++i) b.tokens[i] = std::int32_t(detail::get_u32(&buf[4 * i]));
        b.log_probs.resize(std::size_t(n_lp));
        in.read(reinterpret_cast<char*>(b.log_probs.data()), std::streamsize(4 * n_lp));
        if (!in) throw error(p + ": read failed", errc::io);
        if constexpr (std::endian::native == std::endian::big)
            for (float& f : b.log_probs) {
                std::uint32_t u;
                std::memcpy(&u, &f, 4);
                u = detail::get_u32(reinterpret_cast<const unsigned char*>(&u));
                std::memcpy(&f, &u, 4);
            }
        for (std::int32_t t : b.tokens)
            if (t < 0 || std::uint32_t(t) >= b.n_vocab)
                throw error(p + ": token id " + std::to_string(t) + " is outside the file's vocabulary of " + std::to_string(b.n_vocab));
        return b;
    }
};

// Runs the session's model over the base file's tokens with the base's chunk size and
// compares its next-token distributions with the base's: KL(base || model) per scored
// position, top-token agreement, both NLLs. max_chunks < 0: all chunks of the file.
inline kld_result kl_divergence(session& s, const kld_base& base, std::int64_t max_chunks = -1, std::int64_t n_batch = 0,
                                const chunk_callback& on_chunk = {}) {
    const std::int64_t n_vocab = s.get_model().config().n_vocab;
    if (std::int64_t(base.n_vocab) != n_vocab)
        throw error("eval::kl_divergence: vocabulary mismatch: the base logits have " + std::to_string(base.n_vocab) +
                    " tokens, the model has " + std::to_string(n_vocab));
    perplexity_options opt;
    opt.n_ctx = base.n_ctx;
    opt.n_batch = n_batch;
    kld_result r;
    r.n_ctx = base.n_ctx;
    r.n_chunks = max_chunks < 0 ? std::int64_t(base.n_chunk) : std::min<std::int64_t>(max_chunks, base.n_chunk);
    const std::int64_t per_chunk = base.scored_per_chunk(), first = base.n_ctx / 2;
    r.kld_values.reserve(std::size_t(r.n_chunks * per_chunk));
    std::vector<float> lp(static_cast<std::size_t>(n_vocab));
    detail::run_chunks(
        s, base.tokens, opt, r.n_chunks,
        [&](std::int64_t c, std::int64_t pos, std::span<const float> logits, std::int32_t next) {
            const float* q = base.log_probs.data() + std::size_t((c * per_chunk + pos - first) * n_vocab);
            detail::log_softmax(logits, lp);
            double kld = 0;
            std::size_t top = 0, top_base = 0;
            for (std::size_t i = 0; i < lp.size(); ++i) {
                if (q[i] > -std::numeric_limits<float>::infinity()) kld += std::exp(double(q[i])) * (double(q[i]) - double(lp[i]));
                if (lp[i] > lp[top]) top = i;
                if (q[i] > q[top_base]) top_base = i;
            }
            kld = std::max(kld, 0.0);  // rounding can leave -1e-17 for identical distributions
            r.sum_kld += kld;
            r.sum_kld2 += kld * kld;
            r.max_kld = std::max(r.max_kld, kld);
            r.kld_values.push_back(float(kld));
            r.same_top += top == top_base;
            ++r.count;
            r.nll.add(detail::nll_of(logits, next));
            r.nll_base.add(-double(q[std::size_t(next)]));
        },
        [&](std::int64_t c, double sec) { if (on_chunk) on_chunk(c, r.n_chunks, sec, r.nll); });
    return r;
}

}  // namespace eval
QINFER_NAMESPACE_END
