// qinfer-quantize — quantize an F32 / F16 / BF16 GGUF model, with the same result as llama-quantize.
//
//   qinfer-quantize [options] in.gguf out.gguf TYPE [threads]
//
// TYPE is a llama.cpp file type (Q4_K_M, Q8_0, ...; see --help). The output has the tensor
// types and bytes llama.cpp's quantizer writes for the same input (and the same --imatrix).
#include <cstdio>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include <qinfer/tools/imatrix.hpp>
#include <qinfer/tools/quantize.hpp>

namespace {

void usage(std::FILE* to) {
    std::fprintf(to,
                 "usage: qinfer-quantize [options] in.gguf out.gguf TYPE [threads]\n"
                 "  --allow-requantize     accept already quantized input tensors (quality suffers)\n"
                 "  --leave-output-tensor  leave output.weight as it is\n"
                 "  --pure                 no mix: every quantized tensor gets TYPE's default type\n"
                 "  --imatrix FILE         importance matrix (llama-imatrix's GGUF or legacy .dat file)\n"
                 "  --include-weights NAME use the imatrix only for tensors whose name contains NAME (repeatable)\n"
                 "  --exclude-weights NAME do not use the imatrix for tensors whose name contains NAME (repeatable)\n"
                 "  -h, --help\n"
                 "TYPE (case-insensitive; Q3_K, Q4_K, Q5_K mean the _M mixes; or llama.cpp's ftype number):\n");
    for (const auto& f : qinfer::tools::ftype_table)
        std::fprintf(to, "  %2u  %-7s %s\n", static_cast<unsigned>(f.id), std::string(f.name).c_str(),
                     std::string(f.description).c_str());
}

double mib(std::uint64_t b) { return double(b) / 1024.0 / 1024.0; }

}  // namespace

