#!/usr/bin/env bash
# GGUF export, measured against llama.cpp's own converter in the same run, then checked by llama.cpp itself.
#  1. `sft export` of a model folder (default: SmolLM2-135M-Instruct, ~/.cache/sft/models/smollm2-135m-instruct made
#     by scripts/convert_smollm2.py) vs llama.cpp's convert_hf_to_gguf.py (the peer, from the llama-cpp-python sdist
#     scripts/setup-llama-venv.sh unpacks) for each --outtype: median wall time of N runs, peak RSS, file size, ratio.
#  2. tests/io/test_gguf_llama_cpp.py (greedy continuations vs llama.cpp, chat template, q8_0 perplexity, the
#     converter's bytes) with its printed figures.
# usage: bench/gguf_llama_cpp.sh [BUILD_DIR] [--model DIR] [--runs 3] [--types "f16 q8_0"] [--no-tests]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true
model="$HOME/.cache/sft/models/smollm2-135m-instruct" runs=3 types="f16 q8_0" tests=1
while [ $# -gt 0 ]; do
  case "$1" in
    --model) model=$2; shift ;; --runs) runs=$2; shift ;; --types) types=$2; shift ;; --no-tests) tests=0 ;;
    *) echo "gguf_llama_cpp: unknown flag $1" >&2; exit 2 ;;
  esac
  shift
done
py=$("$root/scripts/setup-venv.sh")/bin/python
llama=$("$root/scripts/setup-llama-venv.sh")
sft="$build/src/cli/sft"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/stub"
printf 'class SentencePieceProcessor:\n    pass\n' > "$work/stub/sentencepiece.py"  # the converter's probe; unused
echo "machine: $(nproc) cores, $(grep -o 'avx512_bf16\|amx_bf16\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "model: $model"

# median wall seconds and max peak RSS (MiB) of `runs` runs of a command
measure() {
  local times=() rss=0 t r
  for _ in $(seq "$runs"); do
    /usr/bin/time -f "%e %M" -o "$work/time" "$@" >/dev/null 2>"$work/err" || { cat "$work/err" >&2; exit 1; }
    read -r t r < "$work/time"
    times+=("$t")
    [ "$r" -gt "$rss" ] && rss=$r
  done
  printf '%s %d\n' "$(printf '%s\n' "${times[@]}" | sort -g | sed -n "$(( (runs + 1) / 2 ))p")" $((rss / 1024))
}

for t in $types; do
  read -r s_t s_m < <(measure "$sft" export --model "$model" --outfile "$work/sft-$t.gguf" --outtype "$t" --overwrite)
  read -r c_t c_m < <(measure env PYTHONPATH="$llama/llama.cpp/gguf-py:$work/stub" OMP_NUM_THREADS=2 "$py" \
    "$llama/llama.cpp/convert_hf_to_gguf.py" "$model" --outfile "$work/conv-$t.gguf" --outtype "$t")
  printf '%-5s sft export %6.2f s %6d MiB %8.1f MB | llama.cpp convert_hf_to_gguf.py %6.2f s %6d MiB %8.1f MB | time ratio %.2fx, RSS ratio %.2f\n' \
    "$t" "$s_t" "$s_m" "$(echo "$(stat -c %s "$work/sft-$t.gguf") / 1000000" | bc -l)" "$c_t" "$c_m" \
    "$(echo "$(stat -c %s "$work/conv-$t.gguf") / 1000000" | bc -l)" "$(echo "$c_t / $s_t" | bc -l)" \
    "$(echo "$s_m / $c_m" | bc -l)"
done
if [ "$tests" = 1 ]; then
  cd "$root/tests/io"
  SFT_BIN="$sft" SFT_BUILD_DIR="$build" SFT_SMOLLM2_DIR="$model" "$py" -m pytest -q -s -p no:cacheprovider \
    test_gguf_llama_cpp.py 2>&1 | grep -E 'identical|perplexity|diverged|converter writes|passed|failed|skipped|Error'
fi
