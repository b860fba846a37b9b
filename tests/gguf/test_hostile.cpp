// Generated hostile inputs: every truncation of small valid files, thousands of seeded random
// byte flips and field overwrites, and the fuzzer's regression inputs. Each input must either
// parse (and then be safe to use) or end in qinfer::error; nothing else is allowed.
#include "gguf/support.hpp"

#include <cstdlib>
#include <fstream>
#include <iterator>

using namespace gtest;

namespace {

enum class outcome { parsed, rejected };

outcome parse_and_use(std::span<const std::byte> b) {
    try {
        const auto r = gguf::reader::from_memory(b, "hostile.gguf");
        (void)exercise(r);
        return outcome::parsed;
    } catch (const qinfer::error& e) {
        CHECK(std::string(e.what()).rfind("hostile.gguf: byte offset ", 0) == 0);
        return outcome::rejected;
    }
    // any other exception propagates and fails the test case
}

// Bytes a valid file needs: up to the end of the last tensor's data, else of the metadata.
std::size_t needed_bytes(const bytes& b) {
    const auto r = gguf::reader::from_memory(view(b));
    if (r.tensors().empty()) return static_cast<std::size_t>(r.data_offset());
    const auto& last = r.tensors().back();
    return static_cast<std::size_t>(r.data_offset() + last.offset + last.n_bytes);
}

}  // namespace

TEST_CASE("hostile: every truncation of the seed files") {
    for (const auto& [name, file] : fuzz_seeds()) {
        CAPTURE(name);
        const std::size_t needed = needed_bytes(file);
        REQUIRE(needed <= file.size());
        std::size_t rejected = 0;
        for (std::size_t n = 0; n <= file.size(); ++n) {
            CAPTURE(n);
            // a fresh allocation of exactly n bytes, so ASan sees any read past the end
            const bytes prefix(file.begin(), file.begin() + static_cast<std::ptrdiff_t>(n));
            const outcome o = parse_and_use(view(prefix));
            CHECK((o == outcome::rejected) == (n < needed));
            rejected += o == outcome::rejected;
        }
        CHECK(rejected == needed);
    }
}

TEST_CASE("hostile: seeded random byte flips and field overwrites") {
    const auto seeds = fuzz_seeds();
    std::mt19937_64 rng(20240607);
    std::size_t parsed = 0, rejected = 0;
    for (int iter = 0; iter < 6000; ++iter) {
        const bytes b = mutate(seeds[static_cast<std::size_t>(iter) % seeds.size()].second, rng);
        CAPTURE(iter);
        (parse_and_use(view(b)) == outcome::parsed ? parsed : rejected) += 1;
    }
    MESSAGE("random edits: " << parsed << " parsed, " << rejected << " rejected");
    CHECK(rejected > 3000);  // the edits hit headers often enough to matter
    CHECK(parsed > 0);       // and some land in string bytes or tensor data, which stay valid
}

TEST_CASE("hostile: regression inputs") {
    // Inputs that once exposed a problem go here, byte for byte, whatever found them
    // (scripts/fuzz-gguf.sh prints a failing input as hex). Each must now parse cleanly or be
    // rejected with qinfer::error.
    struct regression {
        const char* what;
        bool rejected;
        std::vector<unsigned char> data;
    };
    const regression cases[] = {
        // Found by the llama.cpp differential test (test_llama_oracle.cpp): a tensor name with a
        // NUL byte was accepted, while llama.cpp cuts such names at the NUL (so "a\0x" and
        // "a\0y" would be one name to it). Now rejected.
        {"NUL inside a tensor name", true,
         {'G', 'G', 'U', 'F', 3, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // v3, 1 tensor, 0 kv
          3, 0, 0, 0, 0, 0, 0, 0, 'a', 0, 'x',                                             // name "a\0x"
          1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 24, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,  // [1], i8, offset 0
          0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}},
        // Hand-written: an array of arrays whose inner string array runs past the end.
        {"nested array cut short", true,
         {'G', 'G', 'U', 'F', 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 'k',
          9, 0, 0, 0, 9, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0, 0, 8, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0}},
    };
    for (const regression& c : cases) {
        CAPTURE(c.what);
        const bytes b(reinterpret_cast<const std::byte*>(c.data.data()),
                      reinterpret_cast<const std::byte*>(c.data.data()) + c.data.size());
        CHECK((parse_and_use(view(b)) == outcome::rejected) == c.rejected);
    }
}

TEST_CASE("fuzz seed corpus: committed files match the generator and parse") {
    const char* regenerate = std::getenv("QINFER_WRITE_FUZZ_SEEDS");
    const std::filesystem::path dir =
        regenerate ? std::filesystem::path(regenerate) : std::filesystem::path(QINFER_SOURCE_DIR) / "tests/fuzz/corpus";
    for (const auto& [name, file] : fuzz_seeds()) {
        CAPTURE(name);
        CHECK(file.size() < 1024);  // seeds stay tiny so the fuzzer mutates structure, not data
        if (regenerate) {
            std::filesystem::create_directories(dir);
            std::ofstream(dir / name, std::ios::binary)
                .write(reinterpret_cast<const char*>(file.data()), static_cast<std::streamsize>(file.size()));
            continue;
        }
        const gguf::reader from_disk(dir / name);
        const auto on_disk = from_disk.file_bytes();
        REQUIRE(on_disk.size() == file.size());
        CHECK(std::equal(on_disk.begin(), on_disk.end(), file.begin()));
        (void)exercise(from_disk);
    }
}
