// core/mapped_file.hpp: mapping, the read() fallback, and errors that name the path.
#include "gguf/support.hpp"

#include <qinfer/core/mapped_file.hpp>

#include <fstream>

using qinfer::mapped_file;
using gtest::gguf::reader;

namespace {

struct temp_dir {
    std::filesystem::path path = std::filesystem::temp_directory_path() / "qinfer-test-mapped-file";
    temp_dir() { std::filesystem::create_directories(path); }
    ~temp_dir() { std::filesystem::remove_all(path); }
};

std::string error_of(const std::filesystem::path& p) {
    try {
        mapped_file f(p);
    } catch (const qinfer::error& e) {
        return e.what();
    }
    return {};
}

}  // namespace

TEST_CASE("mapped_file: map and read give the same bytes; moves keep them in place") {
    temp_dir dir;
    const auto p = dir.path / "data.bin";
    std::string content(10000, '\0');
    for (std::size_t i = 0; i < content.size(); ++i) content[i] = static_cast<char>(i * 31);
    std::ofstream(p, std::ios::binary) << content;

    mapped_file mapped(p);
    mapped_file read(p, mapped_file::mode::read);
    CHECK(mapped.is_mapped());
    CHECK_FALSE(read.is_mapped());
    REQUIRE(mapped.size() == content.size());
    REQUIRE(read.size() == content.size());
    CHECK(std::memcmp(mapped.data(), content.data(), content.size()) == 0);
    CHECK(std::memcmp(read.data(), content.data(), content.size()) == 0);
    CHECK(reinterpret_cast<std::uintptr_t>(read.data()) % 4096 == 0);
    CHECK(mapped.path() == p);

    const std::byte* where = mapped.data();
    mapped_file moved(std::move(mapped));
    CHECK(moved.data() == where);
    CHECK(mapped.size() == 0);  // NOLINT(bugprone-use-after-move): moved-from is empty
    read = std::move(moved);
    CHECK(read.data() == where);
    CHECK(read.is_mapped());
}

TEST_CASE("mapped_file: empty files and errors") {
    temp_dir dir;
    const auto empty = dir.path / "empty.bin";
    std::ofstream(empty).close();
    mapped_file e(empty);
    CHECK(e.size() == 0);
    CHECK(e.bytes().empty());

    const auto missing = dir.path / "missing.gguf";
    const std::string m = error_of(missing);
    CHECK(m.find(missing.string()) != std::string::npos);
    CHECK(m.find("cannot open") != std::string::npos);

    const std::string d = error_of(dir.path);
    CHECK(d.find(dir.path.string()) != std::string::npos);
    CHECK(d.find("directory") != std::string::npos);

    // The reader passes the same message on, and names the file when its bytes are bad.
    try {
        reader r(missing);
        FAIL("opened a missing file");
    } catch (const qinfer::error& err) {
        CHECK(std::string(err.what()).find(missing.string()) != std::string::npos);
    }
    try {
        reader r(empty);
        FAIL("parsed an empty file");
    } catch (const qinfer::error& err) {
        CHECK(std::string(err.what()).rfind(empty.string() + ": byte offset 0", 0) == 0);
    }
}

#if QINFER_HAVE_MMAP
TEST_CASE("mapped_file: non-regular files (a pipe) are read to the end") {
    int fds[2];
    REQUIRE(::pipe(fds) == 0);
    const std::string payload = "GGUF pipe payload";
    REQUIRE(::write(fds[1], payload.data(), payload.size()) == static_cast<ssize_t>(payload.size()));
    ::close(fds[1]);
    const std::string path = "/dev/fd/" + std::to_string(fds[0]);
    if (std::filesystem::exists(path)) {
        mapped_file f(path);
        CHECK_FALSE(f.is_mapped());
        REQUIRE(f.size() == payload.size());
        CHECK(std::memcmp(f.data(), payload.data(), payload.size()) == 0);
    } else {
        QTEST_UNAVAILABLE("/dev/fd not available");
    }
    ::close(fds[0]);
}
#endif
