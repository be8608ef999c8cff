#!/usr/bin/env bash
# Builds sft, the unit tests and the fuzz-corpus replays with AddressSanitizer + UndefinedBehaviorSanitizer (GCC) into
# build-asan/ (or $1). Used by scripts/test.sh; the Python oracle tests are not registered in this build.
# Usage: scripts/build-asan.sh [build folder]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
asan="${1:-$root/build-asan}"
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g -O1"
if [ ! -f "$asan/build.ninja" ]; then
  cmake -S "$root" -B "$asan" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="$flags" \
    -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" -DSFT_PYTHON= >/dev/null
fi
# Only what the sanitizer pass runs: sft, the GoogleTest binaries and the fuzz replays (no benchmarks, no helper tools
# of the Python parity tests).
targets=$(ninja -C "$asan" -t targets all | sed -n 's/^\(sft\|test_[a-z_]*\|fuzz_[a-z_]*\): .*/\1/p' | sort -u)
cmake --build "$asan" -j "$(nproc)" --target $targets
