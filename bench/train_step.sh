#!/usr/bin/env bash
# One training step (forward + backward + AdamW) of a Qwen2.5-0.5B-shaped model with random weights: sft.cpp's CPU
# backend (bench/train_step.cpp) against PyTorch on the CPU (bench/peers/torch_step.py), fp32 and bf16, in one run
# so both see the same machine load. Prints each side's JSON line and the ratios sft/pytorch (median of --steps).
# usage: bench/train_step.sh [BUILD_DIR] [extra flags for both sides, e.g. --batch 1 --seq 256 --layers 4 --steps 3]
# Defaults: --shape qwen2.5-0.5b --batch 4 --seq 512 --steps 3 (needs ~14 GB RAM per side; minutes per step on 2 cores).
# Model FLOP/s counts 6*N*tokens + causal attention exactly as the peer does; the ceiling quoted in docs/arch/model.md
# (797 GFLOP/s bf16 AMX, 226 fp32) belongs to the reference machine.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true
venv=$("$root/scripts/setup-venv.sh")
threads=$(nproc)
declare -A res
for dt in fp32 bf16; do
  ours=$("$build/bench/train_step" --dtype "$dt" "$@" | tail -1)
  peer=$(OMP_NUM_THREADS=$threads "$venv/bin/python" "$root/bench/peers/torch_step.py" --dtype "$dt" --threads "$threads" "$@" | tail -1)
  echo "$ours"
  echo "$peer"
  res[$dt]="$ours"$'\n'"$peer"
done
for dt in fp32 bf16; do
  "$venv/bin/python" - "$dt" <<PY
import json, sys
ours, peer = [json.loads(l) for l in """${res[$dt]}""".strip().splitlines()]
print(f"{sys.argv[1]}: sft {ours['tokens_per_s']} tok/s ({ours['model_gflops']} GFLOP/s, peak RSS {ours['peak_rss_mib']} MiB)"
      f" vs pytorch {peer['tokens_per_s']} tok/s ({peer['model_gflops']} GFLOP/s, peak RSS {peer['peak_rss_mib']} MiB)"
      f" -> speed ratio sft/pytorch {ours['tokens_per_s'] / peer['tokens_per_s']:.2f}x,"
      f" memory ratio {ours['peak_rss_mib'] / peer['peak_rss_mib']:.2f}x")
PY
done
