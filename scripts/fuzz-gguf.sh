#!/usr/bin/env bash
# Fuzzes qinfer with libFuzzer under AddressSanitizer + UndefinedBehaviorSanitizer: two targets,
# each for FUZZ_SECONDS, one after the other.
#
#   FUZZ_SECONDS=60 scripts/fuzz-gguf.sh [gguf] [model]     (both when none is named)
#
#   gguf:  tests/fuzz/gguf_fuzz.cpp, the GGUF reader and writer; seeds tests/fuzz/corpus/
#   model: tests/fuzz/model_fuzz.cpp, past the reader: model configuration, weights,
#          vocabulary and tokenizer, chat template, one evaluation; seeds tests/fuzz/corpus-model/
#
# Each target is built with clang and run on a scratch copy of its seed corpus; the script
# exits non-zero on any crash, sanitizer report, timeout or out-of-memory. A failing input is
# kept and printed (hex) so it can be turned into a regression test (tests/gguf/test_hostile.cpp,
# tests/model/test_bad_models.cpp).
# Environment: FUZZ_SECONDS (60 per target), CXX_FUZZ (clang++-19), FUZZ_WORK_DIR (a new temp
# dir; one subfolder per target), FUZZ_JOBS (1; more runs parallel workers), FUZZ_KEEP_CORPUS
# (a folder: the grown corpora are copied there).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
seconds=${FUZZ_SECONDS:-60}
cxx=${CXX_FUZZ:-clang++-19}
jobs=${FUZZ_JOBS:-1}
base=${FUZZ_WORK_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/qinfer-fuzz.XXXXXX")}
mkdir -p "$base"
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(gguf model)

if ! command -v "$cxx" >/dev/null; then
  echo "fuzz: $cxx not found (install clang-19 and libclang-rt-19-dev: scripts/setup-deps.sh --dev)" >&2
  exit 1
fi

# Tokens worth splicing in: the magic, the special key, and little-endian type ids and counts;
# for the model target also the keys the loader reads.
gguf_dict='"GGUF"
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
"\x00\x00\x00\x40\x00\x00\x00\x00"'
model_dict='"block_count"
"embedding_length"
"feed_forward_length"
"context_length"
"attention.head_count"
"attention.head_count_kv"
"attention.key_length"
"rope.dimension_count"
"expert_count"
"expert_used_count"
"vocab_size"
"tokenizer.ggml.tokens"
"tokenizer.ggml.merges"
"tokenizer.ggml.scores"
"tokenizer.ggml.token_type"
"tokenizer.ggml.bos_token_id"
"tokenizer.chat_template"
"llama"
"qwen2"
"qwen3moe"
"gemma2"
"gpt2"
"<|im_start|>"
"\x01\x00\x00\x00"
"\x10\x00\x00\x00"
"\x00\x00\x80\x7f"'

export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1:allocator_may_return_null=0}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}
# All targets build at once, in the background: the later ones compile while the first runs.
declare -A build_pid
for target in "${targets[@]}"; do
  [ -f "$root/tests/fuzz/${target}_fuzz.cpp" ] || { echo "fuzz: unknown target '$target' (gguf, model)" >&2; exit 2; }
  mkdir -p "$base/$target"
  echo "fuzz-$target: building $base/$target/${target}_fuzz with $cxx (ASan + UBSan + libFuzzer)"
  "$cxx" -std=c++20 -gline-tables-only -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -ffp-contract=off \
    -I "$root/include" "$root/tests/fuzz/${target}_fuzz.cpp" -o "$base/$target/${target}_fuzz" \
    > "$base/$target/build.log" 2>&1 &
  build_pid[$target]=$!
done

failed=0
for target in "${targets[@]}"; do
  case "$target" in
    gguf) seeds=$root/tests/fuzz/corpus; max_len=4096; dict_text=$gguf_dict ;;
    model) seeds=$root/tests/fuzz/corpus-model; max_len=16384; dict_text="$gguf_dict
$model_dict" ;;
    *) echo "fuzz: unknown target '$target' (gguf, model)" >&2; exit 2 ;;
  esac
  work=$base/$target
  bin=$work/${target}_fuzz
  if ! wait "${build_pid[$target]}"; then
    cat "$work/build.log" >&2
    echo "fuzz-$target: build failed" >&2
    exit 1
  fi

  # Scratch copy: libFuzzer adds the inputs it finds interesting to the corpus directory.
  corpus=$work/corpus
  mkdir -p "$corpus"
  cp "$seeds"/*.gguf "$corpus"/
  echo "fuzz-$target: seed corpus: $(ls "$corpus" | wc -l) files from ${seeds#"$root"/}"
  printf '%s\n' "$dict_text" > "$work/$target.dict"

  echo "fuzz-$target: running for $seconds s ($jobs job(s)); artifacts go to $work/"
  args=(-max_total_time="$seconds" -max_len="$max_len" -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=1024
        -dict="$work/$target.dict" -artifact_prefix="$work/" -print_final_stats=1)
  if [ "$jobs" -gt 1 ]; then args+=(-jobs="$jobs" -workers="$jobs"); fi
  set +e
  (cd "$work" && "$bin" "${args[@]}" "$corpus" 2>&1 | tee "$work/fuzz.log" | grep -Ev '^(#[0-9]+|"|###### |\s+NEW_FUNC)')
  rc=${PIPESTATUS[0]}
  set -e

  shopt -s nullglob
  findings=("$work"/crash-* "$work"/leak-* "$work"/timeout-* "$work"/oom-* "$work"/slow-unit-*)
  shopt -u nullglob
  # Executions over all workers (with FUZZ_JOBS > 1 each writes its own fuzz-N.log).
  execs=$(awk '/^stat::number_of_executed_units:/ {s += $2} END {print s + 0}' "$work"/fuzz*.log)
  if [ "$rc" -ne 0 ] || [ ${#findings[@]} -gt 0 ]; then
    echo "fuzz-$target: FAILED (exit status $rc, ${#findings[@]} finding(s), $execs executions); log: $work/fuzz.log" >&2
    for f in "${findings[@]}"; do
      echo "--- $f ($(stat -c %s "$f") bytes):" >&2
      od -A d -t x1 "$f" | head -40 >&2
    done
    failed=1
    continue
  fi
  echo "fuzz-$target: OK: no findings in $seconds s, $execs executions; corpus grew to $(ls "$corpus" | wc -l) inputs ($work)"
  if [ -n "${FUZZ_KEEP_CORPUS:-}" ]; then mkdir -p "$FUZZ_KEEP_CORPUS/$target" && cp "$corpus"/* "$FUZZ_KEEP_CORPUS/$target"/; fi
done
exit $failed
