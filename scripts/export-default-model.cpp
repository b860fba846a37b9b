// export-default-model — turn the model.bin written by scripts/train-default-model.py into a
// llama-architecture GGUF file with qinfer's own writer (qinfer::gguf::writer).
//
//   g++ -std=c++20 -O2 -I include scripts/export-default-model.cpp -o build/export-default-model
//   build/export-default-model build/default-model/model.bin examples/models/qinfer-kjv-3m-f16.gguf
//
// Matrices are written as F16, norm vectors as F32 (as llama.cpp's convert script does for an
// F16 file). The rotary embedding was trained in llama.cpp's layout for arch "llama" (adjacent
// pairs), so Q and K are written as they are, with no permutation.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <stdexcept>
#include <string>
#include <vector>

#include <qinfer/core/fp16.hpp>
#include <qinfer/gguf/writer.hpp>

namespace {

struct input {
    std::ifstream f;
    explicit input(const char* path) : f(path, std::ios::binary) {
        if (!f) throw std::runtime_error(std::string(path) + ": cannot open");
    }
    template <class T> T get() {
        T v{};
        if (!f.read(reinterpret_cast<char*>(&v), sizeof v)) throw std::runtime_error("model.bin: truncated");
        return v;
    }
    std::string str() {
        std::string s(get<std::uint32_t>(), '\0');
        if (!f.read(s.data(), std::streamsize(s.size()))) throw std::runtime_error("model.bin: truncated");
        return s;
    }
};

}  // namespace

int main(int argc, char** argv) try {
    if (argc != 3) {
        std::fprintf(stderr, "usage: export-default-model MODEL.bin OUT.gguf\n");
        return 2;
    }
    input in(argv[1]);
    char magic[8];
    in.f.read(magic, 8);
    if (!in.f || std::string(magic, 8) != "QINFDM01") throw std::runtime_error("not a QINFDM01 file");
    const auto vocab = in.get<std::uint32_t>(), dim = in.get<std::uint32_t>(), layers = in.get<std::uint32_t>(),
               heads = in.get<std::uint32_t>(), ff = in.get<std::uint32_t>(), ctx = in.get<std::uint32_t>();
    const float rope_base = in.get<float>(), eps = in.get<float>();

    qinfer::gguf::writer w;
    w.set("general.architecture", "llama");
    w.set("general.type", "model");
    w.set("general.file_type", std::uint32_t(1));  // LLAMA_FTYPE_MOSTLY_F16
    w.set("llama.context_length", ctx);
    w.set("llama.embedding_length", dim);
    w.set("llama.block_count", layers);
    w.set("llama.feed_forward_length", ff);
    w.set("llama.rope.dimension_count", dim / heads);
    w.set("llama.attention.head_count", heads);
    w.set("llama.attention.head_count_kv", heads);
    w.set("llama.attention.layer_norm_rms_epsilon", eps);
    w.set("llama.rope.freq_base", rope_base);
    w.set("llama.vocab_size", vocab);

    const auto n_tokens = in.get<std::uint32_t>();
    std::vector<std::string> tokens;
    std::vector<float> scores;
    std::vector<std::int32_t> types;
    for (std::uint32_t i = 0; i < n_tokens; ++i) {
        tokens.push_back(in.str());
        scores.push_back(in.get<float>());
        types.push_back(in.get<std::int32_t>());
    }
    if (n_tokens != vocab) throw std::runtime_error("token count != vocab size");
    w.set("tokenizer.ggml.model", "llama");
    w.set("tokenizer.ggml.tokens", tokens);
    w.set("tokenizer.ggml.scores", scores);
    w.set("tokenizer.ggml.token_type", types);
    w.set("tokenizer.ggml.unknown_token_id", std::uint32_t(0));
    w.set("tokenizer.ggml.bos_token_id", std::uint32_t(1));
    w.set("tokenizer.ggml.eos_token_id", std::uint32_t(2));
    w.set("tokenizer.ggml.add_bos_token", true);
    w.set("tokenizer.ggml.add_eos_token", false);
    w.set("tokenizer.ggml.add_space_prefix", true);

    const auto n_strings = in.get<std::uint32_t>();
    for (std::uint32_t i = 0; i < n_strings; ++i) {
        std::string k = in.str();
        w.set(std::move(k), std::string_view(in.str()));
    }

    const auto n_tensors = in.get<std::uint32_t>();
    std::size_t bytes = 0;
    for (std::uint32_t i = 0; i < n_tensors; ++i) {
        const std::string name = in.str();
        const auto nd = in.get<std::uint32_t>();
        std::vector<std::int64_t> shape(nd);
        std::int64_t n = 1;
        for (auto& d : shape) n *= (d = std::int64_t(in.get<std::uint64_t>()));
        std::vector<float> data(static_cast<std::size_t>(n));
        if (!in.f.read(reinterpret_cast<char*>(data.data()), std::streamsize(n * 4)))
            throw std::runtime_error("model.bin: truncated tensor " + name);
        const std::vector<std::int64_t> ne(shape.rbegin(), shape.rend());  // GGUF: innermost first
        if (nd == 1) {
            w.add_tensor(name, qinfer::type_id::f32, ne, std::as_bytes(std::span<const float>(data)));
            bytes += data.size() * 4;
        } else {
            std::vector<qinfer::fp16> h(data.size());
            for (std::size_t j = 0; j < data.size(); ++j) h[j] = qinfer::to_fp16(data[j]);
            w.add_tensor(name, qinfer::type_id::f16, ne, std::as_bytes(std::span<const qinfer::fp16>(h)));
            bytes += h.size() * 2;
        }
    }
    w.write(argv[2]);
    std::printf("export-default-model: wrote %s: %u tensors, %.2f MB of weights\n", argv[2], n_tensors, bytes / 1e6);
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "export-default-model: %s\n", e.what());
    return 1;
}
