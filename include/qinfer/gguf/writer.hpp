// qinfer/gguf/writer.hpp — builds GGUF v3 files, in memory or on disk.
//
// The writer checks what it is given against the same rules the reader enforces, so every
// file it produces reads back. The layout is llama.cpp's: metadata in insertion order, tensor
// infos, the header padded to the alignment, then each tensor's data padded to the alignment.
#pragma once

#include <algorithm>
#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <span>
#include <string>
#include <string_view>
#include <type_traits>
#include <unordered_set>
#include <utility>
#include <vector>

#include "../core/config.hpp"
#include "../core/error.hpp"
#include "../core/types.hpp"
#include "detail/bytes.hpp"
#include "detail/text.hpp"
#include "detail/format.hpp"
#include "value.hpp"

QINFER_NAMESPACE_BEGIN
namespace gguf {

class writer {
public:
    // --- metadata: setting an existing key replaces its value in place --------------------

    template <detail::metadata_scalar T> void set(std::string key, T v) {
        std::vector<std::byte> enc;
        append_scalar(enc, v);
        put(std::move(key), detail::stored_type_of<T>(), std::move(enc));
    }
    void set(std::string key, std::string_view v) {
        check_string(key, v);
        std::vector<std::byte> enc;
        detail::append_string(enc, v);
        put(std::move(key), value_type::string, std::move(enc));
    }
    void set(std::string key, const char* v) { set(std::move(key), std::string_view(v)); }

    // Arrays of scalars (std::vector<bool> included).
    template <detail::metadata_scalar T> void set(std::string key, const std::vector<T>& values) {
        set_array_of<T>(std::move(key), values);
    }
    template <detail::metadata_scalar T> void set(std::string key, std::span<const T> values) {
        set_array_of<T>(std::move(key), values);
    }
    // Arrays of strings.
    void set(std::string key, std::span<const std::string> values) {
        set_array_of<std::string_view>(std::move(key), values);
    }
    void set(std::string key, std::span<const std::string_view> values) {
        set_array_of<std::string_view>(std::move(key), values);
    }
    void set(std::string key, const std::vector<std::string>& values) {
        set(std::move(key), std::span<const std::string>(values));
    }
    void set(std::string key, const std::vector<std::string_view>& values) {
        set(std::move(key), std::span<const std::string_view>(values));
    }

    // A value read from another file, of any type (nested arrays included), copied as stored.
    void set(std::string key, const value& v) {
        const auto enc = v.encoded();
        put(std::move(key), v.type(), std::vector<std::byte>(enc.begin(), enc.end()));
    }

    // Removes a key; false if it was absent.
    bool erase(std::string_view key) {
        const auto it = std::find_if(entries_.begin(), entries_.end(), [&](const entry& e) { return e.key == key; });
        if (it == entries_.end()) return false;
        entries_.erase(it);
        return true;
    }

    std::size_t metadata_count() const noexcept { return entries_.size(); }
    bool contains(std::string_view key) const { return find(key) != nullptr; }

    // Stored as the u32 key "general.alignment", which is where readers look for it.
    void set_alignment(std::size_t alignment) {
        if (!detail::is_power_of_two(alignment) || alignment > max_alignment)
            fail(detail::cat("alignment must be a power of two between 1 and ", max_alignment, ", got ", alignment));
        set(std::string(alignment_key), static_cast<std::uint32_t>(alignment));
    }
    std::size_t alignment() const {
        const entry* e = find(alignment_key);
        return e ? detail::load_le<std::uint32_t>(e->encoded.data()) : default_alignment;
    }

    // --- tensors: stored in the order added; `data` is copied ----------------------------

    void add_tensor(std::string name, type_id type, std::span<const std::int64_t> ne, std::span<const std::byte> data) {
        const std::string who = "tensor " + detail::quoted(name);
        if (name.empty()) fail("tensor names must not be empty");
        if (name.size() > max_tensor_name_bytes)
            fail(detail::cat(who, ": name is ", name.size(), " bytes, at most ", max_tensor_name_bytes, " allowed"));
        if (tensor_names_.count(name)) fail(detail::cat(who, " was already added"));
        if (ne.empty() || ne.size() > static_cast<std::size_t>(max_dims))
            fail(detail::cat(who, ": expected 1 to ", max_dims, " dimensions, got ", ne.size()));
        const type_info& ti = info(type);
        std::int64_t n = 1;
        for (std::size_t d = 0; d < ne.size(); ++d) {
            if (ne[d] < 1) fail(detail::cat(who, ": dimension ", d, " is ", ne[d], ", expected at least 1"));
            if (!detail::mul_ok(n, ne[d], n)) fail(detail::cat(who, ": element count overflows int64"));
        }
        if (ne[0] % ti.block_size != 0)
            fail(detail::cat(who, ": row length ", ne[0], " is not a multiple of ", ti.name, "'s block size ",
                             ti.block_size));
        std::uint64_t n_bytes = 0;
        if (!detail::mul_ok(static_cast<std::uint64_t>(n / ti.block_size), static_cast<std::uint64_t>(ti.block_bytes),
                            n_bytes))
            fail(detail::cat(who, ": byte size overflows"));
        if (data.size() != n_bytes)
            fail(detail::cat(who, ": expected ", n_bytes, " bytes of ", ti.name, " data for its shape, got ",
                             data.size()));
        tensor_names_.insert(name);
        tensors_.push_back({std::move(name), type, std::vector<std::int64_t>(ne.begin(), ne.end()),
                            std::vector<std::byte>(data.begin(), data.end())});
    }

    std::size_t tensor_count() const noexcept { return tensors_.size(); }

    // --- output --------------------------------------------------------------------------

