#!/usr/bin/env bash
# What quantization costs the default model: perplexity on the held-out KJV text, and KL
# divergence / top-token agreement against the F16 model, for each of llama.cpp's file types.
#
#   bash scripts/default-model-quality.sh [BUILD_DIR] [WORK_DIR]
#
# BUILD_DIR (default build) must have qinfer-quantize and qinfer-perplexity built; WORK_DIR
# (default build/default-model) must have eval.txt, the held-out text that
# scripts/train-default-model.py writes. Prints a Markdown table (also WORK_DIR/quality.md).
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
work=${2:-build/default-model}
model=${MODEL:-examples/models/qinfer-kjv-3m-f16.gguf}
ctx=256
types=${TYPES:-"Q8_0 Q6_K Q5_K_M Q5_K_S Q5_1 Q5_0 Q4_K_M Q4_K_S Q4_1 Q4_0 IQ4_NL IQ4_XS Q3_K_L Q3_K_M Q3_K_S Q2_K"}
q="$build/examples/qinfer-quantize"
p="$build/examples/qinfer-perplexity"
[ -f "$work/eval.txt" ] || { echo "no $work/eval.txt: run scripts/train-default-model.py first (it writes the held-out text)" >&2; exit 1; }

"$p" -m "$model" -f "$work/eval.txt" -c $ctx -t 2 --kl-divergence-base "$work/f16.kld" > "$work/ppl-F16.txt" 2> "$work/ppl-F16.err"
mib() { awk -v b="$(stat -c %s "$1")" 'BEGIN { printf "%.2f", b / 1048576 }'; }
{
  echo "| type | file size (MiB) | PPL | PPL ratio vs F16 | mean KLD vs F16 | 99 % KLD | same top token |"
  echo "|---|---:|---:|---:|---:|---:|---:|"
  echo "| F16 | $(mib "$model") | $(sed -n 's/^Final estimate: PPL = \([0-9.]*\) +\/- \([0-9.]*\).*/\1 ± \2/p' "$work/ppl-F16.txt") | 1 | 0 | 0 | 100 % |"
  for t in $types; do
    f="$work/kjv-$t.gguf"
    "$q" "$model" "$f" "$t" 2 > "$work/quantize-$t.txt" 2>&1
    "$p" -m "$f" -t 2 --kl-divergence --kl-divergence-base "$work/f16.kld" > "$work/kld-$t.txt" 2> "$work/kld-$t.err"
    ppl=$(sed -n 's/^PPL(model) *: *\([0-9.]*\) +\/- \([0-9.]*\).*/\1 ± \2/p' "$work/kld-$t.txt")
    ratio=$(sed -n 's/^PPL ratio *: *\([0-9.]*\).*/\1/p' "$work/kld-$t.txt")
    kld=$(sed -n 's/^Mean KLD *: *\([0-9.e+-]*\) +\/- \([0-9.e+-]*\).*/\1 ± \2/p' "$work/kld-$t.txt")
    k99=$(sed -n 's/^99.0% KLD *: *\([0-9.e+-]*\).*/\1/p' "$work/kld-$t.txt")
    top=$(sed -n 's/^Same top token *: *\([0-9.]*\) %.*/\1 %/p' "$work/kld-$t.txt")
    echo "| $t | $(mib "$f") | $ppl | $ratio | $kld | $k99 | $top |"
  done
} | tee "$work/quality.md"
