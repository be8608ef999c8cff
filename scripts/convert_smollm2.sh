#!/usr/bin/env bash
# Builds (once) the SmolLM2-135M-Instruct HF folder from the GGUF in the oracle venv and prints its path.
# Usage: scripts/convert_smollm2.sh [OUT_DIR]   (default ~/.cache/sft/models/smollm2-135m-instruct)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$root/scripts/setup-venv.sh")
HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 exec "$venv/bin/python" "$root/scripts/convert_smollm2.py" "$@"
