// qinfer/gguf/reader.hpp — validating GGUF v2/v3 reader over a mapped file or a caller's buffer.
//
// Files come from the internet, so the whole header is checked before anything is handed
// out: every count, length, shape, type id and offset is bounded against the file's bytes
// with overflow-checked arithmetic. Any defect throws qinfer::error naming the file, the byte
// offset and the key or tensor. Metadata strings and tensor data are views into the bytes
// (no copy): they live as long as the reader (or, for from_memory, the caller's buffer).
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "../core/config.hpp"
#include "../core/error.hpp"
#include "../core/mapped_file.hpp"
#include "../core/types.hpp"
#include "detail/bytes.hpp"
#include "detail/cursor.hpp"
#include "detail/text.hpp"
#include "detail/format.hpp"
#include "value.hpp"

QINFER_NAMESPACE_BEGIN
namespace gguf {

struct tensor_info {
    std::string name;
    type_id type;
    int n_dims;                      // 1..4, as stored
    std::array<std::int64_t, 4> ne;  // ggml order: ne[0] is the row length (contiguous); unused dims are 1
    std::uint64_t offset;            // relative to the data section, as stored
    std::int64_t n_elements;
    std::uint64_t n_bytes;
    const std::byte* data;           // points into the file's bytes (no copy)

    std::span<const std::byte> bytes() const noexcept { return {data, static_cast<std::size_t>(n_bytes)}; }
};

// One metadata key/value pair, in file order.
struct metadata_entry {
    std::string_view key;  // views the file
    gguf::value value;
    std::uint64_t offset;  // byte offset of the entry (its key) in the file
};

class reader {
public:
    explicit reader(const std::filesystem::path& path, mapped_file::mode how = mapped_file::mode::map)
        : file_(std::in_place, path, how), path_(path.string()) {
        bytes_ = file_->bytes();
        parse();
    }

    // Parses a buffer the caller keeps alive for the reader's lifetime (tests, fuzzing,
    // files already in memory). `name` stands for the file in messages.
    static reader from_memory(std::span<const std::byte> bytes, std::string name = "<memory>") {
        reader r;
        r.bytes_ = bytes;
        r.path_ = std::move(name);
        r.parse();
        return r;
    }

    // Views (keys, strings, tensor data) stay valid across moves: the bytes do not move.
    reader(reader&&) noexcept = default;
    reader& operator=(reader&&) noexcept = default;
    reader(const reader&) = delete;
    reader& operator=(const reader&) = delete;

    std::uint32_t version() const noexcept { return version_; }
    std::size_t alignment() const noexcept { return alignment_; }
    const std::string& path() const noexcept { return path_; }
    // Byte offset of the data section in the file (with no tensors: where the infos end).
    std::uint64_t data_offset() const noexcept { return data_offset_; }
    std::span<const std::byte> file_bytes() const noexcept { return bytes_; }
    // True when the bytes are an mmap of the file (false: read into memory, or from_memory).
    bool is_mapped() const noexcept { return file_ && file_->is_mapped(); }

    // --- metadata ------------------------------------------------------------------------

    bool contains(std::string_view key) const { return find(key) != nullptr; }
    std::size_t metadata_count() const noexcept { return metadata_.size(); }
    std::span<const metadata_entry> metadata() const noexcept { return metadata_; }

    const metadata_entry* find(std::string_view key) const {
        const auto it = key_index_.find(key);
        return it == key_index_.end() ? nullptr : &metadata_[it->second];
    }

    std::optional<value_type> type_of(std::string_view key) const {
        const metadata_entry* e = find(key);
        return e ? std::optional<value_type>(e->value.type()) : std::nullopt;
    }

    // T: u8..i64, float, double, bool, std::string_view (views the file) or std::string.
    // Absent -> nullopt; stored with another type -> qinfer::error naming both types.
    template <class T> std::optional<T> get(std::string_view key) const {
        static_assert(detail::metadata_readable<T>, "gguf::reader::get: unsupported type");
        const metadata_entry* e = find(key);
        if (!e) return std::nullopt;
        if (!e->value.is<T>()) type_mismatch(*e, value_type_name(detail::stored_type_of<T>()));
        return e->value.as<T>();
    }

    template <class T> T require(std::string_view key) const {
        if (std::optional<T> v = get<T>(key)) return *std::move(v);
        missing_key(key);
    }

    // Elements of an array of exactly T (std::string_view for arrays of strings).
    template <class T> std::optional<std::vector<T>> get_array(std::string_view key) const {
        static_assert(detail::metadata_readable<T>, "gguf::reader::get_array: unsupported type");
        const metadata_entry* e = find(key);
        if (!e) return std::nullopt;
        if (!e->value.is_array_of<T>())
            type_mismatch(*e, detail::cat("arr[", value_type_name(detail::stored_type_of<T>()), "]"));
        return e->value.as_array<T>();
    }

