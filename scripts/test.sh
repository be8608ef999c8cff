#!/usr/bin/env bash
# The test command: installs what is missing (Debian packages, the pinned oracle venv), builds, runs every test, then
# builds the same tree with ASan + UBSan (<build>-asan/, scripts/build-asan.sh) and runs the unit (GoogleTest, every
# layer), robustness (bad-input catalogue) and fuzz-corpus suites there. The Python parity suites, `slow` and `cuda`
# tests are not repeated under the sanitizers. Any ASan, LeakSanitizer or UBSan report fails the test that hit it.
# Usage: scripts/test.sh [ctest args, e.g. -L tokenizer or -R safetensors]  (the args apply to both passes)
#   SFT_ASAN=0 skips the sanitizer pass (quick local runs; CI always runs it); SFT_ASAN_BUILD_DIR overrides its folder.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$root/scripts/setup-venv.sh")
build="${SFT_BUILD_DIR:-$root/build}"
SFT_BUILD_DIR="$build" "$root/scripts/setup.sh" -DSFT_PYTHON="$venv/bin/python"
cd "$build"
status=0
# One test per core (2 here): the full suite takes ~10 min of ctest time this way instead of ~18 serially.
ctest --output-on-failure --timeout 1800 -j "$(nproc)" "$@" || status=$?

if [ "${SFT_ASAN:-1}" != 0 ]; then
  asan="${SFT_ASAN_BUILD_DIR:-${build%/}-asan}"  # beside the Release tree, never inside it
  source "$root/scripts/sanitizer-env.sh"
  t0=$(date +%s)
  "$root/scripts/build-asan.sh" "$asan"
  t1=$(date +%s)
  cd "$asan"
  ctest --output-on-failure --timeout 1800 -j "$(nproc)" -LE 'python|slow|cuda' "$@" || status=$?
  echo "test: sanitizer pass: build $((t1 - t0)) s, tests $(( $(date +%s) - t1 )) s" >&2
fi
exit $status
