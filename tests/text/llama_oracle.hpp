// tests/text/llama_oracle.hpp — llama.cpp's own tokenizer and chat templates, loaded with dlopen
// from the npm package @node-llama-cpp/linux-x64@3.21.1 (libllama v0.4.0, the same source as
// the llama.cpp checkout the text layer follows; installed by tests/oracle/install.sh).
//
// Only the declarations needed here are written out, from include/llama.h of that release.
#pragma once

#include <dlfcn.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <qinfer/text/tokenizer.hpp>

#include "oracle/ggml_oracle.hpp"

namespace llama_oracle {

struct model_params {  // struct llama_model_params
    void* devices;
    const void* tensor_buft_overrides;
    std::int32_t n_gpu_layers;
    int split_mode, load_mode, lazy_mode;
    std::int32_t main_gpu;
    const float* tensor_split;
    void* progress_callback;
    void* progress_callback_user_data;
    const void* kv_overrides;
    bool vocab_only, check_tensors, use_extra_bufts, no_host, no_alloc, load_mtp;
};
static_assert(sizeof(model_params) == 80);

struct chat_message {  // struct llama_chat_message
    const char* role;
    const char* content;
};

struct api {
    void* lib = nullptr;
    std::string why_missing;
    void (*log_set)(void (*)(int, const char*, void*), void*) = nullptr;
    void (*backend_init)() = nullptr;
    model_params (*default_params)() = nullptr;
    void* (*load_model)(const char*, model_params) = nullptr;
    void (*free_model)(void*) = nullptr;
    const void* (*get_vocab)(const void*) = nullptr;
    std::int32_t (*tokenize)(const void*, const char*, std::int32_t, std::int32_t*, std::int32_t, bool, bool) = nullptr;
    std::int32_t (*detokenize)(const void*, const std::int32_t*, std::int32_t, char*, std::int32_t, bool, bool) = nullptr;
    std::int32_t (*token_to_piece)(const void*, std::int32_t, char*, std::int32_t, std::int32_t, bool) = nullptr;
    std::int32_t (*apply_template)(const char*, const chat_message*, std::size_t, bool, char*, std::int32_t) = nullptr;
    std::int32_t (*n_tokens)(const void*) = nullptr;
    std::int32_t (*bos)(const void*) = nullptr;
    std::int32_t (*eos)(const void*) = nullptr;
    std::int32_t (*eot)(const void*) = nullptr;
    bool (*is_eog)(const void*, std::int32_t) = nullptr;
    std::uint32_t (*get_attr)(const void*, std::int32_t) = nullptr;
    bool (*add_bos)(const void*) = nullptr;
    bool (*add_eos)(const void*) = nullptr;
    bool (*add_sep)(const void*) = nullptr;
    std::int32_t (*fim_pre)(const void*) = nullptr;
    std::int32_t (*fim_suf)(const void*) = nullptr;
    std::int32_t (*fim_mid)(const void*) = nullptr;
    std::int32_t (*fim_pad)(const void*) = nullptr;
    std::int32_t (*fim_rep)(const void*) = nullptr;
    std::int32_t (*fim_sep)(const void*) = nullptr;
    std::int32_t (*pad)(const void*) = nullptr;
    std::int32_t (*sep)(const void*) = nullptr;
    std::int32_t (*mask)(const void*) = nullptr;
    float (*score)(const void*, std::int32_t) = nullptr;
    // llama.cpp's internal unicode helpers (C++ symbols of libllama; same libstdc++ ABI).
    struct cpt_flags { std::uint16_t bits; };  // struct unicode_cpt_flags: a 16-bit bit field
    cpt_flags (*cpt_flags_of)(std::uint32_t) = nullptr;
    std::uint32_t (*to_lower)(std::uint32_t) = nullptr;
    std::vector<std::uint32_t> (*cpts_from_utf8)(const std::string&) = nullptr;
    std::vector<std::string> (*regex_split)(const std::string&, const std::vector<std::string>&, bool) = nullptr;

