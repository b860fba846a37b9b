// qinfer/model/model.hpp — a loaded model: the mapped file, its configuration, weights and
// tokenizer.
// Read-only after loading, so one model can serve any number of sessions and threads.
#pragma once

#include <filesystem>
#include <memory>
#include <span>

#include "../gguf/reader.hpp"
#include "../text/tokenizer.hpp"
#include "config.hpp"
#include "transformer.hpp"
#include "weights.hpp"

QINFER_NAMESPACE_BEGIN

class model {
public:
    explicit model(const std::filesystem::path& path) : model(gguf::reader(path)) {}

    explicit model(gguf::reader file)
        : file_(std::move(file)), config_(read_config(file_)), tokenizer_(text::from_gguf(file_)) {
        if (std::int64_t(tokenizer_.size()) != config_.n_vocab)
            throw error(file_.path() + ": the tokenizer has " + std::to_string(tokenizer_.size()) +
                        " tokens but the model's vocabulary is " + std::to_string(config_.n_vocab));
        visit_arch(config_.arch, [&]<class Arch>() {
            weights_ = load_weights<Arch>(file_, config_);
            forward_ = &forward<Arch>;
        });
    }

    model(const model&) = delete;
    model& operator=(const model&) = delete;

    const model_config& config() const noexcept { return config_; }
    const model_weights& weights() const noexcept { return weights_; }
    const gguf::reader& file() const noexcept { return file_; }
    const text::tokenizer& tokenizer() const noexcept { return tokenizer_; }

    // The architecture's forward pass (see model/transformer.hpp); sessions call this.
    void run(kv_cache& cache, std::span<const std::int32_t> tokens, std::int64_t n_past, bool all_logits, float* logits,
             executor& pool, forward_scratch& scratch, const trace_hook* trace) const {
        forward_(config_, weights_, cache, tokens, n_past, all_logits, logits, pool, scratch, trace);
    }

private:
    using forward_fn = void (*)(const model_config&, const model_weights&, kv_cache&, std::span<const std::int32_t>,
                                std::int64_t, bool, float*, executor&, forward_scratch&, const trace_hook*);
    gguf::reader file_;
    model_config config_;
    text::tokenizer tokenizer_;
    model_weights weights_;
    forward_fn forward_ = nullptr;
};

QINFER_NAMESPACE_END
