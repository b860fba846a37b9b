#!/usr/bin/env bash
# Checks that qinfer can be dropped into another project, end to end, in a temporary directory:
#   1. the project version (CMakeLists.txt) equals QINFER_VERSION_* in core/config.hpp
#   2. single_include/qinfer/qinfer.hpp is up to date (make-single-header.py --check)
#   3. cmake --install into a temporary prefix (headers, CMake package, qinfer.pc)
#   4. tests/downstream/find-package      find_package(qinfer) against that prefix
#   5. tests/downstream/add-subdirectory  add_subdirectory(<qinfer source>)
#   6. the single header alone, copied into the consumer (plus Eigen and xsimd include paths)
#   7. pkg-config: --modversion, and the consumer compiled with $(pkg-config --cflags qinfer)
# Each consumer (tests/downstream/consumer.cpp) runs its self-test without a model (quantize,
# dequantize, GGUF write/read in memory) and, when a model is available, generates a few tokens.
#
#   scripts/check-downstream.sh [MODEL.gguf]
# Model: the argument, else $QINFER_MODEL, else ../shared/refdata/models/stories260K.gguf if
# present, else none. Env: CXX (default c++), JOBS (default 2), KEEP_TMP=1 keeps the temp dir.
# Exits non-zero on any failure.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cxx=${CXX:-c++}
jobs=${JOBS:-2}
model=${1:-${QINFER_MODEL:-}}
if [ -z "$model" ] && [ -f "$root/../shared/refdata/models/stories260K.gguf" ]; then
  model=$(cd "$root/../shared/refdata/models" && pwd)/stories260K.gguf
fi
if [ -n "$model" ] && [ ! -f "$model" ]; then echo "check-downstream: model $model not found" >&2; exit 2; fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/qinfer-downstream.XXXXXX")
ok=0
cleanup() {
  if [ "$ok" = 1 ] && [ "${KEEP_TMP:-0}" != 1 ]; then rm -rf "$tmp"; else echo "check-downstream: files kept in $tmp"; fi
}
trap cleanup EXIT

start=$SECONDS
step() { echo; echo "=== check-downstream: $* ($((SECONDS - start)) s)"; }
fail() { echo "check-downstream: FAILED: $*" >&2; exit 1; }
# Prints a command, runs it with its output in a log; shows the log's tail if it fails.
log_n=0
run() {
  log_n=$((log_n + 1))
  local log="$tmp/log.$log_n"
  echo "+ $*"
  if ! "$@" >"$log" 2>&1; then
    tail -n 60 "$log" >&2
    fail "$* (full log: $log)"
  fi
}
# Prints a command and runs it with its output shown.
show() { echo "+ $*"; "$@" || fail "$*"; }
# No qinfer header may come from outside the way under test (e.g. the source tree).
deps_avoid() {  # deps_avoid <build dir> <forbidden dir>...
  local dir=$1; shift
  local files; files=$(find "$dir" -name '*.d' -type f)
  [ -n "$files" ] || fail "no dependency files under $dir"
  for bad in "$@"; do
    if grep -lF "$bad/" $files >/dev/null; then fail "$dir: the build used headers from $bad"; fi
  done
  echo "  (dependency files: no headers from $*)"
}
# Runs the consumer without a model (self-test) and with the model, if any.
run_consumer() {
  show "$1"
  if [ -n "$model" ]; then show "$1" "$model"; fi
}

echo "check-downstream: qinfer at $root, temp dir $tmp, CXX=$cxx, model: ${model:-none}"

step "1. version: CMakeLists.txt project() vs QINFER_VERSION_* in include/qinfer/core/config.hpp"
version=$(sed -nE 's/^[[:space:]]*project[[:space:]]*\([[:space:]]*qinfer[[:space:]]+VERSION[[:space:]]+([0-9]+\.[0-9]+\.[0-9]+).*/\1/p' "$root/CMakeLists.txt")
[ -n "$version" ] || fail "no 'project(qinfer VERSION x.y.z' in CMakeLists.txt"
config=$root/include/qinfer/core/config.hpp
macro() { sed -nE "s/^[[:space:]]*#[[:space:]]*define[[:space:]]+QINFER_VERSION_$1[[:space:]]+\"?([0-9.]+)\"?[[:space:]]*$/\1/p" "$config"; }
mmp="$(macro MAJOR).$(macro MINOR).$(macro PATCH)"
vstring=$(macro STRING)
echo "  CMakeLists.txt: $version; config.hpp: QINFER_VERSION_MAJOR.MINOR.PATCH = $mmp, QINFER_VERSION_STRING = \"$vstring\""
[ "$mmp" = "$version" ] || fail "QINFER_VERSION_MAJOR/MINOR/PATCH ($mmp) != project version ($version)"
[ "$vstring" = "$version" ] || fail "QINFER_VERSION_STRING ($vstring) != project version ($version)"

step "2. single header up to date"
# Reported at the end: the other checks still run (step 6 uses the committed file as it is).
stale=0
echo "+ python3 $root/scripts/make-single-header.py --check"
python3 "$root/scripts/make-single-header.py" --check || stale=1