    bool loaded() const { return lib && tokenize && detokenize && token_to_piece && apply_template && load_model; }
};

inline const api& load() {
    static const api a = [] {
        api r;
        const std::string dir = oracle::lib_dir() + "/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64";
        const std::string path = dir + "/libllama.v0.4.0.so";
        if (!std::filesystem::exists(path)) {
            r.why_missing = "llama.cpp libraries not found at " + dir + " (the oracle-install test installs them with npm)";
            return r;
        }
        r.lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!r.lib) {
            r.why_missing = dlerror();
            return r;
        }
        const auto sym = [&](auto& fn, const char* name) { fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(r.lib, name)); };
        sym(r.log_set, "llama_log_set");
        sym(r.backend_init, "llama_backend_init");
        sym(r.default_params, "llama_model_default_params");
        sym(r.load_model, "llama_model_load_from_file");
        sym(r.free_model, "llama_model_free");
        sym(r.get_vocab, "llama_model_get_vocab");
        sym(r.tokenize, "llama_tokenize");
        sym(r.detokenize, "llama_detokenize");
        sym(r.token_to_piece, "llama_token_to_piece");
        sym(r.apply_template, "llama_chat_apply_template");
        sym(r.n_tokens, "llama_vocab_n_tokens");
        sym(r.bos, "llama_vocab_bos");
        sym(r.eos, "llama_vocab_eos");
        sym(r.eot, "llama_vocab_eot");
        sym(r.is_eog, "llama_vocab_is_eog");
        sym(r.get_attr, "llama_vocab_get_attr");
        sym(r.add_bos, "llama_vocab_get_add_bos");
        sym(r.add_eos, "llama_vocab_get_add_eos");
        sym(r.add_sep, "llama_vocab_get_add_sep");
        sym(r.fim_pre, "llama_vocab_fim_pre");
        sym(r.fim_suf, "llama_vocab_fim_suf");
        sym(r.fim_mid, "llama_vocab_fim_mid");
        sym(r.fim_pad, "llama_vocab_fim_pad");
        sym(r.fim_rep, "llama_vocab_fim_rep");
        sym(r.fim_sep, "llama_vocab_fim_sep");
        sym(r.pad, "llama_vocab_pad");
        sym(r.sep, "llama_vocab_sep");
        sym(r.mask, "llama_vocab_mask");
        sym(r.score, "llama_vocab_get_score");
        sym(r.cpt_flags_of, "_Z26unicode_cpt_flags_from_cptj");
        sym(r.to_lower, "_Z15unicode_tolowerj");
        sym(r.cpts_from_utf8, "_Z22unicode_cpts_from_utf8RKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEE");
        sym(r.regex_split, "_Z19unicode_regex_splitRKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEERKSt6vectorIS4_SaIS4_EEb");
        if (!r.loaded() || !r.log_set || !r.backend_init || !r.default_params || !r.get_vocab || !r.fim_sep ||
            !r.score || !r.add_sep) {
            r.why_missing = "a llama symbol is missing from " + path;
            return r;
        }
        r.log_set([](int, const char*, void*) {}, nullptr);  // quiet: loading logs every key
        r.backend_init();
        return r;
    }();
    return a;
}

// The oracle, or null after a skip message (or a failure where CI requires it).
inline const api* get() {
    const api& a = load();
    if (a.loaded()) return &a;
    QTEST_UNAVAILABLE("llama.cpp oracle: " << a.why_missing);
    return nullptr;
}

// A vocabulary loaded by llama.cpp (vocab_only).
class vocab {
public:
    vocab(const api& a, const std::filesystem::path& gguf) : a_(&a) {
        model_params p = a.default_params();
        p.vocab_only = true;
        model_ = a.load_model(gguf.c_str(), p);
        if (model_) v_ = a.get_vocab(model_);
    }
    ~vocab() {
        if (model_) a_->free_model(model_);
    }
    vocab(const vocab&) = delete;
    vocab& operator=(const vocab&) = delete;

    bool ok() const { return v_ != nullptr; }
    const void* raw() const { return v_; }

    std::vector<std::int32_t> tokenize(const std::string& s, bool add_special, bool parse_special) const {
        std::vector<std::int32_t> out(s.size() + 8);
        std::int32_t n = a_->tokenize(v_, s.data(), static_cast<std::int32_t>(s.size()), out.data(),
                                      static_cast<std::int32_t>(out.size()), add_special, parse_special);
        if (n < 0) {
            out.resize(static_cast<std::size_t>(-n));
            n = a_->tokenize(v_, s.data(), static_cast<std::int32_t>(s.size()), out.data(),
                             static_cast<std::int32_t>(out.size()), add_special, parse_special);
        }
        out.resize(static_cast<std::size_t>(n));
        return out;
    }

