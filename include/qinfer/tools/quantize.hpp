// qinfer/tools/quantize.hpp — converts an F32 / F16 / BF16 GGUF model to a quantized one, with
// llama.cpp's file-type mixes (Q4_K_M, Q3_K_S, ...), writing the same file as llama.cpp.
//
// The choice of each tensor's type follows llama.cpp's llama_model_quantize (src/llama-quant.cpp):
// which tensors are quantized at all (2-D+ ".weight" tensors, no norms), the special types of
// output.weight and token_embd.weight, the per-layer "more bits" rules of the _S/_M/_L mixes
// for attn_v and ffn_down, and the fallbacks when a row length does not fit the block size.
// The file is laid out as llama.cpp writes it: the input's metadata in order, then
// general.quantization_version and general.file_type moved to the end, tensors in
// llama.cpp's order (non-layer tensors by name, then layer by layer, by name), each padded to
// the alignment. The quantization kernels are qinfer's, which give ggml's bytes.
//
// With an importance matrix (quantize_options::importance, read by tools/imatrix.hpp) every
// tensor with an entry of the right size is quantized with it, as llama.cpp passes it to
// ggml_quantize_chunk (per expert for 3-D tensors), the mixes that depend on having one
// follow llama.cpp (Q4_0 / Q5_0 keep the first ffn_down layers in Q4_1 / Q5_1, IQ4_NL /
// IQ4_XS do not bump them to Q5_K), Q2_K_S (which needs one) is available, and the output
// gets llama-quantize's quantize.imatrix.* keys.
//
// Not supported: the file types with no qinfer kernels (IQ1/IQ2/IQ3, TQ*, Q1_0/Q2_0),
// MXFP4_MOE (qinfer has MXFP4 kernels but not llama.cpp's per-tensor rules for this file
// type), split models, COPY.
#pragma once

#include <algorithm>
#include <array>
#include <chrono>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "../core/config.hpp"
#include "../core/error.hpp"
#include "../core/fp16.hpp"
#include "../core/types.hpp"
#include "../gguf/reader.hpp"
#include "../ops/thread_pool.hpp"
#include "../quant/dispatch.hpp"
#include "imatrix.hpp"

QINFER_NAMESPACE_BEGIN
namespace tools {

// llama.cpp's enum llama_ftype values (what general.file_type stores).
enum class ftype : std::uint32_t {
    all_f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q8_0 = 7, q5_0 = 8, q5_1 = 9,
    q2_K = 10, q3_K_S = 11, q3_K_M = 12, q3_K_L = 13, q4_K_S = 14, q4_K_M = 15,
    q5_K_S = 16, q5_K_M = 17, q6_K = 18, q2_K_S = 21, iq4_nl = 25, iq4_xs = 30, bf16 = 32,
};

struct ftype_info {
    std::string_view name;  // llama-quantize's spelling
    ftype id;
    type_id default_type;   // the type most tensors get
    std::string_view description;
};

inline constexpr std::array<ftype_info, 20> ftype_table{{
    {"Q4_0", ftype::q4_0, type_id::q4_0, "4.5 bpw, 32-blocks with a scale"},
    {"Q4_1", ftype::q4_1, type_id::q4_1, "5.0 bpw, 32-blocks with a scale and a minimum"},
    {"Q5_0", ftype::q5_0, type_id::q5_0, "5.5 bpw, 32-blocks with a scale"},
    {"Q5_1", ftype::q5_1, type_id::q5_1, "6.0 bpw, 32-blocks with a scale and a minimum"},
    {"Q2_K", ftype::q2_K, type_id::q2_K, "Q2_K mix (attn_v / ffn_down / attn_output in Q3_K-Q4_K)"},
    {"Q2_K_S", ftype::q2_K_S, type_id::q2_K, "Q2_K, attn_v (GQA >= 4) / first ffn_down in Q4_K; needs an importance matrix"},
    {"Q3_K_S", ftype::q3_K_S, type_id::q3_K, "Q3_K everywhere"},
    {"Q3_K_M", ftype::q3_K_M, type_id::q3_K, "Q3_K mix, attn_v / ffn_down / attn_output in Q4_K-Q5_K"},
    {"Q3_K_L", ftype::q3_K_L, type_id::q3_K, "Q3_K mix, attn_v / ffn_down / attn_output in Q5_K"},
    {"IQ4_NL", ftype::iq4_nl, type_id::iq4_nl, "4.5 bpw non-linear"},
    {"IQ4_XS", ftype::iq4_xs, type_id::iq4_xs, "4.25 bpw non-linear"},
    {"Q4_K_S", ftype::q4_K_S, type_id::q4_K, "Q4_K, first attn_v / ffn_down in Q5_K"},
    {"Q4_K_M", ftype::q4_K_M, type_id::q4_K, "Q4_K mix, half of attn_v / ffn_down in Q6_K"},
    {"Q5_K_S", ftype::q5_K_S, type_id::q5_K, "Q5_K everywhere"},
    {"Q5_K_M", ftype::q5_K_M, type_id::q5_K, "Q5_K mix, half of attn_v / ffn_down in Q6_K"},
    {"Q6_K", ftype::q6_K, type_id::q6_K, "6.56 bpw"},
    {"Q8_0", ftype::q8_0, type_id::q8_0, "8.5 bpw"},
    {"F16", ftype::f16, type_id::f16, "IEEE half"},
    {"BF16", ftype::bf16, type_id::bf16, "bfloat16"},
    {"F32", ftype::all_f32, type_id::f32, "no quantization"},
}};

inline const ftype_info& info(ftype f) {
    for (const ftype_info& i : ftype_table)
        if (i.id == f) return i;
    throw error(gguf::detail::cat("qinfer quantize: unknown file type ", static_cast<std::uint32_t>(f)));
}

namespace detail {

inline bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        auto up = [](char c) { return c >= 'a' && c <= 'z' ? char(c - 'a' + 'A') : c; };
        if (up(a[i]) != up(b[i])) return false;
    }
    return true;
}

