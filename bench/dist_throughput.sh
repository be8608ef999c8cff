#!/usr/bin/env bash
# Data-parallel throughput of `sft train` on this machine: 1 rank x 1 thread, 1 rank x 2 threads and 2 ranks x 1
# thread (mpirun), the same global batch and data, in one run so all three see the same machine load. Reports each
# run's training tokens/s (steps after the first, from trainer_log.jsonl), the ratios, and rank 0's time inside
# collectives per optimizer step; then the loopback all-reduce bandwidth (bench/allreduce_bench).
# usage: bench/dist_throughput.sh [BUILD_DIR] [--layers 4] [--steps 6] [--batch 4] [--seq 128] [--gas 4]
# Model: random weights, SmolLM2-135M layer shapes, Llama-3 vocabulary (bench/make_bench_model.py); ~1.5 GB RSS a rank.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true
layers=4 steps=6 batch=4 seq=128 gas=4
while [ $# -gt 0 ]; do
  case "$1" in
    --layers) layers=$2 ;; --steps) steps=$2 ;; --batch) batch=$2 ;; --seq) seq=$2 ;; --gas) gas=$2 ;;
    *) echo "dist_throughput: unknown flag $1" >&2; exit 2 ;;
  esac
  shift 2
done
venv=$("$root/scripts/setup-venv.sh")
work=$(mktemp -d /tmp/sft-dist-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" "$root/bench/make_bench_model.py" "$work/model" --layers "$layers" >/dev/null
data=/work/shared/data/alpaca/alpaca_en_demo.json
[ -f "$data" ] || data=$root/data/alpaca_demo.json
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi=(mpirun --oversubscribe --bind-to none --mca btl self,vader --mca btl_vader_single_copy_mechanism none)
run() {  # name ranks threads
  local name=$1 ranks=$2 threads=$3 pd=$((batch / $2))
  local args=(train --model_name_or_path "$work/model" --dataset_path "$data" --output_dir "$work/$name"
              --per_device_train_batch_size "$pd" --gradient_accumulation_steps "$gas" --max_steps "$steps" --logging_steps 1 --save_strategy no
              --max_seq_length "$seq" --learning_rate 1e-4 --threads "$threads" --seed 1)
  if [ "$ranks" = 1 ]; then "$build/src/cli/sft" "${args[@]}" >"$work/$name.out"
  else "${mpi[@]}" -np "$ranks" "$build/src/cli/sft" "${args[@]}" >"$work/$name.out"; fi
  "$venv/bin/python" - "$work/$name" "$work/$name.out" "$name" <<'PY'
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/trainer_log.jsonl") if l.strip()][1:]  # skip the warm-up step
toks = sum(r["num_tokens"] if "num_tokens" in r else r.get("tokens", 0) for r in rows)
tps = sum(r["tokens_per_second"] for r in rows) / len(rows)
out = open(sys.argv[2]).read()
m = re.search(r"\(([\d.]+) ms per optimizer step\)", out)
comm = float(m.group(1)) if m else 0.0
print(json.dumps({"run": sys.argv[3], "tokens_per_s": round(tps, 1), "comm_ms_per_step": comm,
                  "losses": [round(r["loss"], 4) for r in rows]}))
PY
}
r11=$(run r1t1 1 1); echo "$r11"
r12=$(run r1t2 1 2); echo "$r12"
r21=$(run r2t1 2 1); echo "$r21"
"$venv/bin/python" - "$r11" "$r12" "$r21" <<'PY'
import json, sys
a, b, c = (json.loads(x) for x in sys.argv[1:])
print(f"2 ranks x 1 thread vs 1 rank x 1 thread (equal threads per rank): {c['tokens_per_s'] / a['tokens_per_s']:.2f}x"
      " (target >= 1.8x)")
print(f"2 ranks x 1 thread vs 1 rank x 2 threads (equal total threads): {c['tokens_per_s'] / b['tokens_per_s']:.2f}x")
print(f"communication per optimizer step at 2 ranks (rank 0, inside collectives): {c['comm_ms_per_step']:.0f} ms")
PY
echo "loopback all-reduce bandwidth:"
"${mpi[@]}" -np 2 "$build/bench/allreduce_bench" --max_mib 256 --iters 3
