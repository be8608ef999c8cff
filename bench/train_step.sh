#!/usr/bin/env bash
# One training step (forward + backward + AdamW) of a Qwen2/Llama-shaped model with random weights: sft.cpp's CPU
# backend (bench/train_step.cpp) against PyTorch on the CPU (bench/peers/torch_step.py), in one run so both see the
# same machine load, plus the machine's gemm peak in the same run: a 2048^3 matmul through oneDNN as sft links it
# (bench/gemm_peak.cpp) and through PyTorch (bench/peers/torch_gemm.py), fp32 and bf16.
# Prints every JSON line, then per dtype: tokens/s, model FLOP/s as a fraction of each peak, the per-step breakdown
# (gemm, attention, norms/activations, LM head + loss, optimizer, conversions, other), peak RSS, the ratios
# sft/PyTorch, which oneDNN ISA/matmul implementations and which sft kernel variant ran.
# usage: bench/train_step.sh [BUILD_DIR] [flags for both sides, e.g. --shape smollm2-135m --layers 4 --steps 3]
# Defaults: --shape qwen2.5-0.5b --batch 4 --seq 512 --steps 3 (all 24 layers: ~11 GB for sft, ~16 GB for PyTorch,
# minutes per step on 2 cores — run the full size on a quiet machine only).
# env: DTYPES="fp32 bf16" (which dtypes; PyTorch's bf16 without AVX512-BF16/AMX is an emulation ~30x slower than its
#      fp32, so on such CPUs DTYPES=fp32 is the useful comparison), THREADS (default: nproc), PEER=0 skips PyTorch.
# Model FLOP/s counts 6*N*tokens + 6*L*B*T^2*heads*head_dim (the peer's formula).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true
venv=$("$root/scripts/setup-venv.sh")
threads=${THREADS:-$(nproc)}
dtypes=${DTYPES:-fp32 bf16}
peer=${PEER:-1}
export OMP_NUM_THREADS=$threads
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT

echo "# load before: $(uptime)"
"$build/bench/gemm_peak" --size 2048 | tee "$out/gemm_sft"
if [ "$peer" = 1 ]; then
  "$venv/bin/python" "$root/bench/peers/torch_gemm.py" --size 2048 --threads "$threads" | tee "$out/gemm_torch"
else
  : > "$out/gemm_torch"
fi
for dt in $dtypes; do
  "$build/bench/train_step" --dtype "$dt" "$@" | tail -1 | tee "$out/sft_$dt"
  if [ "$peer" = 1 ]; then
    "$venv/bin/python" "$root/bench/peers/torch_step.py" --dtype "$dt" --threads "$threads" "$@" | tail -1 |
      tee "$out/torch_$dt"
  else
    : > "$out/torch_$dt"
  fi
done
echo "# load after: $(uptime)"
"$venv/bin/python" - "$out" $dtypes <<'PY'
import json, os, sys
out, dtypes = sys.argv[1], sys.argv[2:]
def lines(name):
    p = os.path.join(out, name)
    return [json.loads(l) for l in open(p) if l.strip()] if os.path.exists(p) else []
peak = {("sft", g["dtype"]): g for g in lines("gemm_sft")}
peak.update({("torch", g["dtype"]): g for g in lines("gemm_torch")})
for k, g in sorted(peak.items()):
    print(f"gemm peak 2048^3 {k[1]} via {g.get('lib', 'pytorch ' + g.get('torch', ''))}: {g['gflops']} GFLOP/s"
          + (f" ({g['impl']})" if "impl" in g else ""))
for dt in dtypes:
    ours = lines(f"sft_{dt}")
    if not ours:
        continue
    o = ours[0]
    theirs = lines(f"torch_{dt}")
    best_peak = max([p["gflops"] for (who, d), p in peak.items() if d == dt] or [0])
    print(f"\n== {dt}: {o['shape']} layers {o['layers']} batch {o['batch']}x{o['seq']}, kernels {o['cpu_kernels']},"
          f" {o['gemm_lib']}")
    print(f"sft: {o['step_s_median']} s/step, {o['tokens_per_s']} tok/s, {o['model_gflops']} model GFLOP/s"
          + (f" = {o['model_gflops'] / best_peak:.0%} of the best measured {dt} gemm peak ({best_peak})" if best_peak else "")
          + f"; gemm alone ran at {o['gemm_gflops']} GFLOP/s; peak RSS {o['peak_rss_mib']} MiB")
    b = o["breakdown_s"]
    step = o["step_s_mean"]
    groups = [("gemm (layers)", ["gemm"]), ("LM head gemm", ["lm_head_gemm"]), ("attention", ["attention"]),
              ("norms/activations", ["norms_activations"]), ("LM head softmax+CE", ["lm_head_softmax_ce"]),
              ("optimizer", ["optimizer"]), ("conversions", ["conversions"]),
              ("other (embedding, copies, host)", ["embedding_gather_scatter", "memory_copy_zero", "other"])]
    print("breakdown per step (mean of the timed steps):")
    for name, keys in groups:
        s = sum(b[k] for k in keys)
        print(f"  {name:34s} {s:9.3f} s  {s / step:6.1%}")
    print(f"  non-gemm share: {1 - o['gemm_share']:.1%} (target <= 10%)")
    if theirs:
        t = theirs[0]
        print(f"pytorch {t['torch']}: {t['step_s_median']} s/step, {t['tokens_per_s']} tok/s,"
              f" {t['model_gflops']} model GFLOP/s, peak RSS {t['peak_rss_mib']} MiB")
        print(f"-> speed sft/pytorch {o['tokens_per_s'] / t['tokens_per_s']:.2f}x (target >= 1.4x),"
              f" memory {o['peak_rss_mib'] / t['peak_rss_mib']:.2f}x (target <= 0.5x)")
PY
