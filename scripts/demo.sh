#!/usr/bin/env bash
# The README's main command: set up everything, fine-tune SmolLM2-135M-Instruct on the bundled Alpaca sample
# (data/alpaca_demo.json) on this CPU with bf16 compute, print the seed-style loss table, then generate from the
# tuned model. Usage: scripts/demo.sh   (env: SFT_BUILD_DIR, SFT_DEMO_OUT, SFT_DEMO_STEPS, SFT_THREADS)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="${SFT_BUILD_DIR:-$root/build}"
out="${SFT_DEMO_OUT:-${SFT_CACHE:-$HOME/.cache/sft}/demo/smollm2-135m-alpaca}"
steps="${SFT_DEMO_STEPS:-20}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1

echo "== setup: Debian packages + build ($build)" >&2
SFT_BUILD_DIR="$build" "$root/scripts/setup.sh"
echo "== setup: Python venv (only to convert the bundled GGUF weights into an HF folder)" >&2
venv=$("$root/scripts/setup-venv.sh")
model=$("$venv/bin/python" "$root/scripts/convert_smollm2.py" | tail -n 1)
sft="$build/src/cli/sft"

# Sized for a small CPU: 20 optimizer steps x 4 rows = 80 samples of the 300-row sample, max length 512 tokens (the
# sample's p95 is 425, so the report printed first shows that only a few samples are cut), bf16 matmuls with fp32
# master weights, a table row every 2 steps. Raise SFT_DEMO_STEPS on a bigger machine.
echo "== fine-tune ($steps steps) -> $out" >&2
t0=$(date +%s)
"$sft" train \
  --model_name_or_path "$model" --dataset_path "$root/data/alpaca_demo.json" --output_dir "$out" \
  --overwrite_output_dir True --template alpaca --max_seq_length 512 \
  --per_device_train_batch_size 4 --gradient_accumulation_steps 1 --max_steps "$steps" \
  --learning_rate 1e-4 --lr_scheduler_type linear --warmup_ratio 0.1 --weight_decay 0.0 \
  --logging_steps 2 --save_strategy no --bf16 True --seed 42 ${SFT_THREADS:+--threads "$SFT_THREADS"}
t1=$(date +%s)
echo "== fine-tune wall time: $((t1 - t0)) s; log: $out/trainer_log.jsonl, curve: $out/loss_curve.svg" >&2

if "$sft" generate --help >/dev/null 2>&1; then
  echo "== generate from the tuned model" >&2
  "$sft" generate --model "$out" --template alpaca --prompt "Give three tips for staying healthy." \
    --max_new_tokens 80 --greedy
  echo
fi
