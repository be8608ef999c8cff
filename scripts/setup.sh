#!/usr/bin/env bash
# Installs the Debian packages the build needs (when missing) and builds sft into build/ (or $SFT_BUILD_DIR).
# Usage: scripts/setup.sh [extra cmake -D options]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
pkgs=(build-essential cmake ninja-build ccache pkg-config libdnnl-dev nlohmann-json3-dev libpcre2-dev libicu-dev
      libcli11-dev libgtest-dev libgmock-dev libomp-dev zstd python3-venv python3-pip libopenmpi-dev openmpi-bin)
missing=()
for p in "${pkgs[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd=sudo
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
# Apache Arrow C++ for Parquet / Arrow datasets (Debian 12 has no libarrow-dev: the pinned pyarrow wheel's libraries,
# cached in ~/.cache/sft/arrow-<version>). Optional: without it (no network) the build goes on without Parquet support.
"$root/scripts/setup-arrow.sh" >/dev/null ||
  echo "setup: Apache Arrow could not be installed; building without Parquet/Arrow datasets" >&2
build="${SFT_BUILD_DIR:-$root/build}"
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release "$@" >/dev/null
cmake --build "$build" -j "$(nproc)"
echo "setup: built $build/src/cli/sft" >&2