    std::string detokenize(std::span<const std::int32_t> ids, bool remove_special, bool unparse_special) const {
        std::string out(ids.size() * 8 + 16, '\0');
        std::int32_t n = a_->detokenize(v_, ids.data(), static_cast<std::int32_t>(ids.size()), out.data(),
                                        static_cast<std::int32_t>(out.size()), remove_special, unparse_special);
        if (n < 0) {
            out.assign(static_cast<std::size_t>(-n), '\0');
            n = a_->detokenize(v_, ids.data(), static_cast<std::int32_t>(ids.size()), out.data(),
                               static_cast<std::int32_t>(out.size()), remove_special, unparse_special);
        }
        out.resize(static_cast<std::size_t>(n));
        return out;
    }

    std::string piece(std::int32_t id, bool special, int lstrip = 0) const {
        std::string out(64, '\0');
        std::int32_t n = a_->token_to_piece(v_, id, out.data(), static_cast<std::int32_t>(out.size()), lstrip, special);
        if (n < 0) {
            out.assign(static_cast<std::size_t>(-n), '\0');
            n = a_->token_to_piece(v_, id, out.data(), static_cast<std::int32_t>(out.size()), lstrip, special);
        }
        out.resize(static_cast<std::size_t>(n));
        return out;
    }

private:
    const api* a_;
    void* model_ = nullptr;
    const void* v_ = nullptr;
};

// Special ids, flags, and per token: attributes, end-of-generation, score. Returns the number of
// tokens that differ (the first few are reported).
inline std::size_t check_vocab_facts(const api& a, const vocab& ref, const qinfer::text::tokenizer& tok) {
    const auto& v = tok.vocab();
    const void* r = ref.raw();
    REQUIRE(static_cast<std::size_t>(a.n_tokens(r)) == tok.size());
    CHECK(a.bos(r) == v.bos);
    CHECK(a.eos(r) == v.eos);
    CHECK(a.eot(r) == v.eot);
    CHECK(a.pad(r) == v.pad);
    CHECK(a.sep(r) == v.sep);
    CHECK(a.mask(r) == v.mask);
    CHECK(a.fim_pre(r) == v.fim_pre);
    CHECK(a.fim_suf(r) == v.fim_suf);
    CHECK(a.fim_mid(r) == v.fim_mid);
    CHECK(a.fim_pad(r) == v.fim_pad);
    CHECK(a.fim_rep(r) == v.fim_rep);
    CHECK(a.fim_sep(r) == v.fim_sep);
    CHECK(a.add_bos(r) == v.add_bos);
    CHECK(a.add_eos(r) == v.add_eos);
    CHECK(a.add_sep(r) == v.add_sep);
    std::size_t bad = 0;
    for (std::int32_t id = 0; id < static_cast<std::int32_t>(tok.size()); ++id) {
        const bool same = a.get_attr(r, id) == v.attr(id) && a.is_eog(r, id) == v.is_eog(id) && a.score(r, id) == v.score(id);
        if (!same && ++bad <= 5) {
            INFO("token " << id << " [" << v.tokens[id] << "]");
            CHECK(a.get_attr(r, id) == v.attr(id));
            CHECK(a.is_eog(r, id) == v.is_eog(id));
            CHECK(a.score(r, id) == v.score(id));
        }
    }
    CHECK(bad == 0);
    return bad;
}

// llama_chat_apply_template; nullopt-like empty + false when llama.cpp does not know the template.
inline bool apply_template(const api& a, const std::string& tmpl, const std::vector<std::pair<std::string, std::string>>& chat,
                           bool add_ass, std::string& out) {
    std::vector<chat_message> msgs;
    for (const auto& [r, c] : chat) msgs.push_back({r.c_str(), c.c_str()});
    std::vector<char> buf(4096);
    std::int32_t n = a.apply_template(tmpl.c_str(), msgs.data(), msgs.size(), add_ass, buf.data(), static_cast<std::int32_t>(buf.size()));
    if (n < 0) return false;
    if (static_cast<std::size_t>(n) > buf.size()) {
        buf.resize(static_cast<std::size_t>(n));
        n = a.apply_template(tmpl.c_str(), msgs.data(), msgs.size(), add_ass, buf.data(), static_cast<std::int32_t>(buf.size()));
    }
    out.assign(buf.data(), static_cast<std::size_t>(n));
    return true;
}

}  // namespace llama_oracle
