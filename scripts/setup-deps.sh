#!/usr/bin/env bash
# Installs what building qinfer and running its tests needs on Debian 12 / Ubuntu.
#   --dev   also the fuzzing toolchain (clang-19 + libFuzzer runtime) and clang-14 with libc++
#           (the sampler's cross-library check) used by .ci/run
set -euo pipefail
pkgs=(cmake g++ make libeigen3-dev libxsimd-dev doctest-dev python3)
if [ "${1:-}" = "--dev" ]; then pkgs+=(clang-19 libclang-rt-19-dev unicode-data clang-14 libc++-dev libc++abi-dev); fi
# node + npm fetch llama.cpp's libraries for the conformance tests; keep a newer node if present
command -v npm >/dev/null || pkgs+=(nodejs npm)
missing=()
for p in "${pkgs[@]}"; do dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p"); done
if [ ${#missing[@]} -eq 0 ]; then echo "setup-deps: all packages present"; exit 0; fi
sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