int main(int argc, char** argv) {
    namespace tools = qinfer::tools;
    tools::quantize_options opt;
    std::vector<std::string> pos, include, exclude;
    std::string imatrix_file;
    qinfer::tools::imatrix imx;
    try {
        for (int i = 1; i < argc; ++i) {
            const std::string a = argv[i];
            if (a == "--allow-requantize") opt.allow_requantize = true;
            else if (a == "--leave-output-tensor") opt.quantize_output_tensor = false;
            else if (a == "--pure") opt.pure = true;
            else if (a == "--imatrix" || a == "--include-weights" || a == "--exclude-weights") {
                if (i + 1 >= argc) {
                    usage(stderr);
                    std::fprintf(stderr, "qinfer-quantize: %s needs an argument\n", a.c_str());
                    return 2;
                }
                const std::string v = argv[++i];
                if (a == "--imatrix") imatrix_file = v;
                else (a == "--include-weights" ? include : exclude).push_back(v);
            }
            else if (a == "-h" || a == "--help") { usage(stdout); return 0; }
            else if (a.size() > 1 && a[0] == '-') {
                usage(stderr);
                std::fprintf(stderr, "qinfer-quantize: unknown option %s\n", a.c_str());
                return 2;
            } else pos.push_back(a);
        }
        if (pos.size() < 3 || pos.size() > 4) {
            usage(stderr);
            std::fprintf(stderr, "qinfer-quantize: expected in.gguf out.gguf TYPE [threads]\n");
            return 2;
        }
        if (!include.empty() && !exclude.empty()) {
            usage(stderr);
            std::fprintf(stderr, "qinfer-quantize: --include-weights and --exclude-weights exclude each other\n");
            return 2;
        }
        if ((!include.empty() || !exclude.empty()) && imatrix_file.empty()) {
            usage(stderr);
            std::fprintf(stderr, "qinfer-quantize: --include-weights / --exclude-weights need --imatrix\n");
            return 2;
        }
        opt.type = tools::parse_ftype(pos[2]);
        if (pos.size() == 4) {
            char* end = nullptr;
            const long n = std::strtol(pos[3].c_str(), &end, 10);
            if (end == pos[3].c_str() || *end || n < 0 || n > 4096)
                throw qinfer::error("threads: '" + pos[3] + "' is not a thread count");
            opt.n_threads = int(n);
        }
        const std::string type_name(tools::info(opt.type).name);
        std::fprintf(stderr, "qinfer-quantize: %s -> %s as %s\n", pos[0].c_str(), pos[1].c_str(), type_name.c_str());
        if (!imatrix_file.empty()) {
            imx = tools::load_imatrix(imatrix_file);
            const std::size_t n_loaded = imx.entries.size();
            tools::filter_imatrix(imx, include, exclude);
            std::fprintf(stderr, "qinfer-quantize: imatrix %s (%s format): %zu entries", imatrix_file.c_str(),
                         imx.legacy ? "legacy" : "GGUF", n_loaded);
            if (imx.entries.size() != n_loaded) std::fprintf(stderr, ", %zu after filtering", imx.entries.size());
            if (imx.chunk_count > 0) std::fprintf(stderr, ", %d chunks", imx.chunk_count);
            if (!imx.datasets.empty()) std::fprintf(stderr, " of %s", imx.datasets.front().c_str());
            std::fprintf(stderr, "\n");
            // as llama-quantize: an imatrix left empty by the filters is no imatrix at all
            if (!imx.entries.empty()) opt.importance = &imx;
        }
        opt.on_tensor = [](const tools::tensor_plan& p, std::size_t i, std::size_t n) {
            std::string shape;
            for (int d = 0; d < p.n_dims; ++d) shape += (d ? ", " : "") + std::to_string(p.ne[std::size_t(d)]);
            shape = "[" + shape + "]";
            std::fprintf(stderr, "[%4zu/%4zu] %-36s %-14s %6s -> %-6s %9.3f MiB -> %9.3f MiB%s\n", i + 1, n,
                         p.name.c_str(), shape.c_str(), std::string(qinfer::type_name(p.from)).c_str(),
                         std::string(qinfer::type_name(p.to)).c_str(), mib(p.bytes_from), mib(p.bytes_to),
                         p.fallback ? " (fallback: row length does not fit the mix's type)" : "");
        };
        const auto r = tools::quantize_model(pos[0], pos[1], opt);
        std::fprintf(stderr, "qinfer-quantize: model size  = %9.2f MiB (%.2f BPW)\n", mib(r.bytes_from), r.bpw_from());
        std::fprintf(stderr, "qinfer-quantize: quant size  = %9.2f MiB (%.2f BPW)\n", mib(r.bytes_to), r.bpw_to());
        if (opt.importance) {
            std::size_t quantized = 0, with = 0;
            for (const auto& p : r.tensors) {
                quantized += p.to != p.from && qinfer::info(p.to).quantized;
                with += p.used_imatrix;
            }
            // the others: no entry in the imatrix (or token_embd's of another size)
            std::fprintf(stderr, "qinfer-quantize: %zu of %zu quantized tensors used the importance matrix\n", with,
                         quantized);
        }
        if (r.n_fallback)
            std::fprintf(stderr, "qinfer-quantize: %d of %zu tensors needed a fallback type\n", r.n_fallback,
                         r.tensors.size());
        std::fprintf(stderr, "qinfer-quantize: wrote %s in %.2f s\n", pos[1].c_str(), r.seconds);
    } catch (const std::exception& e) {
        std::string what = e.what();
        if (what.starts_with("qinfer quantize: ")) what.erase(0, 17);
        // The library names its options; this tool's users know them as flags.
        for (const auto& [lib, flag] : {std::pair<std::string, std::string>{"quantize_options::allow_requantize", "--allow-requantize"},
                                        {"quantize_options::importance", "--imatrix FILE"}})
            if (const auto at = what.find(lib); at != std::string::npos) what.replace(at, lib.size(), flag);
        if (what.find("split models") != std::string::npos) what += " (llama-gguf-split --merge)";
        std::fprintf(stderr, "qinfer-quantize: %s\n", what.c_str());
        return 1;
    }
    return 0;
}
