#!/usr/bin/env bash
# Reproduce qinfer's default model, examples/models/qinfer-kjv-3m-f16.gguf:
#
#   bash scripts/train-default-model.sh [OUT_DIR]        (default build/default-model)
#
# 1. installs the Debian packages it needs (root, or sudo): python3-torch, bible-kjv (the `bible`
#    reader) with bible-kjv-text (the King James Bible, public domain), libopenblas0-pthread (the
#    Debian torch build uses the reference BLAS otherwise, ~8x slower);
# 2. trains the tokenizer and the model (scripts/train-default-model.py, 2 threads, nice 5;
#    ~45 min on 2 shared cores); the corpus goes to OUT_DIR only, never into the repository;
# 3. exports OUT_DIR/model.bin to OUT_DIR/qinfer-kjv-3m-f16.gguf with qinfer's GGUF writer
#    (scripts/export-default-model.cpp); copy it to examples/models/ to replace the committed one.
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-build/default-model}
packages="python3-torch bible-kjv bible-kjv-text libopenblas0-pthread g++"
missing=$(dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' $packages 2>/dev/null | awk '$1 != "ii" {print $2}' || true)
if [ -n "$missing" ] || ! dpkg-query -W $packages > /dev/null 2>&1; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo=sudo
  $sudo apt-get install -y $packages
fi
mkdir -p "$out"
OPENBLAS_NUM_THREADS=2 OMP_NUM_THREADS=2 nice -n 5 /usr/bin/python3 scripts/train-default-model.py --out "$out"
g++ -std=c++20 -O2 -I include scripts/export-default-model.cpp -o "$out/export-default-model"
"$out/export-default-model" "$out/model.bin" "$out/qinfer-kjv-3m-f16.gguf"
sha256sum "$out/qinfer-kjv-3m-f16.gguf"
