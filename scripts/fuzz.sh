#!/usr/bin/env bash
# Fuzzes sft's input parsers with libFuzzer (clang from Debian: clang-14 + libclang-rt-14-dev) under ASan + UBSan.
# Usage: scripts/fuzz.sh [TARGET|all] [SECONDS per target, default 60] [extra libFuzzer flags...]
# Targets (tests/fuzz/fuzz_<name>.cpp): safetensors safetensors_index tokenizer_load tokenizer_encode dataset
#   eval_tasks hf_config chat_template trainer_log, and parquet in a build with Apache Arrow (scripts/setup-arrow.sh).
#   Corpora grow in build-fuzz/corpus/<target> (seeded from tests/fuzz/seeds and the test fixtures;
#   tests/fuzz/<target>.dict, when present, is the libFuzzer dictionary); crashes land in
#   build-fuzz/crashes/<target>/. Prints executions and crashes per target; exits 1 on a crash. Campaigns run at
#   nice 19. CI does not fuzz: it replays the seed corpora (ctest -L fuzz, ASan build).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
target=${1:-all}
seconds=${2:-60}
shift $(( $# >= 2 ? 2 : $# )) || true
build="${SFT_FUZZ_BUILD_DIR:-$root/build-fuzz}"
cxx=${SFT_FUZZ_CXX:-clang++-14}
command -v "$cxx" >/dev/null || { echo "fuzz: $cxx not found (apt-get install clang-14 libclang-rt-14-dev)" >&2; exit 2; }

san="-fsanitize=fuzzer-no-link,address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER="$cxx" \
    -DCMAKE_CXX_FLAGS="$san" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" -DSFT_FUZZ=ON -DSFT_NATIVE=OFF \
    >/dev/null
fi
all=(safetensors safetensors_index tokenizer_load tokenizer_encode dataset eval_tasks hf_config chat_template trainer_log gguf)
grep -q 'fuzz_parquet' "$build/build.ninja" && all+=(parquet)  # only in a build with Apache Arrow
if [ "$target" = all ]; then targets=("${all[@]}"); else targets=("$target"); fi
if [ "${SFT_FUZZ_NO_BUILD:-0}" != 1 ]; then  # 1: the targets are built already (several campaigns in parallel)
  nice -n 19 cmake --build "$build" -j "${SFT_FUZZ_BUILD_JOBS:-2}" --target $(printf 'fuzz_%s ' "${targets[@]}") >/dev/null
fi

# Real tokenizers for the encode target (the fixtures are zstd-compressed).
toks=()
for t in qwen3 llama3; do
  d="$build/tokenizers/$t"
  if [ ! -f "$d/tokenizer.json" ]; then
    mkdir -p "$d"
    zstd -q -d -f "$root/tests/fixtures/tokenizers/$t/tokenizer.json.zst" -o "$d/tokenizer.json"
    cp "$root/tests/fixtures/tokenizers/$t/tokenizer_config.json" "$d/"
  fi
  toks+=("$d")
done
export SFT_FUZZ_TOKENIZERS=$(IFS=:; echo "${toks[*]}")

seeds_of() {
  local s="$root/tests/fuzz/seeds/$1" f="$root/tests/fixtures"
  case $1 in
    dataset | parquet) echo "$s $f/data" ;;
    eval_tasks) echo "$s $f/eval/data/mmlu/dev" ;;
    hf_config) echo "$s $f/io/configs" ;;
    chat_template) echo "$s $f/templates" ;;
    *) echo "$s" ;;
  esac
}

status=0
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t" crashes="$build/crashes/$t"
  mkdir -p "$corpus" "$crashes"
  log="$build/fuzz_$t.log"
  set +e
  # -timeout: one input taking longer than 10 s is a hang; -rss_limit_mb: an input needing > 2 GB is a finding.
  dict=(); [ -f "$root/tests/fuzz/$t.dict" ] && dict=(-dict="$root/tests/fuzz/$t.dict")
  nice -n 19 "$build/fuzz/fuzz_$t" "$corpus" $(seeds_of "$t") -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -print_final_stats=1 -artifact_prefix="$crashes/" "${dict[@]}" "$@" >"$log" 2>&1
  rc=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo "?")
  ncrash=$(find "$crashes" -type f | wc -l)
  printf 'fuzz_%-18s %12s executions in %ss, exit %d, %d crash file(s)  (log: %s)\n' "$t" "$execs" "$seconds" "$rc" \
    "$ncrash" "$log"
  [ "$rc" = 0 ] && [ "$ncrash" = 0 ] || status=1
done
exit $status
