// The model fuzzer's seeds (tests/fuzz/corpus-model/, written by fuzz/model_seeds.hpp): the
// committed files are the generator's bytes, and each is a model qinfer loads, tokenizes
// with, formats a chat for and evaluates. Every other file in the folder (inputs the fuzzer
// found) loads or is refused with qinfer::error. QINFER_WRITE_FUZZ_SEEDS=dir writes the seeds.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include <doctest/doctest.h>
#include <qinfer/model/session.hpp>
#include <qinfer/text/chat_template.hpp>

#include "fuzz/model_seeds.hpp"

namespace {
namespace fs = std::filesystem;

std::vector<std::byte> read_bytes(const fs::path& p) {
    std::ifstream f(p, std::ios::binary);
    const std::vector<char> c((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
    return std::vector<std::byte>(reinterpret_cast<const std::byte*>(c.data()), reinterpret_cast<const std::byte*>(c.data() + c.size()));
}
}  // namespace

TEST_CASE("fuzz seed corpus (model): committed files match the generator, load and evaluate") {
    const char* regenerate = std::getenv("QINFER_WRITE_FUZZ_SEEDS");
    const fs::path dir = regenerate ? fs::path(regenerate) : fs::path(QINFER_SOURCE_DIR) / "tests/fuzz/corpus-model";
    std::set<std::string> seeds;
    for (const auto& [name, bytes] : fuzzseed::model_seeds()) {
        CAPTURE(name);
        seeds.insert(name);
        CHECK(bytes.size() < 12288);  // a few KB: the fuzzer mutates structure, not weights
        if (regenerate) {
            fs::create_directories(dir);
            std::ofstream(dir / name, std::ios::binary)
                .write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
            continue;
        }
        const std::vector<std::byte> on_disk = read_bytes(dir / name);
        REQUIRE(on_disk.size() == bytes.size());
        CHECK(std::equal(on_disk.begin(), on_disk.end(), bytes.begin()));

        auto m = std::make_shared<const qinfer::model>(qinfer::gguf::reader::from_memory(bytes, name));
        CHECK(m->config().n_embd == fuzzseed::n_embd);
        CHECK(m->config().n_layer == 1);
        const auto ids = m->tokenizer().encode("Hello world", true, true);
        MESSAGE(name << ": " << bytes.size() << " bytes, " << m->tokenizer().size() << " tokens, \"Hello world\" -> "
                     << ids.size() << " tokens");
        CHECK(m->tokenizer().decode(ids, true).find("Hello world") != std::string::npos);
        const auto tmpl = qinfer::text::detect_chat_template(m->tokenizer().vocab().chat_template);
        CHECK(tmpl.known());
        const qinfer::text::chat_message chat[] = {{"user", "hi"}};
        CHECK_FALSE(qinfer::text::apply_chat_template(tmpl, chat, true).empty());
        qinfer::session s(m, {.n_ctx = 16, .n_threads = 1});
        const auto logits = s.eval(ids);
        REQUIRE(std::int64_t(logits.size()) == m->config().n_vocab);
        CHECK(std::all_of(logits.begin(), logits.end(), [](float x) { return std::isfinite(x); }));
    }
    if (regenerate) return;
    // Inputs the fuzzer found and that were folded back into the folder: no crash, and any
    // refusal is a qinfer::error.
    int others = 0;
    for (const auto& e : fs::directory_iterator(dir)) {
        if (seeds.count(e.path().filename().string())) continue;
        ++others;
        CAPTURE(e.path().string());
        const std::vector<std::byte> bytes = read_bytes(e.path());
        try {
            auto m = std::make_shared<const qinfer::model>(qinfer::gguf::reader::from_memory(bytes, e.path().string()));
            qinfer::session s(m, {.n_ctx = 8, .n_threads = 1});
            (void)s.eval(std::vector<std::int32_t>{0});
        } catch (const qinfer::error&) {
        }
    }
    MESSAGE(others << " further corpus inputs");
}
