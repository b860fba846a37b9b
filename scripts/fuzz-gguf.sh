#!/usr/bin/env bash
# Fuzzes the GGUF reader with libFuzzer under AddressSanitizer + UndefinedBehaviorSanitizer.
#
#   FUZZ_SECONDS=60 scripts/fuzz-gguf.sh
#
# Builds tests/fuzz/gguf_fuzz.cpp with clang, runs it for FUZZ_SECONDS on a scratch copy of
# the seed corpus (tests/fuzz/corpus/), and exits non-zero on any crash, sanitizer report,
# timeout or out-of-memory. A failing input is kept and printed (hex) so it can be turned
# into a regression test in tests/gguf/test_hostile.cpp.
# Environment: FUZZ_SECONDS (60), CXX_FUZZ (clang++-19), FUZZ_WORK_DIR (a new temp dir),
# FUZZ_JOBS (1; more runs parallel workers).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${FUZZ_SECONDS:-60}
cxx=${CXX_FUZZ:-clang++-19}
jobs=${FUZZ_JOBS:-1}
work=${FUZZ_WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/qinfer-fuzz-gguf.XXXXXX")}
mkdir -p "$work"

if ! command -v "$cxx" >/dev/null; then
  echo "fuzz-gguf: $cxx not found (install clang-19 and libclang-rt-19-dev: scripts/setup-deps.sh --dev)" >&2
  exit 1
fi

bin=$work/gguf_fuzz
echo "fuzz-gguf: building $bin with $cxx (ASan + UBSan + libFuzzer)"
"$cxx" -std=c++20 -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all \
  -I "$root/include" "$root/tests/fuzz/gguf_fuzz.cpp" -o "$bin"

# Scratch copy: libFuzzer adds the inputs it finds interesting to the corpus directory.
corpus=$work/corpus
mkdir -p "$corpus"
cp "$root"/tests/fuzz/corpus/*.gguf "$corpus"/
echo "fuzz-gguf: seed corpus: $(ls "$corpus" | wc -l) files from tests/fuzz/corpus"

# Tokens worth splicing in: the magic, the special key, and little-endian type ids and counts.
dict=$work/gguf.dict
cat > "$dict" <<'DICT'
"GGUF"
"general.alignment"
"general.architecture"
"\x03\x00\x00\x00"
"\x02\x00\x00\x00"
"\x08\x00\x00\x00"
"\x09\x00\x00\x00"
"\x0c\x00\x00\x00"
"\x20\x00\x00\x00"
"\x40\x00\x00\x00"
"\xff\xff\xff\xff"
"\xff\xff\xff\xff\xff\xff\xff\xff"
"\x00\x00\x00\x00\x00\x00\x00\x80"
"\x00\x00\x00\x40\x00\x00\x00\x00"
DICT

echo "fuzz-gguf: running for $seconds s ($jobs job(s)); artifacts go to $work/"
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
args=(-max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024
      -dict="$dict" -artifact_prefix="$work/" -print_final_stats=1)
if [ "$jobs" -gt 1 ]; then args+=(-jobs="$jobs" -workers="$jobs"); fi
set +e
(cd "$work" && "$bin" "${args[@]}" "$corpus" 2>&1 | tee "$work/fuzz.log" | grep -Ev '^(#[0-9]+|"|###### |\s+NEW_FUNC)')
rc=${PIPESTATUS[0]}
set -e

shopt -s nullglob
findings=("$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* "$work"/slow-unit-*)
if [ "$rc" -ne 0 ] || [ ${#findings[@]} -gt 0 ]; then
  echo "fuzz-gguf: FAILED (exit status $rc, ${#findings[@]} finding(s)); log: $work/fuzz.log" >&2
  for f in "${findings[@]}"; do
    echo "--- $f ($(stat -c %s "$f") bytes):" >&2
    od -A d -t x1 "$f" | head -40 >&2
  done
  exit 1
fi
echo "fuzz-gguf: OK: no findings in $seconds s; corpus grew to $(ls "$corpus" | wc -l) inputs ($work)"
