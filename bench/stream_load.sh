#!/usr/bin/env bash
# Peak memory of loading a big bf16 folder (bench/make_random_model.py, sharded like the real checkpoint) three ways,
# each in its own process: streamed into bf16 (the bf16-only LoRA base), streamed into NF4 + double quantisation (the
# QLoRA base: projections quantised, embedding / LM head bf16), and today's LoRA load path (Model::load: an fp32 frozen
# base). Target (issue 25): the bf16 load's peak RSS <= stored size + 1 GiB.
# usage: bench/stream_load.sh [BUILD_DIR] [--shape qwen2.5-7b|qwen2.5-14b|qwen2.5-0.5b] [--layers N] [--no_baseline]
# The 7B folder is ~15 GB on disk and its fp32 baseline needs ~30 GB of memory: on a 24 GB machine pass --no_baseline.
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then build=$1; shift; fi
shape=qwen2.5-7b layers="" baseline=1
while [ $# -gt 0 ]; do
  case $1 in
    --shape) shape=$2; shift 2 ;; --layers) layers=$2; shift 2 ;; --no_baseline) baseline=0; shift ;;
    *) echo "stream_load.sh: unknown flag $1" >&2; exit 2 ;;
  esac
done
venv=${SFT_VENV:-}
if [ -z "$venv" ]; then
  for d in "$HOME"/.cache/sft/venv-*/; do [ -f "$d/.complete" ] && venv=${d%/} && break; done
fi
[ -n "$venv" ] || { echo "stream_load.sh: no oracle venv (set SFT_VENV)" >&2; exit 1; }
model=$("$venv/bin/python" "$root/bench/make_random_model.py" "$shape" ${layers:+--layers "$layers"} | tail -1)
echo "model $model, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$build/bench/stream_load" --model "$model" --format bf16
"$build/bench/stream_load" --model "$model" --format nf4 --double_quant 1
[ "$baseline" = 1 ] && "$build/bench/stream_load" --model "$model" --baseline 1
exit 0
