// qinfer/core/error.hpp — the one exception type the loader and the API throw.
#pragma once

#include <stdexcept>
#include <string>

#include "config.hpp"

QINFER_NAMESPACE_BEGIN

// Thrown by everything above the kernels (GGUF reader, model loader, API). The message
// says what was expected, what was found and where (file, byte offset, key or tensor).
class error : public std::runtime_error {
public:
    using std::runtime_error::runtime_error;
};

QINFER_NAMESPACE_END
