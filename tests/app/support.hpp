// tests/app/support.hpp — what the app tests share: stories260K, error codes, token streams.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <qinfer/model/model.hpp>

#include "skip.hpp"

namespace apptest {

namespace fs = std::filesystem;
inline const std::string stories = std::string(QINFER_REFDATA_DIR) + "/models/stories260K.gguf";

inline bool have_stories() { return qtest::have_file(stories); }

inline std::shared_ptr<const qinfer::model> load() { return std::make_shared<const qinfer::model>(stories); }

template <class F> inline qinfer::errc code_of(F&& f) {
    try {
        f();
    } catch (const qinfer::error& e) {
        return e.code();
    }
    FAIL("no qinfer::error thrown");
    return qinfer::errc::other;
}

// Deterministic in-vocabulary token ids (BOS first), for prompts of any length.
inline std::vector<std::int32_t> tokens_of(std::size_t n, std::int64_t n_vocab) {
    std::vector<std::int32_t> t(n);
    for (std::size_t i = 0; i < n; ++i) t[i] = i == 0 ? 1 : std::int32_t(3 + (i * 7919) % std::size_t(n_vocab - 3));
    return t;
}

inline double max_diff(std::span<const float> a, std::span<const float> b) {
    REQUIRE(a.size() == b.size());
    double d = 0;
    for (std::size_t i = 0; i < a.size(); ++i) d = std::max(d, double(std::fabs(a[i] - b[i])));
    return d;
}

}  // namespace apptest
