// qinfer/text/vocab.hpp — a tokenizer vocabulary as plain data, and reading it from GGUF.
//
// `vocab` holds what the tokenizer algorithms need: token texts, scores, attributes, merges,
// special ids and flags. from_gguf() fills it from the tokenizer.ggml.* keys and applies
// llama.cpp's derivations (defaults per model, per pre-tokenizer flags, special tokens found by
// their text, end-of-generation set), so a vocab read here tokenizes like llama.cpp. Tests and
// tools can also build one by hand.
#pragma once

#include <algorithm>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "../core/config.hpp"
#include "../core/error.hpp"
#include "../gguf/reader.hpp"
#include "pretokenizer.hpp"

QINFER_NAMESPACE_BEGIN
namespace text {

inline constexpr std::int32_t no_token = -1;

enum class vocab_kind {
    spm,  // tokenizer.ggml.model "llama": SentencePiece, merges by score, <0xXX> byte fallback
    bpe,  // tokenizer.ggml.model "gpt2": byte-level BPE, merges by rank, regex pre-tokenizer
};

// Token attributes (bit set), as llama.cpp derives them from tokenizer.ggml.token_type.
enum token_attr : std::uint32_t {
    attr_undefined = 0,
    attr_unknown = 1u << 0,
    attr_unused = 1u << 1,
    attr_normal = 1u << 2,
    attr_control = 1u << 3,
    attr_user_defined = 1u << 4,
    attr_byte = 1u << 5,
    attr_normalized = 1u << 6,
    attr_lstrip = 1u << 7,  // a special token eats the whitespace before it
    attr_rstrip = 1u << 8,  // ... or after it
    attr_single_word = 1u << 9,
};

// tokenizer.ggml.token_type values (SentencePiece's piece types).
inline std::uint32_t attr_from_token_type(std::int32_t type) noexcept {
    switch (type) {
        case 1: return attr_normal;
        case 2: return attr_unknown;
        case 3: return attr_control;
        case 4: return attr_user_defined;
        case 5: return attr_unused;
        case 6: return attr_byte;
        default: return attr_undefined;  // 0 and anything unknown
    }
}

struct vocab {
    vocab_kind kind = vocab_kind::spm;
    std::string model;               // tokenizer.ggml.model as stored
    std::string pre;                 // tokenizer.ggml.pre as stored ("" when absent)
    pre_type pre_kind = pre_type::default_bpe;  // BPE only

    std::vector<std::string> tokens;   // id -> text
    std::vector<float> scores;         // id -> SPM merge score (empty: all 0)
    std::vector<std::uint32_t> attrs;  // id -> token_attr bits (empty: all normal)
    std::vector<std::string> merges;   // BPE: "left right", rank = index

    std::int32_t bos = no_token, eos = no_token, eot = no_token, eom = no_token, unk = no_token;
    std::int32_t sep = no_token, pad = no_token, mask = no_token;
    std::int32_t fim_pre = no_token, fim_suf = no_token, fim_mid = no_token;
    std::int32_t fim_pad = no_token, fim_rep = no_token, fim_sep = no_token;
    std::vector<std::int32_t> eog;     // tokens that end generation, ascending

    bool add_bos = false;              // encode(add_special) starts with bos
    bool add_eos = false;              // ... and ends with eos
    bool add_sep = false;
    bool add_space_prefix = false;     // SPM: a space before the first word (and after specials)
    bool ignore_merges = false;        // BPE: a word that is a token is taken whole
    bool clean_spaces = false;         // decode: drop the space in " ," " 's" ... (BPE)
    bool remove_extra_whitespaces = false;

    std::string chat_template;         // tokenizer.chat_template ("" when absent)

