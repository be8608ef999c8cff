#!/usr/bin/env bash
# LoRA / QLoRA on the model sizes people tune (Qwen2.5-7B, -14B shapes; random weights written once by
# bench/make_random_model.py), LoRA r 16 all-linear, batch 1 x 512, gradient checkpointing, bf16 compute, each side in
# its own process (peak RSS is per process) one after the other in the same run:
#   transformers + peft, bf16 base                     (bench/peers/torch_big_lora.py --quant none)
#   transformers + peft + bitsandbytes NF4 + dq         (bench/peers/torch_big_lora.py --quant nf4), where the pinned
#                                                        bitsandbytes runs on this CPU (a failure is printed, not fatal)
#   sft bf16-only base (--bf16)                          sft train --use_peft, the same LoRA, packed rows of --seq
#   sft QLoRA NF4 + dq (--load_in_4bit, compute bf16)     tokens (tests/fixtures/train/alpaca_tiny.json, --packing)
# Prints each side's JSON line (s/step = median over the steps after the first, tokens/s, peak RSS after loading =
# VmHWM when the model is loaded, and in training = the process's VmHWM at its end), sft's memory plan line, the
# ratios against the peers, the ISA and the kernels sft used.
# usage: bench/big_lora.sh [BUILD_DIR] [--shape qwen2.5-7b|qwen2.5-14b|qwen2.5-0.5b] [--layers N] [--steps 2]
#                          [--seq 512] [--sides bf16,nf4] [--peers yes|no]
# --peers no runs sft's sides only (the full-size RSS figures, when the peers' hour-long steps do not fit the run).
# The 7B/14B runs need most of a 24 GB machine and ~15 / ~30 GB of disk for the folder (`df -h`): run them alone.
# Smoke: bench/big_lora.sh build --shape qwen2.5-0.5b --layers 2 --steps 1
set -euo pipefail
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then build=$1; shift; fi
shape=qwen2.5-7b layers="" steps=2 seq=512 sides=bf16,nf4 peers=yes
while [ $# -gt 0 ]; do
  case $1 in
    --shape) shape=$2 ;; --layers) layers=$2 ;; --steps) steps=$2 ;; --seq) seq=$2 ;; --sides) sides=$2 ;; --peers) peers=$2 ;;
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
echo "sft kernels: $("$build/src/cli/sft" info --model "$model" 2>/dev/null | grep -m1 'cpu:' | sed 's/^ *//')"
echo "model $model ($(du -sh "$model" | cut -f1) on disk), load average $(cut -d' ' -f1-3 /proc/loadavg)," \
     "cpu flags: $(grep -o 'avx512_bf16\|amx_bf16\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
declare -A line
# One sft side: runs sft train in the background, samples VmHWM when the model is loaded (the "trainable params"
# line) and at the end; s/step from trainer_log.jsonl (--logging_steps 1, packed rows: tokens/s = seq / s per step).
sft_side() {
  local side=$1 out=/tmp/big_lora_sft_$$_$1 extra="--bf16"
  [ "$side" = nf4 ] && extra="--bf16 --load_in_4bit True --bnb_4bit_quant_type nf4 --bnb_4bit_use_double_quant True --bnb_4bit_compute_dtype bfloat16"
  rm -rf "$out"
  # shellcheck disable=SC2086
  "$build/src/cli/sft" train --model_name_or_path "$model" --dataset_path "$root/tests/fixtures/train/alpaca_tiny.json" \
    --output_dir "$out" --use_peft --lora_r 16 --lora_alpha 32 --lora_dropout 0 --lora_target_modules all-linear \
    --per_device_train_batch_size 1 --max_seq_length "$seq" --packing True --gradient_checkpointing True \
    --max_steps "$((steps + 1))" --logging_steps 1 --save_strategy no --threads "$threads" $extra \
    > "$out.log" 2>&1 &
  local pid=$! load_rss="" hwm=0 v t0
  t0=$(date +%s.%N)
  while kill -0 "$pid" 2>/dev/null; do
    v=$(awk '/VmHWM/ {print int($2 / 1024)}' "/proc/$pid/status" 2>/dev/null || true)
    [ -n "$v" ] && hwm=$v  # an exiting process (zombie) has no VmHWM line any more
    if [ -z "$load_rss" ] && grep -q "trainable params" "$out.log" 2>/dev/null; then
      load_rss=$hwm; echo "$(date +%s.%N) - $t0" | bc > "$out.load_s"
    fi
    sleep 0.2
  done
  if ! wait "$pid"; then
    echo "{\"side\": \"sft $side\", \"failed\": \"$(grep -m1 'error' "$out.log" | tr '"' "'")\"}"; return
  fi
  grep -m1 "memory plan" "$out.log" >&2 || true
  grep -m1 "kernels\|isa\|avx" "$out.log" >&2 || true
  "$venv/bin/python" - "$out/trainer_log.jsonl" "$side" "$seq" "${load_rss:-0}" "$hwm" "$(cat "$out.load_s" 2>/dev/null || echo 0)" <<'PY'
import json, statistics, sys
path, side, seq, load_rss, hwm, load_s = sys.argv[1:]
rows = [json.loads(l) for l in open(path) if l.strip()]
tps = [r["tokens_per_second"] for r in rows if "tokens_per_second" in r][1:] or [r["tokens_per_second"] for r in rows]
med = statistics.median(tps)
print(json.dumps({"side": "sft " + ("bf16-only base" if side == "bf16" else "QLoRA nf4 dq"), "load_s": round(float(load_s), 1),
                  "peak_rss_load_mib": int(load_rss), "step_s_median": round(int(seq) / med, 3),
                  "tokens_per_s": round(med, 1), "peak_rss_mib": int(hwm)}))
PY
  rm -rf "$out" "$out.log" "$out.load_s"
}
# sft vs the peer of the same side: step-time speedup (peer s/step / sft s/step) and peak RSS ratio (sft / peer).
ratio() {
  [ -n "${line[peer_$1]:-}" ] && [ -n "${line[sft_$1]:-}" ] || return 0
  "$venv/bin/python" -c 'import json,sys
p, s = json.loads(sys.argv[1]), json.loads(sys.argv[2])
if "step_s_median" in p and "step_s_median" in s:
    print(json.dumps({"side": sys.argv[3], "speedup_vs_peer": round(p["step_s_median"] / s["step_s_median"], 2),
                      "peak_rss_ratio_sft_over_peer": round(s["peak_rss_mib"] / p["peak_rss_mib"], 2)}))' \
    "${line[peer_$1]}" "${line[sft_$1]}" "$1"
}
for side in ${sides//,/ }; do
  quant=none; [ "$side" = nf4 ] && quant=nf4
  if [ "$peers" = no ]; then :
  elif out=$(OMP_NUM_THREADS=$threads "$venv/bin/python" "$root/bench/peers/torch_big_lora.py" --model "$model" \
           --quant "$quant" --seq "$seq" --steps "$steps" --threads "$threads" 2>/tmp/big_lora_$$.err | tail -1); then
    line[peer_$side]=$out
    echo "$out"
  else
    echo "{\"peer\": \"transformers+peft $side\", \"failed\": \"$(tail -1 /tmp/big_lora_$$.err | tr '"' "'")\"}"
  fi
  rm -f /tmp/big_lora_$$.err
  line[sft_$side]=$(sft_side "$side")
  echo "${line[sft_$side]}"
  ratio "$side"
done
