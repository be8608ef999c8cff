#!/usr/bin/env bash
# The test command: installs what is missing (Debian packages, the pinned oracle venv), builds, runs every test, then
# builds the same tree with ASan + UBSan (build-asan/) and runs the unit, robustness and fuzz-corpus suites there
# (the Python parity suites, `slow` and `cuda` tests are not repeated under the sanitizers).
# Usage: scripts/test.sh [ctest args, e.g. -L tokenizer or -R safetensors]
#   SFT_ASAN=1 adds the sanitizer pass (off by default until a complete pass has been seen within the CI budget:
#   docs/arch/hardening.md); SFT_ASAN_BUILD_DIR overrides its folder.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
venv=$("$root/scripts/setup-venv.sh")
build="${SFT_BUILD_DIR:-$root/build}"
SFT_BUILD_DIR="$build" "$root/scripts/setup.sh" -DSFT_PYTHON="$venv/bin/python"
cd "$build"
status=0
# One test per core (2 here): the full suite takes ~10 min of ctest time this way instead of ~18 serially.
ctest --output-on-failure --timeout 1800 -j "$(nproc)" "$@" || status=$?

if [ "${SFT_ASAN:-0}" != 0 ]; then
  asan="${SFT_ASAN_BUILD_DIR:-$root/build-asan}"
  t0=$(date +%s)
  "$root/scripts/build-asan.sh" "$asan"
  t1=$(date +%s)
  cd "$asan"
  ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}" \
  LSAN_OPTIONS="suppressions=$root/scripts/lsan.supp:print_suppressions=0" \
  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
    ctest --output-on-failure --timeout 1800 -LE 'python|slow|cuda' "$@" || status=$?
  echo "test: sanitizer pass: build $((t1 - t0)) s, tests $(( $(date +%s) - t1 )) s" >&2
fi
exit $status
