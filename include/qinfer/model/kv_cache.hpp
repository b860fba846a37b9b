// qinfer/model/kv_cache.hpp — keys and values of every processed position, per layer.
#pragma once

#include <cstdint>
#include <vector>

#include "../core/error.hpp"
#include "../core/fp16.hpp"
#include "../ops/attention.hpp"

QINFER_NAMESPACE_BEGIN

// f16 halves the memory and is llama.cpp's default; f32 keeps keys and values exact.
enum class kv_type { f16, f32 };

class kv_cache {
public:
    kv_cache() = default;
    kv_cache(std::int64_t n_layer, std::int64_t n_ctx, std::int64_t n_head_kv, std::int64_t head_dim, kv_type type)
        : n_layer_(n_layer), n_ctx_(n_ctx), stride_(n_head_kv * head_dim), type_(type) {
        const std::size_t elems = std::size_t(n_layer * n_ctx * stride_);
        if (type == kv_type::f16) { k16_.resize(elems); v16_.resize(elems); }
        else { k32_.resize(elems); v32_.resize(elems); }
    }

    std::int64_t n_ctx() const noexcept { return n_ctx_; }
    kv_type type() const noexcept { return type_; }
    std::size_t bytes() const noexcept {
        return (k16_.size() + v16_.size()) * sizeof(fp16) + (k32_.size() + v32_.size()) * sizeof(float);
    }

    // Stores the keys and values (stride floats each) of position `pos` in `layer`.
    void store(std::int64_t layer, std::int64_t pos, const float* k, const float* v) noexcept {
        const std::size_t at = std::size_t((layer * n_ctx_ + pos) * stride_);
        if (type_ == kv_type::f16) {
            for (std::int64_t i = 0; i < stride_; ++i) {
                k16_[at + std::size_t(i)] = to_fp16(k[i]);
                v16_[at + std::size_t(i)] = to_fp16(v[i]);
            }
        } else {
            std::copy(k, k + stride_, k32_.begin() + std::ptrdiff_t(at));
            std::copy(v, v + stride_, v32_.begin() + std::ptrdiff_t(at));
        }
    }

    template <class T> kv_layer_view<T> layer(std::int64_t l) const noexcept {
        const std::size_t at = std::size_t(l * n_ctx_ * stride_);
        if constexpr (std::is_same_v<T, fp16>) return {k16_.data() + at, v16_.data() + at, stride_};
        else return {k32_.data() + at, v32_.data() + at, stride_};
    }

private:
    std::int64_t n_layer_ = 0, n_ctx_ = 0, stride_ = 0;
    kv_type type_ = kv_type::f16;
    std::vector<fp16> k16_, v16_;
    std::vector<float> k32_, v32_;
};

QINFER_NAMESPACE_END