    template <class T> std::vector<T> require_array(std::string_view key) const {
        if (std::optional<std::vector<T>> v = get_array<T>(key)) return *std::move(v);
        missing_key(key);
    }

    // --- tensors -------------------------------------------------------------------------

    const std::vector<tensor_info>& tensors() const noexcept { return tensors_; }

    const tensor_info* find_tensor(std::string_view name) const {
        const auto it = tensor_index_.find(name);
        return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
    }

    const tensor_info& tensor(std::string_view name) const {
        if (const tensor_info* t = find_tensor(name)) return *t;
        throw error(detail::cat(path_, ": tensor ", detail::quoted(name), " not found (the file has ",
                                tensors_.size(), " tensors)"),
                    errc::format);
    }

private:
    reader() = default;

    [[noreturn]] void type_mismatch(const metadata_entry& e, std::string_view expected) const {
        throw error(detail::located(path_, e.offset, detail::subject::key(e.key),
                                    detail::cat("expected type ", expected, ", found ", e.value.type_name())),
                    errc::format);
    }

    [[noreturn]] void missing_key(std::string_view key) const {
        throw error(detail::cat(path_, ": required key ", detail::quoted(key), " is missing"), errc::format);
    }

    void parse();
    void parse_header(detail::cursor& c, std::uint64_t& n_tensors, std::uint64_t& n_kv);
    void parse_metadata(detail::cursor& c, std::uint64_t n_kv);
    void parse_alignment(detail::cursor& c);
    void parse_tensor_infos(detail::cursor& c, std::uint64_t n_tensors, std::vector<std::uint64_t>& offset_at);
    void place_tensor_data(detail::cursor& c, const std::vector<std::uint64_t>& offset_at);

