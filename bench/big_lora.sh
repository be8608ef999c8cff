#!/usr/bin/env bash
# LoRA / QLoRA on the model sizes people tune (Qwen2.5-7B, -14B shapes; random weights written once by
# bench/make_random_model.py), LoRA r 16 all-linear, batch 1 x 512, gradient checkpointing, bf16 compute, each side in
# its own process (peak RSS is per process) one after the other in the same run:
#   transformers + peft, bf16 base                     (bench/peers/torch_big_lora.py --quant none)
#   transformers + peft + bitsandbytes NF4 + dq         (bench/peers/torch_big_lora.py --quant nf4), where the pinned
#                                                        bitsandbytes runs on this CPU (a failure is printed, not fatal)
#   sft bf16-only base / sft QLoRA                      skipped until the decoder reads frozen weights in their stored
#                                                        form (issue 25 part B: `sft train --load_in_4bit` appears)
# Prints each side's JSON line (s/step, tokens/s, peak RSS at load and in training) and the ratios against the peers.
# usage: bench/big_lora.sh [BUILD_DIR] [--shape qwen2.5-7b|qwen2.5-14b|qwen2.5-0.5b] [--layers N] [--steps 2]
#                          [--seq 512] [--sides bf16,nf4]
# The 7B/14B runs need most of a 24 GB machine and ~15 / ~30 GB of disk for the folder (`df -h`): run them alone.
# Smoke: bench/big_lora.sh build --shape qwen2.5-0.5b --layers 2 --steps 1
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then build=$1; shift; fi
shape=qwen2.5-7b layers="" steps=2 seq=512 sides=bf16,nf4
while [ $# -gt 0 ]; do
  case $1 in
    --shape) shape=$2 ;; --layers) layers=$2 ;; --steps) steps=$2 ;; --seq) seq=$2 ;; --sides) sides=$2 ;;
    *) echo "big_lora.sh: unknown flag $1" >&2; exit 2 ;;
  esac
  shift 2
done
# The oracle venv (tests/requirements.txt: torch, transformers, peft, bitsandbytes), found, never built here.
venv=${SFT_VENV:-}
if [ -z "$venv" ]; then
  for d in "$HOME"/.cache/sft/venv-*/; do [ -f "$d/.complete" ] && venv=${d%/} && break; done
fi
[ -n "$venv" ] && [ -x "$venv/bin/python" ] || { echo "big_lora.sh: no oracle venv (set SFT_VENV)" >&2; exit 1; }
threads=$(nproc)
model=$("$venv/bin/python" "$root/bench/make_random_model.py" "$shape" ${layers:+--layers "$layers"} | tail -1)
echo "model $model ($(du -sh "$model" | cut -f1) on disk), load average $(cut -d' ' -f1-3 /proc/loadavg)," \
     "cpu flags: $(grep -o 'avx512_bf16\|amx_bf16\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
declare -A line
for side in ${sides//,/ }; do
  quant=none; [ "$side" = nf4 ] && quant=nf4
  if out=$(OMP_NUM_THREADS=$threads "$venv/bin/python" "$root/bench/peers/torch_big_lora.py" --model "$model" \
           --quant "$quant" --seq "$seq" --steps "$steps" --threads "$threads" 2>/tmp/big_lora_$$.err | tail -1); then
    line[peer_$side]=$out
    echo "$out"
  else
    echo "{\"peer\": \"transformers+peft $side\", \"failed\": \"$(tail -1 /tmp/big_lora_$$.err | tr '"' "'")\"}"
  fi
  rm -f /tmp/big_lora_$$.err
  if "$build/src/cli/sft" train --help 2>/dev/null | grep -q -- --load_in_4bit; then
    echo "{\"side\": \"sft $side\", \"skipped\": \"sft train takes --load_in_4bit: add its command here (part B)\"}"
  else
    echo "{\"side\": \"sft $side\", \"skipped\": \"the decoder does not read bf16 / 4-bit frozen weights yet (issue 25 part B)\"}"
  fi
done