// llama-quantize names qinfer recognizes but cannot produce, with the reason.
struct unsupported_ftype {
    std::string_view name;
    std::string_view why;
};
inline constexpr std::array<unsupported_ftype, 16> unsupported_ftypes{{
    {"IQ2_XXS", "it needs an importance matrix and qinfer has no IQ2 kernels"},
    {"IQ2_XS", "it needs an importance matrix and qinfer has no IQ2 kernels"},
    {"IQ2_S", "it needs an importance matrix and qinfer has no IQ2 kernels"},
    {"IQ2_M", "it needs an importance matrix and qinfer has no IQ2 kernels"},
    {"IQ1_S", "it needs an importance matrix and qinfer has no IQ1 kernels"},
    {"IQ1_M", "it needs an importance matrix and qinfer has no IQ1 kernels"},
    {"IQ3_XXS", "qinfer has no IQ3 kernels"},
    {"IQ3_XS", "qinfer has no IQ3 kernels"},
    {"IQ3_S", "qinfer has no IQ3 kernels"},
    {"IQ3_M", "qinfer has no IQ3 kernels"},
    {"TQ1_0", "qinfer has no ternary kernels"},
    {"TQ2_0", "qinfer has no ternary kernels"},
    {"MXFP4_MOE", "qinfer does not implement its per-tensor type rules (MXFP4 experts only)"},
    {"Q1_0", "qinfer has no Q1_0 kernels"},
    {"Q2_0", "qinfer has no Q2_0 kernels"},
    {"COPY", "copying without quantizing is not implemented"},
}};

}  // namespace detail