    std::size_t size() const noexcept { return tokens.size(); }
    float score(std::int32_t id) const { return scores.empty() ? 0.0f : scores[id]; }
    std::uint32_t attr(std::int32_t id) const { return attrs.empty() ? std::uint32_t{attr_normal} : attrs[id]; }
    bool is_eog(std::int32_t id) const { return std::binary_search(eog.begin(), eog.end(), id); }
};

namespace detail {

struct string_hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

// Text -> id lookup over a vocab, searchable with string_views (no allocation per lookup).
class token_index {
public:
    token_index() = default;
    explicit token_index(const vocab& v) {
        ids_.reserve(v.size());
        for (std::size_t i = 0; i < v.size(); ++i) ids_.emplace(v.tokens[i], static_cast<std::int32_t>(i));
    }
    std::int32_t find(std::string_view text) const {
        const auto it = ids_.find(text);
        return it == ids_.end() ? no_token : it->second;
    }

private:
    std::unordered_map<std::string, std::int32_t, string_hash, std::equal_to<>> ids_;
};

struct pre_info {
    pre_type type;
    bool clean_spaces = true;
    bool ignore_merges = false;
    bool add_bos = false;
    bool no_bos = false;
};

// llama.cpp's tokenizer.ggml.pre names, for the regex lists implemented in pretokenizer.hpp.
inline std::optional<pre_info> lookup_pre(std::string_view name) {
    const auto any = [&](std::initializer_list<std::string_view> names) {
        return std::find(names.begin(), names.end(), name) != names.end();
    };
    using t = pre_type;
    if (name.empty() || name == "default") return pre_info{t::default_bpe};
    if (any({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral", "midm-2.0", "lfm2", "jina-v5-nano"}))
        return pre_info{t::llama3, true, true, true};
    if (any({"dbrx", "smaug-bpe"})) return pre_info{t::llama3};
    if (any({"glm4", "chatglm-bpe"})) return pre_info{t::llama3, true, false, false, true};
    if (name == "deepseek-llm") return pre_info{t::deepseek_llm, false};
    if (name == "deepseek-coder") return pre_info{t::deepseek_coder, false};
    if (name == "falcon") return pre_info{t::falcon};
    if (any({"gpt-2", "phi-2", "jina-es", "jina-de", "gigachat", "jina-v2-es", "jina-v2-de", "a.x-4.0", "mellum",
             "modern-bert", "mpt", "olmo", "jais", "exaone4"}))
        return pre_info{t::gpt2};
    if (any({"trillion", "granite-docling"})) return pre_info{t::gpt2, false};
    if (any({"starcoder", "refact", "codeshell", "exaone", "minerva-7b", "mellum2"})) return pre_info{t::starcoder};
    if (any({"command-r", "smollm"})) return pre_info{t::starcoder, false};
    if (any({"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "hunyuan", "grok-2", "solar-open"}))
        return pre_info{t::qwen2, false};
    if (any({"stablelm2", "megrez"})) return pre_info{t::qwen2};
    if (name == "qwen35") return pre_info{t::qwen35, false};
    return std::nullopt;
}

// A special token found by its text is made a control token (llama.cpp does the same: such
// tokens must never be produced from plain text).
inline void mark_control(vocab& v, std::int32_t id) { v.attrs[id] |= attr_control; }

// Special ids, end-of-generation set and per-model attributes that llama.cpp derives from the
// token texts. `by_text` must be llama.cpp's own text->id hash map built the same way (ids in
// order into a std::unordered_map), because where several tokens qualify, llama.cpp takes the
// first one its map iterates to.
inline void derive_special_tokens(vocab& v, const std::unordered_map<std::string, std::int32_t>& by_text,
                                  std::string_view model_name) {
    const auto find_first = [&](std::int32_t& id, std::initializer_list<std::string_view> texts) {
        for (const auto& [text, tid] : by_text) {
            if (id != no_token) return;
            if (std::find(texts.begin(), texts.end(), text) != texts.end()) {
                id = tid;
                mark_control(v, tid);
            }
        }
    };
    find_first(v.eot, {"<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|end_of_text|>",
                       "<EOT>", "_<EOT>", "[EOT]", "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
                       "<end_of_utterance>"});
    find_first(v.eom, {"<|eom_id|>"});
    find_first(v.fim_pre, {"<|fim_prefix|>", "<fim-prefix>", "<fim_prefix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "begin\xEF\xBD\x9C>",
                           "<PRE>", "\xE2\x96\x81<PRE>", "<|code_prefix|>", "<|prefix|>"});
    find_first(v.fim_suf, {"<|fim_suffix|>", "<fim-suffix>", "<fim_suffix>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81hole\xEF\xBD\x9C>",
                           "<SUF>", "\xE2\x96\x81<SUF>", "<|code_suffix|>", "<|suffix|>"});
    find_first(v.fim_mid, {"<|fim_middle|>", "<fim-middle>", "<fim_middle>", "<\xEF\xBD\x9C" "fim\xE2\x96\x81" "end\xEF\xBD\x9C>",
                           "<MID>", "\xE2\x96\x81<MID>", "<|code_middle|>", "<|middle|>"});
    find_first(v.fim_pad, {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>", "[PAD]"});
    find_first(v.fim_rep, {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>", "<REPO>", "<reponame>"});
    find_first(v.fim_sep, {"<|file_sep|>"});

    // Control tokens named "unused..." are unused.
    for (std::size_t id = 0; id < v.size(); ++id)
        if ((v.attrs[id] & attr_control) && v.tokens[id].find("unused") != std::string::npos) v.attrs[id] |= attr_unused;

    // End of generation: FIM pad/repo/sep, tokens known by their text, then eos/eot/eom.
    std::vector<std::int32_t> eog;
    for (std::int32_t id : {v.fim_pad, v.fim_rep, v.fim_sep})
        if (id != no_token) eog.push_back(id);
    static constexpr std::string_view eog_texts[] = {
        "<|eot_id|>", "<|im_end|>", "<|end|>", "<|return|>", "<|call|>", "<|flush|>", "<|calls|>", "<end_of_turn>",
        "<|endoftext|>", "</s>", "<|eom_id|>", "<EOT>", "_<EOT>", "[EOT]", "[EOS]", "<|end_of_text|>",
        "<end_of_utterance>", "<eos>", "<turn|>", "<|tool_response>",
        "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>", "[e~["};
    for (std::size_t id = 0; id < v.size(); ++id) {
        if (std::find(std::begin(eog_texts), std::end(eog_texts), v.tokens[id]) != std::end(eog_texts)) {
            eog.push_back(static_cast<std::int32_t>(id));
            mark_control(v, static_cast<std::int32_t>(id));
        }
    }
    // gpt-oss: these must always be rendered.
    for (std::string_view t : {"<|channel|>", "<|message|>", "<|start|>", "<|constrain|>"})
        if (auto it = by_text.find(std::string(t)); it != by_text.end()) v.attrs[it->second] = attr_user_defined;
    for (std::int32_t id : {v.eos, v.eot, v.eom})
        if (id != no_token) eog.push_back(id);
    std::sort(eog.begin(), eog.end());
    eog.erase(std::unique(eog.begin(), eog.end()), eog.end());

    const auto eog_with_text = [&](std::string_view text) {
        for (std::int32_t id : eog)
            if (id >= 0 && static_cast<std::size_t>(id) < v.size() && v.tokens[id] == text) return id;
        return no_token;
    };
    // o200k_harmony / solar-open: "<|end|>" separates messages there and does not end generation.
    const bool has_call = eog_with_text("<|call|>") != no_token || eog_with_text("<|calls|>") != no_token;
    if (const std::int32_t end = eog_with_text("<|end|>");
        end != no_token && has_call && (eog_with_text("<|return|>") != no_token || eog_with_text("<|flush|>") != no_token)) {
        eog.erase(std::find(eog.begin(), eog.end(), end));
        v.attrs[end] = attr_user_defined;
    }
    // gemma4 / paddleocr: "</s>" is an ordinary token there.
    if (const std::int32_t s = eog_with_text("</s>"); s != no_token && eog_with_text("<|tool_response>") != no_token) {
        eog.erase(std::find(eog.begin(), eog.end(), s));
        v.attrs[s] = attr_normal;
    }
    v.eog = std::move(eog);

    // Per-model attributes llama.cpp sets by model name.
    std::string name(model_name);
    std::transform(name.begin(), name.end(), name.begin(), [](char c) { return (c >= 'A' && c <= 'Z') ? char(c + 32) : c; });
    const auto set_attr = [&](std::string_view text, std::uint32_t a, bool on) {
        const auto it = by_text.find(std::string(text));
        if (it == by_text.end()) return;
        v.attrs[it->second] = on ? (v.attrs[it->second] | a) : (v.attrs[it->second] & ~a);
    };
    if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
        // Phi-3's special tokens swallow the whitespace that follows them.
        for (std::size_t id = 0; id < v.size(); ++id)
            if (v.attrs[id] & (attr_control | attr_user_defined | attr_unknown)) v.attrs[id] |= attr_rstrip;
        set_attr("</s>", attr_rstrip, true);
        for (std::string_view t : {"<unk>", "<s>", "<|endoftext|>"}) set_attr(t, attr_rstrip, false);
    } else if (name.find("modern-bert") != std::string::npos) {
        set_attr("[MASK]", attr_lstrip, true);
    }
}

}  // namespace detail

// Reads the tokenizer.ggml.* keys (and tokenizer.chat_template). Throws qinfer::error for a
// tokenizer model other than "llama" / "gpt2", an unknown pre-tokenizer, or malformed arrays.
inline vocab from_gguf(const gguf::reader& r) {
    const auto fail = [&](const std::string& what, errc code = errc::format) -> void { throw error(r.path() + ": " + what, code); };
    vocab v;
    v.model = std::string(r.require<std::string_view>("tokenizer.ggml.model"));
    v.pre = std::string(r.get<std::string_view>("tokenizer.ggml.pre").value_or(""));

    // Model defaults (llama.cpp's, for when the keys are absent).
    if (v.model == "llama") {
        v.kind = vocab_kind::spm;
        v.bos = 1;
        v.eos = 2;
        v.unk = 0;
        v.add_space_prefix = true;
        v.add_bos = true;
    } else if (v.model == "gpt2") {
        v.kind = vocab_kind::bpe;
        const gguf::metadata_entry* merges = r.find("tokenizer.ggml.merges");
        if (!merges) fail("BPE vocabulary without key \"tokenizer.ggml.merges\"");
        if (merges->value.is_array() && merges->value.size() > 0x7FFFFFFF)  // ranks are ints
            fail("key \"tokenizer.ggml.merges\" holds more merges than int ranks can address");
        for (std::string_view m : r.require_array<std::string_view>("tokenizer.ggml.merges")) v.merges.emplace_back(m);
        v.bos = 11;
        v.eos = 11;
        const std::optional<detail::pre_info> info = detail::lookup_pre(v.pre);
        if (!info) fail("unsupported pre-tokenizer tokenizer.ggml.pre = \"" + v.pre + "\"", errc::unsupported);
        v.pre_kind = info->type;
        v.clean_spaces = info->clean_spaces;
        v.ignore_merges = info->ignore_merges;
        v.add_bos = info->add_bos;
        if (info->no_bos) v.bos = no_token;
    } else {
        fail("unsupported tokenizer model tokenizer.ggml.model = \"" + v.model +
             "\" (supported: \"llama\" = SentencePiece, \"gpt2\" = byte-level BPE)",
             errc::unsupported);
    }
    if (auto b = r.get<bool>("tokenizer.ggml.add_space_prefix")) v.add_space_prefix = *b;
    if (auto b = r.get<bool>("tokenizer.ggml.remove_extra_whitespaces")) v.remove_extra_whitespaces = *b;

    // Tokens, scores, types.
    // Every count below is the token list's, which the reader has bounded by the file's bytes;
    // the other arrays are checked against it before anything is sized from them.
    const gguf::metadata_entry* token_list = r.find("tokenizer.ggml.tokens");
    if (!token_list) fail("no tokenizer vocabulary (key \"tokenizer.ggml.tokens\")");
    if (token_list->value.is_array() && token_list->value.size() > 0x7FFFFFFF)
        fail("key \"tokenizer.ggml.tokens\" holds more tokens than int32 ids can address");
    const std::vector<std::string_view> texts = r.require_array<std::string_view>("tokenizer.ggml.tokens");
    const std::size_t n = texts.size();
    if (n == 0) fail("key \"tokenizer.ggml.tokens\" is an empty array");
    if (r.contains("tokenizer.ggml.scores")) {
        if (r.type_of("tokenizer.ggml.scores") == gguf::value_type::array &&
            r.find("tokenizer.ggml.scores")->value.is_array_of<std::int32_t>()) {
            for (std::int32_t s : r.require_array<std::int32_t>("tokenizer.ggml.scores")) v.scores.push_back(float(s));
        } else {
            v.scores = r.require_array<float>("tokenizer.ggml.scores");
        }
        if (v.scores.size() < n)
            fail("key \"tokenizer.ggml.scores\" has " + std::to_string(v.scores.size()) + " entries for " +
                 std::to_string(n) + " tokens");
        v.scores.resize(n);
    }
    v.attrs.assign(n, attr_normal);
    if (r.contains("tokenizer.ggml.token_type")) {
        const std::vector<std::int32_t> types = r.require_array<std::int32_t>("tokenizer.ggml.token_type");
        if (types.size() < n)
            fail("key \"tokenizer.ggml.token_type\" has " + std::to_string(types.size()) + " entries for " +
                 std::to_string(n) + " tokens");
        for (std::size_t i = 0; i < n; ++i) v.attrs[i] = attr_from_token_type(types[i]);
    }
    v.tokens.reserve(n);
    std::unordered_map<std::string, std::int32_t> by_text;  // the same map llama.cpp builds, see derive_special_tokens
    for (std::size_t i = 0; i < n; ++i) {
        std::string t = texts[i].empty() ? "[EMPTY_" + std::to_string(i) + "]" : std::string(texts[i]);
        const auto [it, fresh] = by_text.emplace(t, static_cast<std::int32_t>(i));
        if (!fresh)
            fail("token text \"" + t + "\" appears twice in \"tokenizer.ggml.tokens\" (ids " +
                 std::to_string(it->second) + " and " + std::to_string(i) + ")");
        v.tokens.push_back(std::move(t));
    }

    // Explicit special ids; a default outside the vocabulary is dropped, a bad explicit id ignored.
    const auto special = [&](std::int32_t& id, std::string_view key) {
        if (id >= 0 && static_cast<std::size_t>(id) >= n) id = no_token;
        if (const auto x = r.get<std::uint32_t>(key); x && *x < n) id = static_cast<std::int32_t>(*x);
    };
    special(v.bos, "tokenizer.ggml.bos_token_id");
    special(v.eos, "tokenizer.ggml.eos_token_id");
    special(v.eot, "tokenizer.ggml.eot_token_id");
    special(v.eom, "tokenizer.ggml.eom_token_id");
    special(v.unk, "tokenizer.ggml.unknown_token_id");
    special(v.sep, "tokenizer.ggml.seperator_token_id");  // sic: the key is spelled so
    special(v.pad, "tokenizer.ggml.padding_token_id");
    special(v.mask, "tokenizer.ggml.mask_token_id");
    special(v.fim_pre, "tokenizer.ggml.fim_pre_token_id");
    special(v.fim_suf, "tokenizer.ggml.fim_suf_token_id");
    special(v.fim_mid, "tokenizer.ggml.fim_mid_token_id");
    special(v.fim_pad, "tokenizer.ggml.fim_pad_token_id");
    special(v.fim_rep, "tokenizer.ggml.fim_rep_token_id");
    special(v.fim_sep, "tokenizer.ggml.fim_sep_token_id");
    special(v.fim_pre, "tokenizer.ggml.prefix_token_id");  // older names of the FIM keys
    special(v.fim_suf, "tokenizer.ggml.suffix_token_id");
    special(v.fim_mid, "tokenizer.ggml.middle_token_id");
    if (auto b = r.get<bool>("tokenizer.ggml.add_bos_token")) v.add_bos = *b;
    if (auto b = r.get<bool>("tokenizer.ggml.add_eos_token")) v.add_eos = *b;
    if (auto b = r.get<bool>("tokenizer.ggml.add_sep_token")) v.add_sep = *b;

    detail::derive_special_tokens(v, by_text, r.get<std::string_view>("general.name").value_or(""));
    v.chat_template = std::string(r.get<std::string_view>("tokenizer.chat_template").value_or(""));
    return v;
}

inline vocab from_gguf(const std::filesystem::path& path) { return from_gguf(gguf::reader(path)); }

}  // namespace text
QINFER_NAMESPACE_END
