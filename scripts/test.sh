#!/usr/bin/env bash
# The test command: installs what is missing (Debian packages, the pinned oracle venv), builds, runs every test.
# Usage: scripts/test.sh [ctest args, e.g. -L tokenizer or -R safetensors]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$root/scripts/setup-venv.sh")
build="${SFT_BUILD_DIR:-$root/build}"
SFT_BUILD_DIR="$build" "$root/scripts/setup.sh" -DSFT_PYTHON="$venv/bin/python"
cd "$build"
ctest --output-on-failure --timeout 1800 "$@"