// A type name as llama-quantize takes it: case-insensitive, Q3_K / Q4_K / Q5_K as the _M mixes,
// or the llama_ftype number. Throws qinfer::error for names it cannot produce, saying why.
inline ftype parse_ftype(std::string_view name) {
    for (const ftype_info& i : ftype_table)
        if (detail::iequals(i.name, name)) return i.id;
    if (detail::iequals(name, "Q3_K")) return ftype::q3_K_M;
    if (detail::iequals(name, "Q4_K")) return ftype::q4_K_M;
    if (detail::iequals(name, "Q5_K")) return ftype::q5_K_M;
    for (const auto& u : detail::unsupported_ftypes)
        if (detail::iequals(u.name, name))
            throw error(gguf::detail::cat("qinfer quantize: type ", u.name, " is not supported: ", u.why));
    if (!name.empty() && name.size() < 4 && std::all_of(name.begin(), name.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        const auto n = static_cast<std::uint32_t>(std::stoul(std::string(name)));
        for (const ftype_info& i : ftype_table)
            if (static_cast<std::uint32_t>(i.id) == n) return i.id;
    }
    std::string known;
    for (const ftype_info& i : ftype_table) known += gguf::detail::cat(known.empty() ? "" : ", ", i.name);
    throw error(gguf::detail::cat("qinfer quantize: unknown type ", gguf::detail::quoted(name), " (supported: ",
                                  known, ")"));
}

// One tensor's plan and, after quantize_model, its outcome.
struct tensor_plan {
    std::string name;
    int n_dims = 1;                        // as written: trailing 1s dropped, like ggml
    std::array<std::int64_t, 4> ne{1, 1, 1, 1};
    type_id from = type_id::f32, to = type_id::f32;
    std::uint64_t bytes_from = 0, bytes_to = 0;
    bool fallback = false;                 // the mix's type did not fit the row length
    bool requires_imatrix = false;         // Q2_K in a Q2_K_S file: no result without an imatrix
    bool used_imatrix = false;             // quantized to a block type with an importance matrix (quantize_model)
    const gguf::tensor_info* source = nullptr;
};

struct quantize_options {
    ftype type = ftype::q8_0;
    int n_threads = 0;                     // 0: all cores
    bool allow_requantize = false;         // accept already quantized input tensors
    bool quantize_output_tensor = true;    // false: leave output.weight as it is (--leave-output-tensor)
    bool pure = false;                     // no mix: every quantized tensor gets the default type (--pure)
    // Importance matrix (llama-quantize --imatrix), or null. Not owned; must outlive the call.
    // Its presence alone changes some mixes, as in llama.cpp, even where no entry matches.
    const imatrix* importance = nullptr;
    // Write llama-quantize's quantize.imatrix.{file,dataset,entries_count,chunks_count} keys
    // when `importance` is set (llama_model_quantize alone does not write them).
    bool imatrix_metadata = true;
    // Called after each tensor is written (index from 0, count), e.g. for a progress line.
    std::function<void(const tensor_plan&, std::size_t, std::size_t)> on_tensor;
};

struct quantize_result {
    std::vector<tensor_plan> tensors;      // in output order
    std::uint64_t bytes_from = 0, bytes_to = 0;
    std::int64_t n_elements = 0;
    int n_fallback = 0;
    double seconds = 0;
    double bpw_from() const { return n_elements ? double(bytes_from) * 8.0 / double(n_elements) : 0; }
    double bpw_to() const { return n_elements ? double(bytes_to) * 8.0 / double(n_elements) : 0; }
};

namespace detail {

using gguf::detail::cat;
inline std::string q(std::string_view s) { return gguf::detail::quoted(s); }

enum class category {
    token_embd, attn_q, attn_v, attn_k, attn_qkv, attn_kv_b, attn_output, ffn_up, ffn_gate, ffn_down, output, other
};

inline bool contains(std::string_view s, std::string_view part) { return s.find(part) != std::string_view::npos; }

inline category category_of(std::string_view n) {
    if (n == "output.weight") return category::output;
    if (n == "token_embd.weight" || n == "per_layer_token_embd.weight") return category::token_embd;
    if (contains(n, "attn_qkv.weight")) return category::attn_qkv;
    if (contains(n, "attn_kv_b.weight")) return category::attn_kv_b;
    if (contains(n, "attn_v.weight")) return category::attn_v;
    if (contains(n, "attn_k.weight")) return category::attn_k;
    if (contains(n, "attn_q.weight")) return category::attn_q;
    if (contains(n, "attn_output.weight")) return category::attn_output;
    if (contains(n, "ffn_up")) return category::ffn_up;
    if (contains(n, "ffn_gate")) return category::ffn_gate;
    if (contains(n, "ffn_down")) return category::ffn_down;
    return category::other;
}

inline bool is_attn_v_like(category c) {
    return c == category::attn_v || c == category::attn_qkv || c == category::attn_kv_b;
}

// The layer of "blk.N.…" (sscanf "blk.%d." as llama.cpp reads it), else -1.
inline int layer_of(std::string_view n) {
    if (n.substr(0, 4) != "blk.") return -1;
    std::size_t i = 4;
    bool neg = false;
    if (i < n.size() && (n[i] == '-' || n[i] == '+')) neg = n[i++] == '-';
    if (i >= n.size() || n[i] < '0' || n[i] > '9') return -1;
    long long v = 0;
    for (; i < n.size() && n[i] >= '0' && n[i] <= '9'; ++i) v = std::min<long long>(v * 10 + (n[i] - '0'), 1LL << 40);
    return static_cast<int>(neg ? -v : v);
}

// llama.cpp's tensor order (llama_model_loader::weights_map): by layer (-1 first), then name.
inline bool tensor_order(std::string_view a, std::string_view b) {
    const int la = layer_of(a), lb = layer_of(b);
    if (la != lb) return la < lb;
    return a < b;
}

inline int n_dims_of(const gguf::tensor_info& t) {
    int n = 4;
    while (n > 1 && t.ne[static_cast<std::size_t>(n - 1)] == 1) --n;
    return n;
}

// llama.cpp's tensor_allows_quantization.
inline bool allows_quantization(const std::string& name, int n_dims, const quantize_options& o) {
    if (n_dims < 2) return false;
    bool q = name.rfind("weight") == name.size() - 6;  // (sic: unsigned arithmetic, as llama.cpp)
    q &= !contains(name, "_norm.weight");
    q &= o.quantize_output_tensor || name != "output.weight";
    for (std::string_view part : {"ffn_gate_inp.weight", "ffn_gate_tid2eid.weight", "altup", "laurel",
                                  "per_layer_model_proj", "ssm_conv1d", "shortconv.conv.weight",
                                  "indexer.k_proj.weight", "indexer.q_proj.weight", "time_mix_first.weight",
                                  "time_mix_w0.weight", "time_mix_w1.weight", "time_mix_w2.weight",
                                  "time_mix_v0.weight", "time_mix_v1.weight", "time_mix_v2.weight",
                                  "time_mix_a0.weight", "time_mix_a1.weight", "time_mix_a2.weight",
                                  "time_mix_g1.weight", "time_mix_g2.weight", "time_mix_decay_w1.weight",
                                  "time_mix_decay_w2.weight", "time_mix_lerp_fused.weight", "attn_rel_b.weight",
                                  ".position_embd", "sam.pos_embd", "sam.neck.", "sam.net_", ".rel_pos",
                                  ".patch_embd", ".patch_merger", "a.rvq.codebook", "mm.a.code_embd"})
        q &= !contains(name, part);
    q &= name != "position_embd.weight";
    q &= name != "token_types.weight";
    return q;
}

// The model facts llama.cpp's type choice reads (llama_hparams).
struct model_facts {
    std::string arch;
    int n_layer = 0;
    std::uint32_t n_gqa = 0;
    std::uint32_t n_expert = 0;
    bool is_70b = false;
    bool falcon() const { return arch == "falcon"; }
};

// An unsigned integer key (any integer type; an array gives its first element), or nullopt.
inline std::optional<std::uint64_t> get_uint(const gguf::reader& r, const std::string& key) {
    const gguf::metadata_entry* e = r.find(key);
    if (!e) return std::nullopt;
    const gguf::value& v = e->value;
    auto scalar = [&](auto tag) -> std::optional<std::uint64_t> {
        using T = decltype(tag);
        if (v.is<T>()) return static_cast<std::uint64_t>(v.as<T>());
        if (v.is_array_of<T>()) {
            const auto a = v.as_array<T>();
            if (!a.empty()) return static_cast<std::uint64_t>(a[0]);
        }
        return std::nullopt;
    };
    for (auto got : {scalar(std::uint32_t{}), scalar(std::int32_t{}), scalar(std::uint64_t{}), scalar(std::int64_t{}),
                     scalar(std::uint16_t{}), scalar(std::int16_t{}), scalar(std::uint8_t{}), scalar(std::int8_t{})})
        if (got) return got;
    throw error(cat(r.path(), ": key ", q(key), " has type ", v.type_name(), ", expected an integer"));
}

inline model_facts read_facts(const gguf::reader& r) {
    model_facts m;
    m.arch = r.require<std::string>("general.architecture");
    const std::string a = m.arch + ".";
    const auto n_layer = get_uint(r, a + "block_count");
    if (!n_layer) throw error(cat(r.path(), ": required key ", q(a + "block_count"), " is missing"));
    m.n_layer = static_cast<int>(*n_layer);
    const std::uint64_t n_head = get_uint(r, a + "attention.head_count").value_or(0);
    const std::uint64_t n_head_kv = get_uint(r, a + "attention.head_count_kv").value_or(n_head);
    m.n_gqa = n_head_kv == 0 ? 0 : static_cast<std::uint32_t>(n_head / n_head_kv);
    m.n_expert = static_cast<std::uint32_t>(get_uint(r, a + "expert_count").value_or(0));
    // Only LLM_TYPE_70B changes the choice (attn_v gets Q5_K).
    if (m.n_layer == 80 && m.arch == "llama") m.is_70b = n_head != n_head_kv;
    else if (m.n_layer == 80 && (m.arch == "qwen2" || m.arch == "deci" || m.arch == "olmo")) m.is_70b = true;
    else if (m.n_layer == 68 && m.arch == "jais2") m.is_70b = true;
    return m;
}

struct mix_state {
    int n_attention_wv = 0, i_attention_wv = 0;
    int n_ffn_down = 0, n_ffn_gate = 0, n_ffn_up = 0;
    int i_ffn_down = 0, i_ffn_gate = 0, i_ffn_up = 0;
    bool tied = true;
    bool has_imatrix = false;
    int n_fallback = 0;
};

// llama.cpp's llama_tensor_get_type_impl, for the file types qinfer produces.
inline type_id mix_type(mix_state& qs, const model_facts& m, type_id t, const std::string& name, std::int64_t ne0,
                        ftype ft, category cat_) {
    using F = ftype;
    auto more_bits = [](int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; };
    auto layer = [&](int i_layer, int n_layer) {
        if (m.n_expert > 1) {
            i_layer = layer_of(name);
            if (i_layer == -1)
                throw error(cat("qinfer quantize: tensor ", q(name), ": failed to determine its layer"));
            if (i_layer < 0 || i_layer >= n_layer)
                throw error(cat("qinfer quantize: tensor ", q(name), ": bad layer ", i_layer, ", must be in [0, ",
                                n_layer, ")"));
        }
        return std::pair{i_layer, n_layer};
    };
    if (cat_ == category::output || (qs.tied && cat_ == category::token_embd)) {
        if (m.falcon() || ne0 % info(t).block_size != 0) t = type_id::q8_0;
        else if (t != type_id::q8_0) t = type_id::q6_K;
    } else if (cat_ == category::token_embd) {
        // only the IQ1/IQ2/IQ3/TQ mixes change it
    } else if (is_attn_v_like(cat_)) {
        if (ft == F::q2_K) t = m.n_gqa >= 4 ? type_id::q4_K : type_id::q3_K;
        else if (ft == F::q2_K_S && m.n_gqa >= 4) t = type_id::q4_K;
        else if (ft == F::q3_K_M) t = qs.i_attention_wv < 2 ? type_id::q5_K : type_id::q4_K;
        else if (ft == F::q3_K_L) t = type_id::q5_K;
        else if ((ft == F::iq4_nl || ft == F::iq4_xs) && m.n_gqa >= 4) t = type_id::q5_K;
        else if ((ft == F::q4_K_M || ft == F::q5_K_M) && more_bits(qs.i_attention_wv, qs.n_attention_wv)) t = type_id::q6_K;
        else if (ft == F::q4_K_S && qs.i_attention_wv < 4) t = type_id::q5_K;
        if (m.is_70b && (t == type_id::q3_K || t == type_id::q4_K)) t = type_id::q5_K;
        if (m.n_expert == 8) t = type_id::q8_0;
        ++qs.i_attention_wv;
    } else if (cat_ == category::attn_k) {
        if (m.n_expert == 8) t = type_id::q8_0;
    } else if (cat_ == category::attn_q) {
    } else if (cat_ == category::ffn_down) {
        const auto [i, n] = layer(qs.i_ffn_down, qs.n_ffn_down);
        if (ft == F::q2_K) t = type_id::q3_K;
        else if (ft == F::q2_K_S) {
            if (i < n / 8) t = type_id::q4_K;
        } else if (ft == F::q3_K_M) t = i < n / 16 ? type_id::q5_K : !m.falcon() || more_bits(i, n) ? type_id::q4_K : type_id::q3_K;
        else if (ft == F::q3_K_L) t = m.falcon() ? type_id::q4_K : type_id::q5_K;
        else if (ft == F::q4_K_M) {
            if (m.falcon()) t = i < n / 16 ? type_id::q6_K : more_bits(i, n) ? type_id::q5_K : type_id::q4_K;
            else if (more_bits(i, n)) t = type_id::q6_K;
        } else if (i < n / 8 && (ft == F::iq4_nl || ft == F::iq4_xs) && !qs.has_imatrix) t = type_id::q5_K;
        else if (ft == F::q5_K_M && more_bits(i, n)) t = type_id::q6_K;
        else if (ft == F::q4_K_S && !m.falcon() && i < n / 8) t = type_id::q5_K;
        // with an imatrix, llama.cpp guards the first ffn_down layers of Q4_0 / Q5_0 files
        else if ((ft == F::q4_0 || ft == F::q5_0) && qs.has_imatrix && i < n / 8)
            t = ft == F::q4_0 ? type_id::q4_1 : type_id::q5_1;
        ++qs.i_ffn_down;
    } else if (cat_ == category::attn_output) {
        if (!m.falcon()) {
            if (m.n_expert == 8) {
                if (ft == F::q2_K || ft == F::q3_K_S || ft == F::q3_K_M || ft == F::iq4_nl || ft == F::q4_K_S ||
                    ft == F::q4_K_M || ft == F::iq4_xs)
                    t = type_id::q5_K;
            } else {
                if (ft == F::q2_K) t = type_id::q3_K;
                else if (ft == F::q3_K_M) t = type_id::q4_K;
                else if (ft == F::q3_K_L) t = type_id::q5_K;
            }
        } else if (ft == F::q3_K_L) {
            t = type_id::q4_K;
        }
    } else if (cat_ == category::ffn_gate) {
        (void)layer(qs.i_ffn_gate, qs.n_ffn_gate);
        ++qs.i_ffn_gate;
    } else if (cat_ == category::ffn_up) {
        (void)layer(qs.i_ffn_up, qs.n_ffn_up);
        ++qs.i_ffn_up;
    }
    return t;
}

// llama.cpp's tensor_type_fallback: a type whose block does not divide the row length.
inline type_id fallback_type(mix_state& qs, type_id t, std::int64_t ne0, bool& fell_back) {
    const std::int64_t bs = info(t).block_size;
    if (ne0 % bs == 0) return t;
    ++qs.n_fallback;
    fell_back = true;
    type_id r = t;
    switch (t) {
    case type_id::iq4_xs: r = type_id::iq4_nl; break;
    case type_id::q2_K: case type_id::q3_K: r = type_id::q4_0; break;
    case type_id::q4_K: r = type_id::q5_0; break;
    case type_id::q5_K: r = type_id::q5_1; break;
    case type_id::q6_K: r = type_id::q8_0; break;
    default:
        if (bs > 32) throw error(cat("qinfer quantize: no fallback type is defined for ", type_name(t)));
        break;
    }
    if (ne0 % info(r).block_size != 0) r = type_id::f16;
    return r;
}

// ggml_validate_row_data: no NaN / infinity in float data or in the fp16 scales of blocks,
// no E8M0 exponent 0xff (its NaN code) in MXFP4 blocks.
inline bool valid_data(type_id t, std::span<const std::byte> bytes) {
    auto bad16 = [](std::uint16_t b) { return (b & 0x7c00u) == 0x7c00u; };
    switch (t) {
    case type_id::f32: {
        for (std::size_t i = 0; i + 4 <= bytes.size(); i += 4) {
            std::uint32_t u;
            std::memcpy(&u, bytes.data() + i, 4);
            if ((u & 0x7f800000u) == 0x7f800000u) return false;
        }
        return true;
    }
    case type_id::f16: case type_id::bf16: {
        const std::uint16_t mask = t == type_id::f16 ? 0x7c00u : 0x7f80u;
        for (std::size_t i = 0; i + 2 <= bytes.size(); i += 2) {
            std::uint16_t u;
            std::memcpy(&u, bytes.data() + i, 2);
            if ((u & mask) == mask) return false;
        }
        return true;
    }
    default: break;
    }
    if (!has_kernels(t)) return true;
    return visit_type(t, [&]<class B>() {
        if constexpr (requires(const B& b) { b.d.bits; }) {
            const std::size_t n = bytes.size() / sizeof(B);
            for (std::size_t i = 0; i < n; ++i) {
                B b;
                std::memcpy(&b, bytes.data() + i * sizeof(B), sizeof(B));
                if (bad16(b.d.bits)) return false;
                if constexpr (requires { b.dmin.bits; }) if (bad16(b.dmin.bits)) return false;
                if constexpr (requires { b.m.bits; }) if (bad16(b.m.bits)) return false;
            }
        }
        if constexpr (std::is_same_v<B, block_mxfp4>) {
            for (std::size_t i = 0; i < bytes.size() / sizeof(B); ++i)
                if (std::to_integer<std::uint8_t>(bytes[i * sizeof(B) + offsetof(block_mxfp4, e)]) == 0xff) return false;
        }
        return true;
    });
}

inline std::string shape_text(const tensor_plan& p) {
    std::string s;
    for (int d = 0; d < 4; ++d) s += cat(d ? ", " : "", p.ne[static_cast<std::size_t>(d)]);
    return s;
}

}  // namespace detail

// The plan llama.cpp would make for `file`: every tensor in output order with its new type.
inline std::vector<tensor_plan> plan_quantization(const gguf::reader& file, const quantize_options& o,
                                                  int* n_fallback = nullptr) {
    using namespace detail;
    const ftype_info& fi = info(o.type);
    const model_facts m = read_facts(file);
    if (const auto n_split = get_uint(file, "split.count"); n_split && *n_split > 1)
        throw error(cat(file.path(), ": split models (split.count = ", *n_split,
                        ") are not supported; merge the parts into one file first"), errc::unsupported);

    std::vector<tensor_plan> plan;
    for (const gguf::tensor_info& t : file.tensors()) {
        tensor_plan p;
        p.name = t.name;
        p.n_dims = n_dims_of(t);
        p.ne = t.ne;
        p.from = p.to = t.type;
        p.bytes_from = t.n_bytes;
        p.source = &t;
        plan.push_back(std::move(p));
    }
    std::stable_sort(plan.begin(), plan.end(), [](const tensor_plan& a, const tensor_plan& b) {
        return tensor_order(a.name, b.name);
    });

    mix_state qs;
    for (const tensor_plan& p : plan) {
        const category c = category_of(p.name);
        if (is_attn_v_like(c)) ++qs.n_attention_wv;
        if (c == category::output) qs.tied = false;
    }
    qs.n_ffn_down = qs.n_ffn_gate = qs.n_ffn_up = m.n_layer;
    qs.has_imatrix = o.importance != nullptr;

    for (tensor_plan& p : plan) {
        if (!allows_quantization(p.name, p.n_dims, o)) continue;
        type_id t = fi.default_type;
        if (info(t).quantized) {
            if (!o.pure) t = mix_type(qs, m, t, p.name, p.ne[0], o.type, category_of(p.name));
            t = fallback_type(qs, t, p.ne[0], p.fallback);
        }
        p.to = t;
        // llama.cpp's tensor_requires_imatrix, for the types qinfer writes
        const category c = category_of(p.name);
        p.requires_imatrix = t == type_id::q2_K && o.type == ftype::q2_K_S && c != category::token_embd &&
                             c != category::output;
        if (p.requires_imatrix && !o.importance)
            throw error(cat(file.path(), ": tensor ", q(p.name), ": ", fi.name, " quantizes it to ", type_name(t),
                            ", which needs an importance matrix (quantize_options::importance)"), errc::invalid_argument);
    }
    for (tensor_plan& p : plan) {
        if (p.to == p.from) {
            p.bytes_to = p.bytes_from;
            continue;
        }
        if (!has_kernels(p.to))
            throw error(cat(file.path(), ": tensor ", q(p.name), ": qinfer cannot write type ", type_name(p.to)));
        if (!has_kernels(p.from))
            throw error(cat(file.path(), ": tensor ", q(p.name), ": qinfer cannot read type ", type_name(p.from)));
        if (info(p.from).quantized && !o.allow_requantize)
            throw error(cat(file.path(), ": tensor ", q(p.name), " is already quantized (", type_name(p.from),
                            "); requantizing to ", type_name(p.to), " is disabled (quantize_options::allow_requantize enables it)"), errc::invalid_argument);
        p.bytes_to = static_cast<std::uint64_t>(row_bytes(p.to, p.ne[0])) *
                     static_cast<std::uint64_t>(p.ne[1] * p.ne[2] * p.ne[3]);
    }
    if (n_fallback) *n_fallback = qs.n_fallback;
    return plan;
}

namespace detail {

// The GGUF header llama.cpp writes: metadata copied in order, quantization_version and file_type
// appended (an existing key moves to the end), split keys dropped; tensor infos; padding.
inline std::vector<std::byte> output_header(const gguf::reader& file, const std::vector<tensor_plan>& plan, ftype ft,
                                            std::uint64_t alignment, const imatrix* imx = nullptr) {
    using namespace gguf::detail;
    struct kv { std::string_view key; gguf::value_type type; std::vector<std::byte> enc; };
    std::vector<kv> entries;
    auto put_u32 = [&](std::string_view key, std::uint32_t v) {
        std::erase_if(entries, [&](const kv& e) { return e.key == key; });
        std::vector<std::byte> enc;
        append_le<std::uint32_t>(enc, v);
        entries.push_back({key, gguf::value_type::u32, std::move(enc)});
    };
    for (const gguf::metadata_entry& e : file.metadata()) {
        const auto enc = e.value.encoded();
        entries.push_back({e.key, e.value.type(), std::vector<std::byte>(enc.begin(), enc.end())});
    }
    put_u32("general.quantization_version", 2);  // GGML_QNT_VERSION
    put_u32("general.file_type", static_cast<std::uint32_t>(ft));
    if (imx) {
        // llama-quantize's overrides: strings cut to 127 bytes (its fixed-size field)
        auto put_str = [&](std::string_view key, std::string_view v) {
            std::erase_if(entries, [&](const kv& e) { return e.key == key; });
            std::vector<std::byte> enc;
            v = v.substr(0, std::min<std::size_t>(v.find('\0'), 127));
            append_string(enc, v);
            entries.push_back({key, gguf::value_type::string, std::move(enc)});
        };
        put_str("quantize.imatrix.file", imx->path);
        if (!imx->datasets.empty()) put_str("quantize.imatrix.dataset", imx->datasets.front());
        put_u32("quantize.imatrix.entries_count", static_cast<std::uint32_t>(imx->entries.size()));
        if (imx->chunk_count > 0) put_u32("quantize.imatrix.chunks_count", static_cast<std::uint32_t>(imx->chunk_count));
    }
    for (std::string_view k : {"split.no", "split.count", "split.tensors.count"})
        std::erase_if(entries, [&](const kv& e) { return e.key == k; });

    std::vector<std::byte> h;
    append_bytes(h, gguf::magic);
    append_le<std::uint32_t>(h, gguf::written_version);
    append_le<std::uint64_t>(h, plan.size());
    append_le<std::uint64_t>(h, entries.size());
    for (const kv& e : entries) {
        append_string(h, e.key);
        append_le<std::uint32_t>(h, static_cast<std::uint32_t>(e.type));
        h.insert(h.end(), e.enc.begin(), e.enc.end());
    }
    std::uint64_t offset = 0;
    for (const tensor_plan& p : plan) {
        append_string(h, p.name);
        append_le<std::uint32_t>(h, static_cast<std::uint32_t>(p.n_dims));
        for (int d = 0; d < p.n_dims; ++d) append_le<std::int64_t>(h, p.ne[static_cast<std::size_t>(d)]);
        append_le<std::uint32_t>(h, static_cast<std::uint32_t>(p.to));
        append_le<std::uint64_t>(h, offset);
        offset += p.bytes_to + padding_for(p.bytes_to, alignment);
    }
    h.resize(h.size() + padding_for(h.size(), alignment), std::byte{0});
    return h;
}

// Converts rows of `p.source` to `p.to` into `out` (p.bytes_to bytes), rows spread over the pool.
// `importance`: ne[0] * ne[2] values (one row of them per expert) or null.
inline void convert_tensor(const tensor_plan& p, std::span<std::byte> out, thread_pool& pool,
                           const float* importance = nullptr) {
    const std::int64_t n_per_row = p.ne[0];
    const std::int64_t n_rows = p.ne[1] * p.ne[2] * p.ne[3];
    const std::size_t src_row = static_cast<std::size_t>(row_bytes(p.from, n_per_row));
    const std::size_t dst_row = static_cast<std::size_t>(row_bytes(p.to, n_per_row));
    const std::int64_t rows_per_job = std::max<std::int64_t>(1, 32 * 512 / n_per_row);
    const std::int64_t n_jobs = (n_rows + rows_per_job - 1) / rows_per_job;
    const std::byte* src = p.source->data;
    pool.parallel_for(static_cast<int>(n_jobs), [&](int job) {
        thread_local std::vector<float> buf;
        buf.resize(static_cast<std::size_t>(n_per_row));
        const std::int64_t r0 = job * rows_per_job, r1 = std::min(n_rows, r0 + rows_per_job);
        for (std::int64_t r = r0; r < r1; ++r) {
            const std::byte* in = src + static_cast<std::size_t>(r) * src_row;
            std::byte* o = out.data() + static_cast<std::size_t>(r) * dst_row;
            const float* x;
            if (p.from == type_id::f32) {
                std::memcpy(buf.data(), in, src_row);  // the mapping may be unaligned for float
                x = buf.data();
            } else {
                visit_type(p.from, [&]<class B>() {
                    thread_local std::vector<B> blocks;
                    blocks.resize(src_row / sizeof(B));
                    std::memcpy(static_cast<void*>(blocks.data()), in, src_row);
                    dequantize_row(blocks.data(), buf.data(), n_per_row);
                });
                x = buf.data();
            }
            // llama.cpp gives every row of expert e the importance row e (rows per expert: ne[1])
            const float* imp = importance ? importance + (r / p.ne[1]) * n_per_row : nullptr;
            visit_type(p.to, [&]<class B>() {
                thread_local std::vector<B> blocks;
                blocks.resize(dst_row / sizeof(B));
                if constexpr (requires { quantize_row(x, blocks.data(), n_per_row, imp); })
                    quantize_row(x, blocks.data(), n_per_row, imp);
                else
                    quantize_row(x, blocks.data(), n_per_row);  // a format whose ggml quantizer ignores it
                std::memcpy(o, static_cast<const void*>(blocks.data()), dst_row);
            });
        }
    });
}

}  // namespace detail

// Quantizes `in` into `out` as llama.cpp's llama_model_quantize does (with o.importance as its
// imatrix, plus llama-quantize's quantize.imatrix.* keys when o.imatrix_metadata).
// Errors (qinfer::error) name the file and the tensor or key; a failed run leaves no output.
inline quantize_result quantize_model(const std::filesystem::path& in, const std::filesystem::path& out,
                                      const quantize_options& o) {
    using namespace detail;
    const auto t0 = std::chrono::steady_clock::now();
    if (!std::filesystem::exists(in)) throw error(cat("qinfer quantize: input file '", in.string(), "' does not exist"), errc::io);
    const gguf::reader file(in);
    quantize_result r;
    r.tensors = plan_quantization(file, o, &r.n_fallback);
    const std::uint64_t align = file.alignment();

    if (o.importance)  // as llama_model_quantize: no NaN / infinity in the importance matrix
        for (const auto& [name, v] : o.importance->entries)
            for (std::size_t k = 0; k < v.size(); ++k)
                if (!std::isfinite(v[k]))
                    throw error(cat(o.importance->path, ": imatrix entry ", q(name), " has a non-finite value at ", k));

    // Like llama.cpp's loader (check_tensors): reject NaN / infinity in the input.
    for (const tensor_plan& p : r.tensors)
        if (!valid_data(p.from, p.source->bytes()))
            throw error(cat(in.string(), ": tensor ", q(p.name), " has invalid data (NaN or infinity in its ",
                            type_name(p.from), " values or scales)"));

    const std::filesystem::path tmp = out.string() + ".part";
    try {
        std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
        if (!f) throw error(cat("qinfer quantize: cannot open '", tmp.string(), "' for writing"), errc::io);
        const std::vector<std::byte> header =
            output_header(file, r.tensors, o.type, align, o.imatrix_metadata ? o.importance : nullptr);
        f.write(reinterpret_cast<const char*>(header.data()), static_cast<std::streamsize>(header.size()));
        thread_pool pool(o.n_threads);
        std::vector<std::byte> buf;
        static constexpr std::array<char, 64> zeros{};
        for (std::size_t i = 0; i < r.tensors.size(); ++i) {
            tensor_plan& p = r.tensors[i];
            std::span<const std::byte> data = p.source->bytes();
            if (p.to != p.from) {
                const float* imp = nullptr;
                if (const std::vector<float>* e = o.importance ? o.importance->find(p.name) : nullptr) {
                    // llama.cpp: one importance per column and expert; a mismatch is an error,
                    // except for the token embeddings (which imatrix files often cover oddly)
                    const std::int64_t want = p.ne[0] * p.ne[2];
                    if (static_cast<std::int64_t>(e->size()) == want && p.ne[3] == 1) imp = e->data();
                    else if (category_of(p.name) != category::token_embd)
                        throw error(cat(o.importance->path, ": imatrix entry ", q(p.name), " has ", e->size(),
                                        " values, tensor ", q(p.name), " of ", in.string(), " needs ", want,
                                        " (ne[0] * experts)"));
                }
                if (!imp && p.requires_imatrix)
                    throw error(cat(in.string(), ": tensor ", q(p.name), ": no importance matrix entry for it, and ",
                                    type_name(p.to), " in ", info(o.type).name, " needs one"));
                p.used_imatrix = imp != nullptr && info(p.to).quantized;
                buf.assign(static_cast<std::size_t>(p.bytes_to), std::byte{0});
                convert_tensor(p, buf, pool, imp);
                if (!valid_data(p.to, buf))
                    throw error(cat(in.string(), ": tensor ", q(p.name), ": ", type_name(p.to),
                                    " data has NaN or infinity (values too large for the type?)"));
                data = buf;
            }
            f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
            for (std::uint64_t left = gguf::detail::padding_for(data.size(), align); left > 0;) {
                const auto n = std::min<std::uint64_t>(left, zeros.size());
                f.write(zeros.data(), static_cast<std::streamsize>(n));
                left -= n;
            }
            r.bytes_from += p.bytes_from;
            r.bytes_to += p.bytes_to;
            r.n_elements += p.ne[0] * p.ne[1] * p.ne[2] * p.ne[3];
            if (o.on_tensor) o.on_tensor(p, i, r.tensors.size());
        }
        f.close();
        if (!f) throw error(cat("qinfer quantize: cannot write '", tmp.string(), "' (disk full or I/O error?)"), errc::io);
        std::filesystem::rename(tmp, out);
    } catch (...) {
        std::error_code ec;
        std::filesystem::remove(tmp, ec);
        throw;
    }
    for (tensor_plan& p : r.tensors) p.source = nullptr;  // the reader is gone
    r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    return r;
}

}  // namespace tools
QINFER_NAMESPACE_END
