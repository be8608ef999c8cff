#!/usr/bin/env bash
# Builds sft, the unit tests and the fuzz-corpus replays with AddressSanitizer + UndefinedBehaviorSanitizer (GCC) into
# build-asan/ (or $1). Used by scripts/test.sh; the Python oracle tests are not registered in this build.
# -O1 -g1: line tables for the reports at a fraction of the compile time of -O2 -g (the build runs in every CI run).
# Usage: scripts/build-asan.sh [build folder]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
asan="${1:-$root/build-asan}"
source "$root/scripts/sanitizer-env.sh"   # GoogleTest's discovery runs the test binaries at build time
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g1 -O1"
# Configured every time (a few seconds): a changed flag here must reach an existing folder.
cmake -S "$root" -B "$asan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$flags" \
  -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" -DSFT_PYTHON= >/dev/null
# Only what the sanitizer pass runs: sft, the GoogleTest binaries and the fuzz replays (no benchmarks, no helper tools
# of the Python parity tests).
targets=$(ninja -C "$asan" -t targets all | sed -n 's/^\(sft\|test_[a-z_]*\|fuzz_[a-z_]*\): .*/\1/p' | sort -u)
cmake --build "$asan" -j "$(nproc)" --target $targets