    std::optional<mapped_file> file_;  // empty for from_memory
    std::span<const std::byte> bytes_;
    std::string path_;
    std::uint32_t version_ = 0;
    std::size_t alignment_ = default_alignment;
    std::uint64_t data_offset_ = 0;
    std::vector<metadata_entry> metadata_;
    std::vector<tensor_info> tensors_;
    // Keys view the file's bytes, which never move, so these survive moves of the reader.
    std::unordered_map<std::string_view, std::size_t> key_index_;
    std::unordered_map<std::string_view, std::size_t> tensor_index_;
};

// --- parsing -----------------------------------------------------------------------------

namespace detail {

// Smallest possible metadata entry: key length, a 1-byte key, type, a 1-byte value.
inline constexpr std::uint64_t min_entry_bytes = 8 + 1 + 4 + 1;
// Smallest possible tensor info: name length, a 1-byte name, n_dims, one dim, type, offset.
inline constexpr std::uint64_t min_tensor_info_bytes = 8 + 1 + 4 + 8 + 4 + 8;

// ggml ids that once existed and were removed; named in messages because old files use them.
constexpr bool is_removed_type_id(std::uint32_t raw) noexcept {
    return raw == 4 || raw == 5 || (raw >= 31 && raw <= 33) || (raw >= 36 && raw <= 38);
}

inline std::string shape_text(const std::array<std::int64_t, 4>& ne, int n_dims) {
    std::string s = "[";
    for (int i = 0; i < n_dims; ++i) s += cat(i ? ", " : "", ne[static_cast<std::size_t>(i)]);
    return s + "]";
}

}  // namespace detail

inline void reader::parse() {
    detail::cursor c(bytes_, path_);
    std::uint64_t n_tensors = 0, n_kv = 0;
    parse_header(c, n_tensors, n_kv);
    parse_metadata(c, n_kv);
    parse_alignment(c);
    std::vector<std::uint64_t> offset_at;  // file offset of each tensor's offset field
    parse_tensor_infos(c, n_tensors, offset_at);
    place_tensor_data(c, offset_at);
}

inline void reader::parse_header(detail::cursor& c, std::uint64_t& n_tensors, std::uint64_t& n_kv) {
    using detail::cat;
    c.about(detail::subject::header());
    if (c.size() < magic.size())
        c.fail(cat("expected the magic ", detail::quoted(magic), ", found a file of only ", c.size(), " bytes"));
    const auto m = c.take(magic.size(), "the magic");
    const std::string_view found(reinterpret_cast<const char*>(m.data()), m.size());
    if (found != magic)
        c.fail_at(0, cat("expected the magic ", detail::quoted(magic), ", found ", detail::quoted(found)));

    const std::uint64_t version_at = c.offset();
    version_ = c.read<std::uint32_t>("the version");
    if (version_ != 0 && (version_ & 0xffffu) == 0) {
        // A big-endian file: its small version number lands in the high bytes.
        c.fail_at(version_at, cat("expected a little-endian file with version ", oldest_version, " or ",
                                  newest_version, ", found version field ", version_, " = version ",
                                  detail::byteswap(version_),
                                  " byte-swapped: big-endian GGUF files are not supported"));
    }
    if (version_ == 1)
        c.fail_at(version_at, cat("expected version ", oldest_version, " or ", newest_version,
                                  ", found version 1: GGUF v1 files are no longer supported"));
    if (version_ < oldest_version || version_ > newest_version)
        c.fail_at(version_at, cat("expected version ", oldest_version, " or ", newest_version, ", found version ",
                                  version_, version_ > newest_version ? " (newer than this reader supports)" : ""));

    const std::uint64_t n_tensors_at = c.offset();
    n_tensors = c.read<std::uint64_t>("the tensor count");
    const std::uint64_t n_kv_at = c.offset();
    n_kv = c.read<std::uint64_t>("the metadata count");
    // The counts are signed in ggml; each entry also has a minimum size, so a count the rest
    // of the file cannot hold is rejected before any memory is reserved for it.
    if (n_tensors > c.remaining() / detail::min_tensor_info_bytes)
        c.fail_at(n_tensors_at, cat("expected a tensor count that fits the ", c.remaining(),
                                    " bytes left (at most ", c.remaining() / detail::min_tensor_info_bytes,
                                    "), found ", n_tensors,
                                    n_tensors > std::uint64_t(INT64_MAX) ? " (negative as int64)" : ""));
    if (n_kv > c.remaining() / detail::min_entry_bytes)
        c.fail_at(n_kv_at, cat("expected a metadata count that fits the ", c.remaining(), " bytes left (at most ",
                               c.remaining() / detail::min_entry_bytes, "), found ", n_kv,
                               n_kv > std::uint64_t(INT64_MAX) ? " (negative as int64)" : ""));
}

inline void reader::parse_metadata(detail::cursor& c, std::uint64_t n_kv) {
    using detail::cat;
    for (std::uint64_t i = 0; i < n_kv; ++i) {
        const std::uint64_t entry_at = c.offset();
        c.about(detail::subject::entry(i));
        const std::string_view key = c.read_string("a key", max_key_bytes);
        if (key.empty()) c.fail_at(entry_at, "expected a non-empty key, found an empty one");
        c.about(detail::subject::key(key));
        if (const auto [it, fresh] = key_index_.emplace(key, metadata_.size()); !fresh)
            c.fail_at(entry_at, cat("expected unique keys, found this key again (first at byte offset ",
                                    metadata_[it->second].offset, ")"));

        const std::uint64_t type_at = c.offset();
        const auto raw = c.read<std::uint32_t>("the value type");
        if (!is_value_type(raw))
            c.fail_at(type_at, cat("expected a value type in 0..12, found ", raw));
        const auto type = static_cast<value_type>(raw);
        const std::uint64_t value_at = c.offset();
        detail::skip_value(c, type, 0);
        const auto encoded = bytes_.subspan(static_cast<std::size_t>(value_at),
                                            static_cast<std::size_t>(c.offset() - value_at));
        metadata_.push_back({key, value(detail::validated, type, encoded), entry_at});
    }
}

inline void reader::parse_alignment(detail::cursor& c) {
    using detail::cat;
    const metadata_entry* e = find(alignment_key);
    if (!e) return;
    c.about(detail::subject::key(e->key));
    if (e->value.type() != value_type::u32)
        c.fail_at(e->offset, cat("expected type u32, found ", e->value.type_name()));
    const auto a = e->value.as<std::uint32_t>();
    if (!detail::is_power_of_two(a) || a > max_alignment)
        c.fail_at(e->offset, cat("expected a power of two between 1 and ", max_alignment, ", found ", a));
    alignment_ = a;
}

inline void reader::parse_tensor_infos(detail::cursor& c, std::uint64_t n_tensors,
                                       std::vector<std::uint64_t>& offset_at) {
    using detail::cat;
    for (std::uint64_t i = 0; i < n_tensors; ++i) {
        const std::uint64_t info_at = c.offset();
        c.about(detail::subject::tensor_info(i));
        const std::string_view name = c.read_string("a tensor name", max_tensor_name_bytes);
        if (name.empty()) c.fail_at(info_at, "expected a non-empty tensor name, found an empty one");
        // ggml keeps names as C strings: llama.cpp would silently cut this one at the NUL.
        if (const auto nul = name.find('\0'); nul != std::string_view::npos)
            c.fail_at(info_at, cat("expected a tensor name without NUL bytes, found one at position ", nul, " of ",
                                   detail::quoted(name)));
        c.about(detail::subject::tensor(name));
        if (const auto [it, fresh] = tensor_index_.emplace(name, tensors_.size()); !fresh)
            c.fail_at(info_at, cat("expected unique tensor names, found this name again (first was tensor #",
                                   it->second, ")"));

        tensor_info t{};
        t.name = std::string(name);
        const std::uint64_t dims_at = c.offset();
        const auto n_dims = c.read<std::uint32_t>("the dimension count");
        if (n_dims < 1 || n_dims > max_dims)
            c.fail_at(dims_at, cat("expected 1 to ", max_dims, " dimensions, found ", n_dims));
        t.n_dims = static_cast<int>(n_dims);
        t.ne = {1, 1, 1, 1};
        t.n_elements = 1;
        for (std::uint32_t d = 0; d < n_dims; ++d) {
            const std::uint64_t dim_at = c.offset();
            const auto ne = c.read<std::int64_t>("a dimension");
            if (ne < 1) c.fail_at(dim_at, cat("expected dimension ", d, " to be at least 1, found ", ne));
            t.ne[d] = ne;
            if (!detail::mul_ok(t.n_elements, ne, t.n_elements))
                c.fail_at(dim_at, cat("expected an element count that fits in int64, found shape ",
                                      detail::shape_text(t.ne, static_cast<int>(d + 1)), " overflowing it"));
        }

        const std::uint64_t type_at = c.offset();
        const auto raw_type = c.read<std::uint32_t>("the tensor type");
        const std::optional<type_info> ti = type_info_of(raw_type);
        if (!ti) {
            std::string why = detail::is_removed_type_id(raw_type) ? " (an id ggml removed)" : "";
            if (raw_type > std::uint32_t(INT32_MAX)) why = cat(" (", static_cast<std::int32_t>(raw_type), " as int32)");
            c.fail_at(type_at, cat("expected a known ggml type id, found ", raw_type, why));
        }
        t.type = ti->id;
        if (t.ne[0] % ti->block_size != 0)
            c.fail_at(dims_at, cat("expected a row length (ne[0]) that is a multiple of ", ti->name,
                                   "'s block size ", ti->block_size, ", found ", t.ne[0]));
        const auto n_blocks = static_cast<std::uint64_t>(t.n_elements / ti->block_size);
        if (!detail::mul_ok(n_blocks, static_cast<std::uint64_t>(ti->block_bytes), t.n_bytes))
            c.fail_at(dims_at, cat("expected a byte size that fits in 64 bits, found shape ",
                                   detail::shape_text(t.ne, t.n_dims), " of ", ti->name, " overflowing it"));

        offset_at.push_back(c.offset());
        t.offset = c.read<std::uint64_t>("the data offset");
        t.data = nullptr;
        tensors_.push_back(std::move(t));
    }
}

inline void reader::place_tensor_data(detail::cursor& c, const std::vector<std::uint64_t>& offset_at) {
    using detail::cat;
    const std::uint64_t infos_end = c.offset();
    if (tensors_.empty()) {  // llama.cpp pads only when there is data to align
        data_offset_ = infos_end;
        return;
    }
    data_offset_ = infos_end + detail::padding_for(infos_end, alignment_);  // no overflow: both < 2^63
    if (data_offset_ > c.size()) {
        c.about(detail::subject::whole_file());
        c.fail_at(infos_end, cat("expected the data section at byte offset ", data_offset_, " (alignment ",
                                 alignment_, "), found the end of the file at ", c.size()));
    }
    const std::uint64_t data_bytes = c.size() - data_offset_;
    // Like llama.cpp: tensors lie in order, each padded to the alignment. This also rules out
    // overlapping tensors.
    std::uint64_t expected = 0;
    for (std::size_t i = 0; i < tensors_.size(); ++i) {
        tensor_info& t = tensors_[i];
        c.about(detail::subject::tensor(t.name));
        if (t.offset % alignment_ != 0)
            c.fail_at(offset_at[i], cat("expected a data offset that is a multiple of the alignment ", alignment_,
                                        ", found ", t.offset));
        if (t.offset != expected)
            c.fail_at(offset_at[i], cat("expected data offset ", expected,
                                        " (tensors are stored in order, each padded to the alignment), found ",
                                        t.offset));
        if (t.offset > data_bytes || t.n_bytes > data_bytes - t.offset)
            c.fail_at(offset_at[i], cat("expected ", t.n_bytes, " bytes of data at byte offset ",
                                        data_offset_ + t.offset, ", found only ",
                                        t.offset > data_bytes ? 0 : data_bytes - t.offset,
                                        " bytes before the end of the file"));
        t.data = bytes_.data() + data_offset_ + t.offset;
        // Fits: offset + n_bytes <= data_bytes < 2^63 and the padding is below 2^24.
        expected = t.offset + t.n_bytes + detail::padding_for(t.n_bytes, alignment_);
    }
}

}  // namespace gguf
QINFER_NAMESPACE_END
