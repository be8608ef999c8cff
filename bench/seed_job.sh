#!/usr/bin/env bash
# The seed's recipe end to end, same run, same data, same machine: `sft train` (padding-free, its default), `sft train
# --padding_free False`, HF Trainer and TRL SFTTrainer on the same row order (bench/seed_job.py has the details).
# Models: SmolLM2-135M-Instruct real weights (scripts/convert_smollm2.py) and the Qwen2.5-0.5B shape with random
# weights, all 24 layers (bench/make_seed_model.py); dtypes bf16 and fp32.
# usage: bench/seed_job.sh [BUILD_DIR] [--steps N] [--models "smollm2 qwen"] [--dtypes "bf16 fp32"]
#                          [--sides "sft sft_padded hf trl"] [--dataset ALPACA.json] [--batch 4 --accum 8 --max_len 1024]
# env: THREADS (default: nproc), VENV (the oracle venv; default: scripts/setup-venv.sh's). Full size (defaults: 4 steps of 32 rows, both models, both dtypes) takes hours on 2
# cores and ~16 GB for the Qwen shape's Python sides: run it on a quiet machine. Smoke:
#   bench/seed_job.sh build --models smollm2 --dtypes bf16 --steps 2 --accum 1
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=$root/build
if [ $# -gt 0 ] && [ "${1#--}" = "$1" ]; then build=$1; shift; fi
venv=${VENV:-$("$root/scripts/setup-venv.sh")}  # VENV: an existing oracle venv (skips the check)
threads=${THREADS:-$(nproc)}
echo "# load before: $(uptime)"
echo "# CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //'); ISA: $(grep -o 'avx512_bf16\|amx_bf16\|avx2' /proc/cpuinfo | sort -u | tr '\n' ' ')"
"$venv/bin/python" "$root/scripts/convert_smollm2.py" > /dev/null
case " $* " in  # the Qwen-shaped folder, once, when the Qwen model is measured (the default)
  *qwen*) "$venv/bin/python" "$root/bench/make_seed_model.py" > /dev/null ;;
  *" --models "*) ;;
  *) "$venv/bin/python" "$root/bench/make_seed_model.py" > /dev/null ;;
esac
echo "# sft's kernels: $("$build/src/cli/sft" info --model "$HOME/.cache/sft/models/smollm2-135m-instruct" | grep '  cpu:' | sed 's/^ *//')"
echo "# PyTorch: $("$venv/bin/python" -c 'import torch; print(torch.__version__, "CPU capability", torch.backends.cpu.get_cpu_capability())')"
"$venv/bin/python" "$root/bench/seed_job.py" --sft "$build/src/cli/sft" --python "$venv/bin/python" \
  --threads "$threads" "$@"
echo "# load after: $(uptime)"
