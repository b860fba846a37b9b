// qinfer/model/kv_cache.hpp — keys and values of every processed position, per layer.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <span>
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

    std::int64_t n_layer() const noexcept { return n_layer_; }
    std::int64_t stride() const noexcept { return stride_; }  // elements per position and layer
    std::size_t element_size() const noexcept { return type_ == kv_type::f16 ? sizeof(fp16) : sizeof(float); }

    // The stored bytes of positions [0, n) of one layer's keys or values, to save and restore.
    std::span<const std::byte> rows(std::int64_t layer, bool values, std::int64_t n) const noexcept {
        return {base(layer, values), std::size_t(n * stride_) * element_size()};
    }
    std::span<std::byte> rows(std::int64_t layer, bool values, std::int64_t n) noexcept {
        return {const_cast<std::byte*>(base(layer, values)), std::size_t(n * stride_) * element_size()};
    }

    // Sets positions [0, n) of one layer's keys or values from the rows of a cache of type
    // `from` (src: n * stride elements of it), converting where the types differ.
    void assign_rows(std::int64_t layer, bool values, std::int64_t n, std::span<const std::byte> src, kv_type from) noexcept {
        const std::span<std::byte> dst = rows(layer, values, n);
        const std::size_t count = std::size_t(n * stride_);
        if (from == type_) std::memcpy(dst.data(), src.data(), dst.size());
        else if (type_ == kv_type::f16)
            for (std::size_t i = 0; i < count; ++i) {
                float f;
                std::memcpy(&f, src.data() + i * sizeof f, sizeof f);
                const fp16 h = to_fp16(f);
                std::memcpy(dst.data() + i * sizeof h, &h, sizeof h);
            }
        else
            for (std::size_t i = 0; i < count; ++i) {
                fp16 h;
                std::memcpy(&h, src.data() + i * sizeof h, sizeof h);
                const float f = to_float(h);
                std::memcpy(dst.data() + i * sizeof f, &f, sizeof f);
            }
    }

    // Positions [0, n) of every layer from `from` (same layer count and width).
    void copy_prefix(const kv_cache& from, std::int64_t n) noexcept {
        for (std::int64_t l = 0; l < n_layer_; ++l)
            for (bool values : {false, true}) assign_rows(l, values, n, from.rows(l, values, n), from.type_);
    }

    // Moves positions [end, n_past) of every layer down to `begin` (a context shift's erase).
    void erase(std::int64_t begin, std::int64_t end, std::int64_t n_past) noexcept {
        const std::size_t esz = element_size(), row = std::size_t(stride_) * esz;
        for (std::int64_t l = 0; l < n_layer_; ++l)
            for (bool values : {false, true}) {
                std::byte* p = const_cast<std::byte*>(base(l, values));
                std::memmove(p + std::size_t(begin) * row, p + std::size_t(end) * row, std::size_t(n_past - end) * row);
            }
    }

    // Reads and writes the key row of one position as floats (a context shift re-rotates them).
    void load_key(std::int64_t layer, std::int64_t pos, float* out) const noexcept {
        const std::size_t at = std::size_t((layer * n_ctx_ + pos) * stride_);
        if (type_ == kv_type::f16)
            for (std::int64_t i = 0; i < stride_; ++i) out[i] = to_float(k16_[at + std::size_t(i)]);
        else
            std::copy(k32_.begin() + std::ptrdiff_t(at), k32_.begin() + std::ptrdiff_t(at + std::size_t(stride_)), out);
    }
    void store_key(std::int64_t layer, std::int64_t pos, const float* k) noexcept {
        const std::size_t at = std::size_t((layer * n_ctx_ + pos) * stride_);
        if (type_ == kv_type::f16)
            for (std::int64_t i = 0; i < stride_; ++i) k16_[at + std::size_t(i)] = to_fp16(k[i]);
        else
            std::copy(k, k + stride_, k32_.begin() + std::ptrdiff_t(at));
    }

    template <class T> kv_layer_view<T> layer(std::int64_t l) const noexcept {
        const std::size_t at = std::size_t(l * n_ctx_ * stride_);
        if constexpr (std::is_same_v<T, fp16>) return {k16_.data() + at, v16_.data() + at, stride_};
        else return {k32_.data() + at, v32_.data() + at, stride_};
    }

private:
    const std::byte* base(std::int64_t layer, bool values) const noexcept {
        const std::size_t at = std::size_t(layer * n_ctx_ * stride_);
        if (type_ == kv_type::f16) return reinterpret_cast<const std::byte*>((values ? v16_ : k16_).data() + at);
        return reinterpret_cast<const std::byte*>((values ? v32_ : k32_).data() + at);
    }

    std::int64_t n_layer_ = 0, n_ctx_ = 0, stride_ = 0;
    kv_type type_ = kv_type::f16;
    std::vector<fp16> k16_, v16_;
    std::vector<float> k32_, v32_;
};

QINFER_NAMESPACE_END