    std::vector<std::byte> bytes() const {
        std::vector<std::byte> out;
        emit([&](std::span<const std::byte> s) { out.insert(out.end(), s.begin(), s.end()); });
        return out;
    }

    void write(const std::filesystem::path& path) const {
        std::ofstream f(path, std::ios::binary | std::ios::trunc);
        if (!f) throw error("cannot open '" + path.string() + "' for writing", errc::io);
        emit([&](std::span<const std::byte> s) {
            f.write(reinterpret_cast<const char*>(s.data()), static_cast<std::streamsize>(s.size()));
        });
        f.close();
        if (!f) throw error("cannot write '" + path.string() + "' (disk full or I/O error?)", errc::io);
    }

private:
    struct entry {
        std::string key;
        value_type type;
        std::vector<std::byte> encoded;  // everything after the type tag
    };
    struct pending_tensor {
        std::string name;
        type_id type;
        std::vector<std::int64_t> ne;
        std::vector<std::byte> data;
    };

    [[noreturn]] static void fail(std::string_view message) { throw error(detail::cat("gguf writer: ", message)); }

    const entry* find(std::string_view key) const {
        for (const entry& e : entries_)
            if (e.key == key) return &e;
        return nullptr;
    }

    template <detail::metadata_scalar T> static void append_scalar(std::vector<std::byte>& out, T v) {
        if constexpr (std::is_same_v<T, bool>) out.push_back(std::byte{v ? std::uint8_t{1} : std::uint8_t{0}});
        else detail::append_le<T>(out, v);
    }

    static void check_string(std::string_view key, std::string_view v) {
        if (v.size() > max_string_bytes)
            fail(detail::cat("key ", detail::quoted(key), ": string of ", v.size(), " bytes exceeds ",
                             max_string_bytes));
    }

    template <class T, class Range> void set_array_of(std::string key, const Range& values) {
        const std::uint64_t n = std::size(values);
        if (n > max_array_elements)
            fail(detail::cat("key ", detail::quoted(key), ": array of ", n, " elements exceeds ", max_array_elements));
        std::vector<std::byte> enc;
        detail::append_le<std::uint32_t>(enc, static_cast<std::uint32_t>(detail::stored_type_of<T>()));
        detail::append_le<std::uint64_t>(enc, n);
        for (const auto& v : values) {
            if constexpr (std::is_same_v<T, std::string_view>) {
                check_string(key, v);
                detail::append_string(enc, v);
            } else {
                append_scalar<T>(enc, static_cast<T>(v));
            }
        }
        put(std::move(key), value_type::array, std::move(enc));
    }

    void put(std::string key, value_type type, std::vector<std::byte> encoded) {
        if (key.empty()) fail("keys must not be empty");
        if (key.size() > max_key_bytes)
            fail(detail::cat("key ", detail::quoted(key), " is ", key.size(), " bytes, at most ", max_key_bytes,
                             " allowed"));
        if (key == alignment_key) {  // readers reject any other type or value here
            if (type != value_type::u32) fail(detail::cat("key ", detail::quoted(key), " must have type u32"));
            const auto a = detail::load_le<std::uint32_t>(encoded.data());
            if (!detail::is_power_of_two(a) || a > max_alignment)
                fail(detail::cat("alignment must be a power of two between 1 and ", max_alignment, ", got ", a));
        }
        for (entry& e : entries_) {
            if (e.key == key) {
                e.type = type;
                e.encoded = std::move(encoded);
                return;
            }
        }
        entries_.push_back({std::move(key), type, std::move(encoded)});
    }

    static std::uint64_t data_bytes(const pending_tensor& t) {
        std::int64_t n = 1;
        for (std::int64_t d : t.ne) n *= d;  // checked in add_tensor
        const type_info& ti = info(t.type);
        return static_cast<std::uint64_t>(n / ti.block_size * ti.block_bytes);
    }

    template <class Sink> void emit(Sink&& sink) const {
        const std::uint64_t align = alignment();
        static constexpr std::array<std::byte, 64> zeros{};
        auto pad = [&](std::uint64_t written) {
            for (std::uint64_t left = detail::padding_for(written, align); left > 0;) {
                const std::uint64_t n = std::min<std::uint64_t>(left, zeros.size());
                sink(std::span<const std::byte>(zeros.data(), static_cast<std::size_t>(n)));
                left -= n;
            }
        };

        std::vector<std::byte> head;
        detail::append_bytes(head, magic);
        detail::append_le<std::uint32_t>(head, written_version);
        detail::append_le<std::uint64_t>(head, tensors_.size());
        detail::append_le<std::uint64_t>(head, entries_.size());
        for (const entry& e : entries_) {
            detail::append_string(head, e.key);
            detail::append_le<std::uint32_t>(head, static_cast<std::uint32_t>(e.type));
            head.insert(head.end(), e.encoded.begin(), e.encoded.end());
        }
        std::uint64_t offset = 0;
        for (const pending_tensor& t : tensors_) {
            detail::append_string(head, t.name);
            detail::append_le<std::uint32_t>(head, static_cast<std::uint32_t>(t.ne.size()));
            for (std::int64_t d : t.ne) detail::append_le<std::int64_t>(head, d);
            detail::append_le<std::uint32_t>(head, static_cast<std::uint32_t>(t.type));
            detail::append_le<std::uint64_t>(head, offset);
            const std::uint64_t n = data_bytes(t);
            offset += n + detail::padding_for(n, align);
        }
        sink(std::span<const std::byte>(head));
        pad(head.size());
        for (const pending_tensor& t : tensors_) {
            sink(std::span<const std::byte>(t.data));
            pad(t.data.size());
        }
    }

    std::vector<entry> entries_;
    std::vector<pending_tensor> tensors_;
    std::unordered_set<std::string> tensor_names_;
};

}  // namespace gguf
QINFER_NAMESPACE_END
