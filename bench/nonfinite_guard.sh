#!/usr/bin/env bash
# The cost of sft train's per-step non-finite guard (train/finite_guard.h) against the AdamW step it follows, and the
# same check in PyTorch, in one run: bench/nonfinite_guard_bench (sft's CPU backend) and bench/peers/torch_nonfinite_check.py
# (torch.optim.AdamW foreach=False + torch.isfinite(p).all()), on the same parameter count and tensor sizes.
# usage: bench/nonfinite_guard.sh [BUILD_DIR] [--params N] [--iters 5] [--tensor_mib 4]
# Default: SmolLM2-135M's 134,515,008 parameters (4 x 0.54 GB of fp32 state per side: ~2.2 GB RSS each).
# env: THREADS (default: nproc), PEER=0 skips PyTorch.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
shift || true
threads=${THREADS:-$(nproc)}
export OMP_NUM_THREADS=$threads
echo "# load before: $(uptime)"
echo "# cpu: $(grep -o 'avx512_bf16\|amx_bf16\|avx512f\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
sft_line=$("$build/bench/nonfinite_guard_bench" "$@")
echo "$sft_line"
torch_line=""
if [ "${PEER:-1}" = 1 ]; then
  venv=$(ls -d ~/.cache/sft/venv-*/ 2>/dev/null | head -1)
  torch_line=$("${venv}bin/python" "$root/bench/peers/torch_nonfinite_check.py" --threads "$threads" "$@")
  echo "$torch_line"
fi
echo "# load after: $(uptime)"
python3 - "$sft_line" "$torch_line" <<'PY'
import json, sys
s = json.loads(sys.argv[1])
print(f"sft: AdamW step {s['adamw_ms']} ms, per-step check {s['check_ms']} ms = {s['check_over_adamw']:.1%} of the step's "
      f"optimizer ({s['check_read_gb_s']} GB/s read; best pass {s['read_peak_gb_s']} GB/s), exact host scan "
      f"{s['exact_scan_ms']} ms; peak RSS {s['peak_rss_mib']:.0f} MiB; kernels {s['cpu_kernels']}")
if sys.argv[2]:
    t = json.loads(sys.argv[2])
    print(f"pytorch {t['torch']}: AdamW step {t['adamw_ms']} ms, isfinite check {t['check_ms']} ms = "
          f"{t['check_over_adamw']:.1%}; peak RSS {t['peak_rss_mib']} MiB")
    print(f"ratios sft/pytorch: AdamW {s['adamw_ms'] / t['adamw_ms']:.2f}, check {s['check_ms'] / t['check_ms']:.2f}")
PY