step "3. install qinfer into a temporary prefix"
prefix=$tmp/prefix
run cmake -S "$root" -B "$tmp/qinfer-build" -DQINFER_BUILD_TESTS=OFF -DQINFER_BUILD_EXAMPLES=OFF \
  -DQINFER_BUILD_BENCHMARKS=OFF -DCMAKE_INSTALL_PREFIX="$tmp/not-this-prefix"
run cmake --install "$tmp/qinfer-build" --prefix "$prefix"
for f in include/qinfer/qinfer.hpp include/qinfer/core/config.hpp lib/cmake/qinfer/qinferConfig.cmake \
         lib/cmake/qinfer/qinferConfigVersion.cmake lib/cmake/qinfer/qinferTargets.cmake share/pkgconfig/qinfer.pc; do
  [ -f "$prefix/$f" ] || fail "cmake --install did not install $f"
done
echo "  installed $(find "$prefix/include" -name '*.hpp' | wc -l) headers, the CMake package and qinfer.pc"

step "4. find_package(qinfer) from the installed prefix"
b=$tmp/find-package
run cmake -S "$root/tests/downstream/find-package" -B "$b" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" \
  -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF
found=$(sed -n 's/^qinfer_DIR:PATH=//p' "$b/CMakeCache.txt")
[ "$found" = "$prefix/lib/cmake/qinfer" ] || fail "find_package found qinfer in '$found', not in $prefix"
echo "  qinfer_DIR = $found"
run cmake --build "$b" -j"$jobs"
deps_avoid "$b" "$root/include"
run_consumer "$b/consumer"

step "5. add_subdirectory(<qinfer source>)"
b=$tmp/add-subdirectory
run cmake -S "$root/tests/downstream/add-subdirectory" -B "$b" -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_COMPILER="$cxx" \
  -DQINFER_SOURCE_DIR="$root"
for opt in TESTS EXAMPLES BENCHMARKS; do
  grep -q "^QINFER_BUILD_$opt:BOOL=OFF$" "$b/CMakeCache.txt" || fail "as a subproject, QINFER_BUILD_$opt should default to OFF"
done
run cmake --build "$b" -j"$jobs"
deps_avoid "$b" "$prefix"
run_consumer "$b/consumer"

# Flags the CMake target would give: C++20 and no FMA contraction (bit-exact quantization).
cxxflags=(-std=c++20 -O2 -ffp-contract=off -Wall -Wextra -DQINFER_DOWNSTREAM_UMBRELLA
          -DQINFER_DOWNSTREAM_EXPECTED_VERSION="\"$version\"")

step "6. single header: single_include/qinfer/qinfer.hpp copied alone, with Eigen and xsimd include paths"
b=$tmp/single-header
mkdir -p "$b/vendor/qinfer"
cp "$root/single_include/qinfer/qinfer.hpp" "$b/vendor/qinfer/"
read -r -a depflags <<<"$(pkg-config --cflags eigen3 xsimd)" || fail "pkg-config --cflags eigen3 xsimd"
run "$cxx" "${cxxflags[@]}" -DQINFER_DOWNSTREAM_WAY='"single header"' -I"$b/vendor" "${depflags[@]}" \
  "$root/tests/downstream/consumer.cpp" -o "$b/consumer" -pthread -MD -MF "$b/consumer.d"
deps_avoid "$b" "$root/include" "$prefix"
run_consumer "$b/consumer"

step "7. pkg-config: qinfer.pc from the installed prefix"
export PKG_CONFIG_PATH=$prefix/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}
pcversion=$(pkg-config --modversion qinfer) || fail "pkg-config --modversion qinfer"
echo "  pkg-config --modversion qinfer: $pcversion"
[ "$pcversion" = "$version" ] || fail "qinfer.pc version $pcversion != $version"
pcflags=$(pkg-config --cflags qinfer) || fail "pkg-config --cflags qinfer"
pclibs=$(pkg-config --libs qinfer) || fail "pkg-config --libs qinfer"
echo "  pkg-config --cflags --libs qinfer: $pcflags $pclibs"
b=$tmp/pkg-config
mkdir -p "$b"
read -r -a pcflags_a <<<"$pcflags"
read -r -a pclibs_a <<<"$pclibs"
run "$cxx" "${cxxflags[@]}" -DQINFER_DOWNSTREAM_WAY='"pkg-config"' "${pcflags_a[@]}" \
  "$root/tests/downstream/consumer.cpp" -o "$b/consumer" "${pclibs_a[@]}" -MD -MF "$b/consumer.d"
deps_avoid "$b" "$root/include"
want=$(cd "$prefix/include" && pwd -P)
has_inc=0
for f in "${pcflags_a[@]}"; do
  case $f in -I*) [ -d "${f#-I}" ] && [ "$(cd "${f#-I}" && pwd -P)" = "$want" ] && has_inc=1 ;; esac
done
[ "$has_inc" = 1 ] || fail "pkg-config --cflags qinfer has no -I for $prefix/include"
run_consumer "$b/consumer"

[ "$stale" = 0 ] || fail "single_include/qinfer/qinfer.hpp is out of date (step 2): run python3 scripts/make-single-header.py"
ok=1
step "all downstream checks passed (qinfer $version)"
