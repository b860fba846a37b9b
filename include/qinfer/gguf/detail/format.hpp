// qinfer/gguf/detail/format.hpp — constants of the GGUF container and the limits the reader
// enforces. Public names (qinfer::gguf::max_key_bytes, ...); the header sits in detail/ only
// because it is included through value.hpp, reader.hpp and writer.hpp.
//
// Layout (all little-endian): magic "GGUF", u32 version, u64 tensor count, u64 metadata
// count, the metadata entries, the tensor infos, padding to the alignment, tensor data.
// Strings are a u64 byte length followed by the bytes (no terminator).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "../../core/config.hpp"

QINFER_NAMESPACE_BEGIN
namespace gguf {

inline constexpr std::string_view magic = "GGUF";

// v1 used 32-bit counts and is gone from llama.cpp; v2 and v3 share one little-endian layout
// (v3 only added the option of big-endian files, which we reject).
inline constexpr std::uint32_t oldest_version = 2;
inline constexpr std::uint32_t newest_version = 3;
inline constexpr std::uint32_t written_version = 3;

inline constexpr std::string_view alignment_key = "general.alignment";
inline constexpr std::size_t default_alignment = 32;
inline constexpr int max_dims = 4;

// --- limits: anything beyond these is rejected before it is used -------------------------

// The GGUF specification caps keys at 2^16 - 1 bytes.
inline constexpr std::uint64_t max_key_bytes = 65535;
// llama.cpp's GGUF_MAX_STRING_LENGTH and GGUF_MAX_ARRAY_ELEMENTS.
inline constexpr std::uint64_t max_string_bytes = std::uint64_t{1} << 30;
inline constexpr std::uint64_t max_array_elements = std::uint64_t{1} << 30;
// ggml stores names in a char[GGML_MAX_NAME = 64] with a terminator; llama.cpp rejects longer.
inline constexpr std::uint64_t max_tensor_name_bytes = 63;
// Generous (2 MiB huge pages fit) but keeps padding arithmetic far from overflow.
inline constexpr std::size_t max_alignment = std::size_t{1} << 24;
// Arrays of arrays: the spec allows them, llama.cpp does not; we parse a bounded depth.
inline constexpr int max_array_depth = 8;

}  // namespace gguf
QINFER_NAMESPACE_END
