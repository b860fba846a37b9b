// tests/oracle/llama_quantize.hpp — llama.cpp's own model quantizer (llama_model_quantize from
// libllama in the npm package @node-llama-cpp/linux-x64@3.21.1), loaded with dlopen: it
// makes the quantized files users actually download, so qinfer is tested on those.
#pragma once

#include <dlfcn.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

namespace oracle {

// struct llama_model_quantize_params, field for field (llama.h of the matching source).
struct llama_quantize_params {
    std::int32_t nthread;
    std::int32_t ftype;                  // enum llama_ftype
    std::int32_t output_tensor_type;     // enum ggml_type
    std::int32_t token_embedding_type;   // enum ggml_type
    bool allow_requantize;
    bool quantize_output_tensor;
    bool only_copy;
    bool pure;
    bool keep_split;
    bool dry_run;
    const void* imatrix;
    const void* kv_overrides;
    const void* tt_overrides;
    const std::int32_t* prune_layers;
    std::size_t max_buf_size;
};

// struct llama_model_imatrix_data: one importance-matrix entry; an array of them ends with a
// null name.
struct llama_imatrix_entry {
    const char* name;
    const float* data;
    std::size_t size;
};

// struct llama_model_kv_override (tag: LLAMA_KV_OVERRIDE_TYPE_INT 0, FLOAT 1, BOOL 2, STR 3);
// an array of them ends with an empty key.
struct llama_kv_override {
    std::int32_t tag;
    char key[128];
    union {
        std::int64_t val_i64;
        double val_f64;
        bool val_bool;
        char val_str[128];
    };
};
static_assert(sizeof(llama_kv_override) == 264);

inline llama_kv_override kv_int(const char* key, std::int64_t v) {
    llama_kv_override o{};
    o.tag = 0;
    std::strncpy(o.key, key, 127);
    o.val_i64 = v;
    return o;
}
inline llama_kv_override kv_str(const char* key, const std::string& v) {
    llama_kv_override o{};
    o.tag = 3;
    std::strncpy(o.key, key, 127);
    std::strncpy(o.val_str, v.c_str(), 127);
    o.val_str[127] = 0;
    return o;
}

// llama_ftype values used by the tests.
enum llama_ftype : std::int32_t {
    ftype_f32 = 0, ftype_f16 = 1, ftype_q4_0 = 2, ftype_q4_1 = 3, ftype_q8_0 = 7, ftype_q5_0 = 8, ftype_q5_1 = 9,
    ftype_q2_k = 10, ftype_q3_k_s = 11, ftype_q3_k_m = 12, ftype_q3_k_l = 13, ftype_q4_k_s = 14, ftype_q4_k_m = 15,
    ftype_q5_k_s = 16, ftype_q5_k_m = 17, ftype_q6_k = 18, ftype_q2_k_s = 21, ftype_iq4_nl = 25, ftype_iq4_xs = 30, ftype_bf16 = 32, ftype_mxfp4_moe = 38,
};

class llama_quantizer {
public:
    explicit llama_quantizer(const std::string& oracle_dir) {
        const std::string dir = oracle_dir + "/node_modules/@node-llama-cpp/linux-x64/bins/linux-x64/";
        // libllama finds libggml / libggml-base through its $ORIGIN runpath.
        lib_ = dlopen((dir + "libllama.v0.4.0.so").c_str(), RTLD_NOW | RTLD_LOCAL);
        if (!lib_) { why_ = dlerror(); return; }
        defaults_ = reinterpret_cast<llama_quantize_params (*)()>(dlsym(lib_, "llama_model_quantize_default_params"));
        quantize_ = reinterpret_cast<std::uint32_t (*)(const char*, const char*, const llama_quantize_params*)>(
            dlsym(lib_, "llama_model_quantize"));
        if (!defaults_ || !quantize_) why_ = "llama_model_quantize not exported by " + dir + "libllama.v0.4.0.so";
        // Keep llama.cpp's per-tensor progress lines out of the test output.
        using log_fn = void (*)(int level, const char* text, void* user);
        if (auto set_log = reinterpret_cast<void (*)(log_fn, void*)>(dlsym(lib_, "llama_log_set")))
            set_log([](int, const char*, void*) {}, nullptr);
    }

    bool loaded() const { return lib_ && defaults_ && quantize_; }
    const std::string& why_missing() const { return why_; }

    // Quantizes `in` to `out` as `llama-quantize in out FTYPE N_THREADS` would; 0 on success.
    std::uint32_t quantize(const std::string& in, const std::string& out, llama_ftype ftype, int threads = 2) const {
        llama_quantize_params p = defaults_();
        p.ftype = ftype;
        p.nthread = threads;
        return quantize_(in.c_str(), out.c_str(), &p);
    }

    // The same with an importance matrix (null-name terminated) and KV overrides (empty-key
    // terminated), as llama-quantize --imatrix passes them.
    std::uint32_t quantize(const std::string& in, const std::string& out, llama_ftype ftype, int threads,
                           const llama_imatrix_entry* imatrix, const llama_kv_override* kv) const {
        llama_quantize_params p = defaults_();
        p.ftype = ftype;
        p.nthread = threads;
        p.imatrix = imatrix;
        p.kv_overrides = kv;
        return quantize_(in.c_str(), out.c_str(), &p);
    }

private:
    void* lib_ = nullptr;
    std::string why_;
    llama_quantize_params (*defaults_)() = nullptr;
    std::uint32_t (*quantize_)(const char*, const char*, const llama_quantize_params*) = nullptr;
};

}  // namespace oracle
