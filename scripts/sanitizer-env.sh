# Sourced by scripts/test.sh and scripts/build-asan.sh: the run-time options of the ASan + UBSan build (build-asan/),
# for the tests and for GoogleTest's test discovery at build time. Caller's values win.
# abort_on_error: an ASan or LeakSanitizer report kills the process (the test fails); halt_on_error together with
# -fno-sanitize-recover=undefined does the same for the first UBSan report. scripts/lsan.supp lists the only leaks
# tolerated: one-time allocations of runtime libraries (libgomp, oneDNN) kept until exit, never sft's own.
sft_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$sft_root/scripts/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
unset sft_root
