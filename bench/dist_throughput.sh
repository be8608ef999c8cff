#!/usr/bin/env bash
# Data-parallel throughput of `sft train` on this machine: 1 rank x 1 thread, 1 rank x 2 threads and 2 ranks x 1
# thread (mpirun), the same global batch and data, in one run so all three see the same machine load. Reports each
# run's training tokens/s (steps after the first, from trainer_log.jsonl), the ratios, and at 2 ranks rank 0's time
# inside collectives per optimizer step, split into the gradient exchange (and its share of the step) and the longest
# wait of a rank for the slowest one (load imbalance); then the loopback all-reduce bandwidth (bench/allreduce_bench).
#
# usage: bench/dist_throughput.sh [BUILD_DIR] [--layers 4] [--steps 4] [--seq 512] [--per_device 4] [--rows 32]
#        bench/dist_throughput.sh [BUILD_DIR] --seq 128 --batch 4 --gas 4 --steps 6     (the first configuration)
# Default (the seed job's shape, cut to 4 layers): --max_seq_length 512, per-device batch 4 at every world size and
# 32 rows per optimizer step (the seed's 4 x 8 at one rank): 1 rank accumulates 8 micro-batches, 2 ranks 4 each.
# --batch B --gas G instead keep the global micro-batch at B rows (per-device batch B / ranks) and accumulate G.
# Model: random weights, SmolLM2-135M layer shapes, Llama-3 vocabulary (bench/make_bench_model.py); ~2 GB RSS a rank.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true
layers=4 steps=4 seq=512 per_device=4 rows=32 batch="" gas=""
while [ $# -gt 0 ]; do
  case "$1" in
    --layers) layers=$2 ;; --steps) steps=$2 ;; --seq) seq=$2 ;; --per_device) per_device=$2 ;; --rows) rows=$2 ;;
    --batch) batch=$2 ;; --gas) gas=$2 ;;
    *) echo "dist_throughput: unknown flag $1" >&2; exit 2 ;;
  esac
  shift 2
done
if [ -n "$batch" ] || [ -n "$gas" ]; then  # global micro-batch fixed, per-device batch = batch / ranks
  batch=${batch:-4} gas=${gas:-4}
  [ $((batch % 2)) = 0 ] || { echo "dist_throughput: --batch must be even (split over 2 ranks)" >&2; exit 2; }
  shape() { echo "$((batch / $1)) $gas"; }
  echo "configuration: --max_seq_length $seq, global micro-batch $batch rows, accumulation $gas, $layers layers"
else  # per-device batch fixed, accumulation = rows / (per_device x ranks)
  [ $((rows % (2 * per_device))) = 0 ] || { echo "dist_throughput: --rows must be a multiple of 2 x --per_device" >&2; exit 2; }
  shape() { echo "$per_device $((rows / (per_device * $1)))"; }
  echo "configuration: --max_seq_length $seq, per-device batch $per_device, $rows rows per optimizer step, $layers layers"
fi
venv=$("$root/scripts/setup-venv.sh")
work=$(mktemp -d /tmp/sft-dist-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
"$venv/bin/python" "$root/bench/make_bench_model.py" "$work/model" --layers "$layers" >/dev/null
data=/work/shared/data/alpaca/alpaca_en_demo.json
[ -f "$data" ] || data=$root/data/alpaca_demo.json
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
mpi=(mpirun --oversubscribe --bind-to none --mca btl self,vader --mca btl_vader_single_copy_mechanism none)
run() {  # name ranks threads
  local name=$1 ranks=$2 threads=$3 pd ga
  read -r pd ga <<<"$(shape "$ranks")"
  local args=(train --model_name_or_path "$work/model" --dataset_path "$data" --output_dir "$work/$name"
              --per_device_train_batch_size "$pd" --gradient_accumulation_steps "$ga" --max_steps "$steps" --logging_steps 1 --save_strategy no
              --max_seq_length "$seq" --learning_rate 1e-4 --threads "$threads" --seed 1
              --debug_dump_batches "$work/$name.batches.jsonl")
  if [ "$ranks" = 1 ]; then "$build/src/cli/sft" "${args[@]}" >"$work/$name.out"
  else "${mpi[@]}" -np "$ranks" "$build/src/cli/sft" "${args[@]}" >"$work/$name.out"; fi
  "$venv/bin/python" - "$work/$name" "$work/$name.out" "$name" <<'PY'
import json, re, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/trainer_log.jsonl") if l.strip()][1:]  # skip the warm-up step
toks = sum(r["num_tokens"] if "num_tokens" in r else r.get("tokens", 0) for r in rows)
tps = sum(r["tokens_per_second"] for r in rows) / len(rows)
out = open(sys.argv[2]).read()
m = re.search(r"\(([\d.]+) ms per optimizer step\).*gradient exchange ([\d.]+) ms \(([\d.]+)% of the step\), "
              r"longest wait for the slowest rank ([\d.]+) ms", out)
comm, exchange, share, wait = (float(g) for g in m.groups()) if m else (0.0, 0.0, 0.0, 0.0)
m = re.search(r"([\d.]+)% of the positions computed were padding", out)
if m:  # what the run computed (sft train's summary; ranks and one process with accumulation regroup rows by length)
    padding = float(m.group(1))
else:  # builds that print no padding line: the loader's global micro-batches as they are
    real = total = 0
    for line in open(sys.argv[1] + ".batches.jsonl"):
        b = json.loads(line)
        real += sum(d >= 0 for d in b["doc_ids"])
        total += b["B"] * b["T"]
    padding = 100.0 * (1 - real / total)
print(json.dumps({"run": sys.argv[3], "tokens_per_s": round(tps, 1), "comm_ms_per_step": comm,
                  "exchange_ms_per_step": exchange, "exchange_share_pct": share, "max_wait_ms_per_step": wait,
                  "padding_pct": round(padding, 1),
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
print(f"communication per optimizer step at 2 ranks (rank 0, inside collectives): {c['comm_ms_per_step']:.0f} ms = "
      f"gradient exchange {c['exchange_ms_per_step']:.0f} ms ({c['exchange_share_pct']:.1f}% of the step) + waits; "
      f"longest wait of a rank for the slowest one: {c['max_wait_ms_per_step']:.0f} ms")
print(f"padding share of the computed positions: 1 rank {a['padding_pct']:.1f}%, 2 ranks {c['padding_pct']:.1f}% "
      "(both regroup a step's rows by length: train/row_balance.h)")
pos = lambda r: r["tokens_per_s"] / (1 - r["padding_pct"] / 100)  # positions computed per second, padding included
print(f"without the padding saved (positions computed per second): 2 ranks x 1 thread vs 1 rank x 1 thread "
      f"{pos(c) / pos(a):.2f}x (a lower bound of the scaling without the padding saved: padding does not reach the "
      "LM head, which runs on targets only)")
same = all(abs(x - y) <= 1e-3 * max(1.0, abs(x)) for x, y in zip(a["losses"], c["losses"]))
print("losses of 1 and 2 ranks " + ("agree" if same else "DIFFER (not the same training!)"))
PY
echo "loopback all-reduce bandwidth:"
"${mpi[@]}" -np 2 "$build/bench/allreduce_bench" --max_mib 256 --iters 3
