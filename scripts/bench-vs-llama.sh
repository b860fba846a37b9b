#!/usr/bin/env bash
# Side-by-side speed: qinfer-bench and llama.cpp's llama-bench on the same GGUF files, same
# thread count, in one run (absolute times on a shared machine drift; the ratio is the result).
#
#   scripts/bench-vs-llama.sh [-t THREADS] [-p PROMPT] [-n GEN] [-r REPS] [-b GB/S] TYPE...
#       TYPE: F16 Q8_0 Q4_0 Q4_K_M Q5_K_M Q6_K ... (TinyLlama-1.1B shape, random weights,
#       quantized by llama.cpp's own quantizer; see benchmarks/make-bench-model.cpp)
#       -b: the machine's read bandwidth for these threads; adds decode as a share of the
#           bandwidth limit (bandwidth / bytes read per token, taken as the file size).
#
# llama-bench is built from the llama.cpp source that node-llama-cpp@3.21.1 bundles
# (llama/gitRelease.bundle, installed into build/oracle by `ctest -R oracle-install`), in a
# scratch folder outside the project ($SCRATCH, default /tmp/qinfer-llama-bench).
set -euo pipefail
cd "$(dirname "$0")/.."
threads=2 prompt=128 gen=32 reps=3 bw=0
while getopts "t:p:n:r:b:" o; do
  case $o in t) threads=$OPTARG ;; p) prompt=$OPTARG ;; n) gen=$OPTARG ;; r) reps=$OPTARG ;; b) bw=$OPTARG ;; *) exit 2 ;; esac
done
shift $((OPTIND - 1))
[ $# -gt 0 ] || { echo "usage: $0 [-t T] [-p P] [-n N] [-r R] TYPE..." >&2; exit 2; }
build=${BUILD:-build}
scratch=${SCRATCH:-/tmp/qinfer-llama-bench}
models=${MODELS:-$scratch/models}

cmake -S . -B "$build" >/dev/null
cmake --build "$build" -j2 --target qinfer-bench make-bench-model
ctest --test-dir "$build" -R oracle-install >/dev/null
bundle=$build/oracle/node_modules/node-llama-cpp/llama/gitRelease.bundle
if [ ! -x "$scratch/llama.cpp/build/bin/llama-bench" ]; then
  echo "building llama-bench from $bundle in $scratch (once; several minutes)"
  rm -rf "$scratch/llama.cpp" && mkdir -p "$scratch"
  git clone -q "$bundle" "$scratch/llama.cpp"
  cmake -S "$scratch/llama.cpp" -B "$scratch/llama.cpp/build" -DCMAKE_BUILD_TYPE=Release -DGGML_NATIVE=ON \
    -DLLAMA_CURL=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF >/dev/null
  cmake --build "$scratch/llama.cpp/build" -j2 --target llama-bench >/dev/null
fi
"$build/benchmarks/make-bench-model" "$models" "$@"

echo
echo "| type | size | pp$prompt qinfer | pp$prompt llama.cpp | ratio | tg$gen qinfer | tg$gen llama.cpp | ratio | tg % of bw (qinfer / llama.cpp) |"
echo "|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for type in "$@"; do
  f=$models/tinyllama-shape-$type.gguf
  q=$("$build/benchmarks/qinfer-bench" -m "$f" -p "$prompt" -n "$gen" -t "$threads" -r "$reps" -o json 2>/dev/null)
  l=$("$scratch/llama.cpp/build/bin/llama-bench" -m "$f" -p "$prompt" -n "$gen" -t "$threads" -r "$reps" -o json 2>/dev/null)
  python3 - "$type" "$f" "$prompt" "$gen" "$bw" <<PY
import json, os, sys
q = json.loads('''$q'''); l = json.loads('''$l''')
t, f, p, n, bw = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5])
def ours(test): return next(r["t_s"] for r in q if r["test"] == test)
def theirs(np, ng): return next(r["avg_ts"] for r in l if r["n_prompt"] == np and r["n_gen"] == ng)
qp, qg = ours("pp" + p), ours("tg" + n)
lp, lg = theirs(int(p), 0), theirs(0, int(n))
size = os.path.getsize(f)
share = f"{100 * qg * size / (bw * 1e9):.0f}% / {100 * lg * size / (bw * 1e9):.0f}%" if bw > 0 else "-"
print(f"| {t} | {size / 2**30:.2f} GiB | {qp:.1f} | {lp:.1f} | {qp / lp:.2f}x | {qg:.1f} | {lg:.1f} | {qg / lg:.2f}x | {share} |")
PY
done
