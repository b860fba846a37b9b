// qinfer/core/error.hpp — the one exception type the loader and the API throw.
#pragma once

#include <stdexcept>
#include <string>

#include "config.hpp"

QINFER_NAMESPACE_BEGIN

// What kind of failure an error is, so that an application can branch on it without matching
// message text. The message stays the place for the details.
enum class errc {
    other,             // none of the below (an internal limit, an unexpected state)
    io,                // the file system: a file cannot be opened, read, mapped or written
    format,            // a file's contents are malformed (truncated, inconsistent, wrong types)
    unsupported,       // well-formed, but asks for something qinfer does not implement
    invalid_argument,  // the caller passed something out of range (empty input, bad token id)
    context_full,      // the session's context cannot hold the tokens asked for
    cancelled,         // an abort callback asked to stop (see session::set_abort)
};

// The code's name as written above ("io", "context_full", ...).
constexpr const char* to_string(errc c) noexcept {
    switch (c) {
        case errc::other: return "other";
        case errc::io: return "io";
        case errc::format: return "format";
        case errc::unsupported: return "unsupported";
        case errc::invalid_argument: return "invalid_argument";
        case errc::context_full: return "context_full";
        case errc::cancelled: return "cancelled";
    }
    return "other";
}

// Thrown by everything above the kernels (GGUF reader, model loader, API). The message
// says what was expected, what was found and where (file, byte offset, key or tensor);
// code() says what kind of failure it is (errc::other unless the thrower said).
class error : public std::runtime_error {
public:
    explicit error(const std::string& what, errc code = errc::other) : std::runtime_error(what), code_(code) {}
    explicit error(const char* what, errc code = errc::other) : std::runtime_error(what), code_(code) {}

    errc code() const noexcept { return code_; }

private:
    errc code_;
};

QINFER_NAMESPACE_END
