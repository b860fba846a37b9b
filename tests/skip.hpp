// tests/skip.hpp — the one rule for a test that cannot run here (reference data, a llama.cpp
// oracle or a platform feature missing): on a developer's machine it is skipped with a
// "SKIPPED: ..." message; where CI=true (any value but "" / "false" / "0") or
// QINFER_REQUIRE_ORACLE=1 (which .ci/run sets) it fails, so CI cannot pass a test that did
// not run.
#pragma once

#include <cstdlib>
#include <filesystem>
#include <optional>
#include <string>

namespace qtest {

// True where CI (or the user) demands that every test runs: then anything missing fails.
inline bool required() {
    const char* ci = std::getenv("CI");
    const char* req = std::getenv("QINFER_REQUIRE_ORACLE");
    return (ci && *ci && std::string(ci) != "false" && std::string(ci) != "0") || (req && std::string(req) == "1");
}

}  // namespace qtest

#ifndef QINFER_ORACLE_NO_DOCTEST
#include <doctest/doctest.h>

// What cannot run, streamed like MESSAGE's argument: a failure (ending the test case) where
// required, else a skip message. The caller returns after it.
#define QTEST_UNAVAILABLE(what)                                                                   \
    do {                                                                                          \
        if (::qtest::required()) FAIL("required (CI or QINFER_REQUIRE_ORACLE=1) but unavailable: " << what); \
        MESSAGE("SKIPPED: " << what);                                                             \
    } while (0)

namespace qtest {

// Whether `path` exists; if not, QTEST_UNAVAILABLE (false after a skip message).
inline bool have_file(const std::filesystem::path& path) {
    if (std::filesystem::exists(path)) return true;
    QTEST_UNAVAILABLE("reference file not found: " << path.string());
    return false;
}

#ifdef QINFER_REFDATA_DIR
// A file under the reference data directory (../shared/refdata), or nullopt after a skip message.
inline std::optional<std::filesystem::path> refdata(const std::string& relative) {
    const std::filesystem::path p = std::filesystem::path(QINFER_REFDATA_DIR) / relative;
    if (!have_file(p)) return std::nullopt;
    return p;
}
#endif

}  // namespace qtest
#endif
