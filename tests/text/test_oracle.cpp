// Differential tests against llama.cpp itself (libllama from npm, see llama_oracle.hpp): the
// same GGUF vocabularies loaded by both, then random and adversarial strings (every Unicode
// class, all kinds of whitespace, special-token texts, malformed UTF-8, ...) must give the same
// ids in every encode mode, the same text in every decode mode, and the same piece per token.
#include "text/llama_oracle.hpp"
#include "text/support.hpp"

using namespace ttest;

TEST_CASE("tokenize, detokenize and pieces match llama.cpp on every vocabulary") {
    const llama_oracle::api* api = llama_oracle::get();
    if (!api) return;
    for (const std::string& rel : all_vocab_files()) {
        CAPTURE(rel);
        const text::tokenizer* tok = tokenizer_for(rel);
        if (!tok) continue;
        const llama_oracle::vocab ref(*api, std::filesystem::path(QINFER_REFDATA_DIR) / rel);
        REQUIRE(ref.ok());

        // Vocabulary facts; every token's pieces, with and without specials / lstrip.
        const std::size_t fact_mismatches = llama_oracle::check_vocab_facts(*api, ref, *tok);
        std::size_t token_mismatches = 0;
        for (std::int32_t id = 0; id < static_cast<std::int32_t>(tok->size()); ++id) {
            const bool same = ref.piece(id, true) == tok->token_to_piece(id, true) &&
                              ref.piece(id, false) == tok->token_to_piece(id, false) &&
                              ref.piece(id, true, 1) == tok->token_to_piece(id, true, 1);
            if (!same && ++token_mismatches <= 5) {
                INFO("token " << id << " [" << tok->vocab().tokens[id] << "]");
                CHECK(ref.piece(id, true) == tok->token_to_piece(id, true));
                CHECK(ref.piece(id, false) == tok->token_to_piece(id, false));
                CHECK(ref.piece(id, true, 1) == tok->token_to_piece(id, true, 1));
            }
        }
        CHECK(token_mismatches + fact_mismatches == 0);

        // Random strings in all four encode modes; their ids (and random ids) in all decode modes.
        const std::vector<std::string> pool = fragment_pool(*tok);
        std::mt19937 rng(42);
        std::size_t n_strings = 0, enc_ok = 0, dec_ok = 0, n_dec = 0;
        for (int i = 0; i < 300; ++i) {
            const std::string s = random_text(rng, pool);
            ++n_strings;
            bool all_enc = true;
            for (int mode = 0; mode < 4; ++mode) {
                const bool add = mode & 1, parse = mode & 2;
                const std::vector<std::int32_t> want = ref.tokenize(s, add, parse);
                const std::vector<std::int32_t> got = tok->encode(s, add, parse);
                if (got != want) {
                    all_enc = false;
                    INFO("text [" << s << "] add_special=" << add << " parse_special=" << parse);
                    CHECK(show(got) == show(want));
                }
                std::vector<std::int32_t> ids = want;
                if (mode == 3)  // plus some arbitrary ids, specials included
                    for (int k = 0; k < 4; ++k) ids.insert(ids.begin() + (rng() % (ids.size() + 1)), rng() % tok->size());
                for (int dm = 0; dm < 4; ++dm) {
                    const bool remove = dm & 1, unparse = dm & 2;
                    ++n_dec;
                    const std::string d_want = ref.detokenize(ids, remove, unparse);
                    const std::string d_got = tok->decode(ids, remove, unparse);
                    if (d_got == d_want) {
                        ++dec_ok;
                    } else {
                        INFO("ids " << show(ids) << " remove_special=" << remove << " unparse_special=" << unparse);
                        CHECK(d_got == d_want);
                    }
                }
            }
            enc_ok += all_enc;
        }
        MESSAGE(rel << ": " << tok->size() << " tokens' pieces/attributes match llama.cpp; encode matches on " << enc_ok
                    << " / " << n_strings << " random strings (x4 modes), decode on " << dec_ok << " / " << n_dec);
        CHECK(enc_ok == n_strings);
        CHECK(dec_ok == n_dec);
    }
}

TEST_CASE("decode: llama.cpp's clean-up of spaces around punctuation and apostrophes") {
    // Strings dense in the characters the three clean-up passes look at, on a vocabulary that
    // cleans up (gpt-2) and one that does not (deepseek-coder).
    const llama_oracle::api* api = llama_oracle::get();
    if (!api) return;
    for (const std::string rel : {"vocab/ggml-vocab-gpt-2.gguf", "vocab/ggml-vocab-deepseek-coder.gguf"}) {
        CAPTURE(rel);
        const text::tokenizer* tok = tokenizer_for(rel);
        if (!tok) continue;
        const llama_oracle::vocab ref(*api, std::filesystem::path(QINFER_REFDATA_DIR) / rel);
        REQUIRE(ref.ok());
        static const char alphabet[] = {' ', ' ', ' ', '\'', '\'', 's', 'm', 'r', 'e', 'v', 'l', 't', 'd', ',', '.', '?', '!', 'a'};
        std::mt19937 rng(3);
        std::size_t ok = 0, n = 3000;
        for (std::size_t i = 0; i < n; ++i) {
            std::string s(1 + rng() % 12, ' ');
            for (char& c : s) c = alphabet[rng() % sizeof(alphabet)];
            const auto ids = ref.tokenize(s, false, false);
            const std::string want = ref.detokenize(ids, false, false);
            const std::string got = tok->decode(ids);
            if (got == want) ++ok;
            else CHECK_MESSAGE(got == want, "text [" << s << "]");
        }
        CHECK(ok == n);
    }
}
