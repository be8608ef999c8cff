#!/usr/bin/env bash
# GPU check of the CUDA backend (issue 6). Two modes:
#
#   scripts/gpu-check.sh --prepare
#       On a development machine WITH apt access (no GPU needed): downloads the Debian build dependencies as .deb files
#       into .gpu-deps/ (ignored through .git/info/exclude), for a GPU machine that has the CUDA toolkit, CMake, ninja
#       and PyTorch but no network and none of this project's Debian packages.
#
#   scripts/gpu-check.sh
#       On the GPU machine, from the repository root. With the device tool, in ONE call:
#         run(command="bash scripts/gpu-check.sh", carry=[".gpu-deps"], timeout_s=600)
#       Unpacks .gpu-deps/*.deb into a private sysroot (never into /) when the system lacks the packages, configures
#       and builds (Hopper only: SFT_CUDA_ARCHS=90a-real), then
#         1. tests/gpu kernels test: every CUDA kernel against the CPU reference backend;
#         2. tests/gpu model step test: a tiny model's full training step, cuda vs cpu (loss, every gradient);
#         3. bench: one optimizer step of Qwen2.5-0.5B-shaped random weights, seq 1024, the largest batch that fits:
#            tokens/s, MFU, peak memory;
#         4. the same step with transformers + torch (bf16, SDPA) when installed (else says so), and the ratio.
#       Results go to $OUT (default ./gpu-out): summary.md, gpu-check.log, build.log, gtest_kernels.json,
#       gtest_model.json, bench.jsonl, e2e_train.log (seven files: the device tool returns at most eight).
#         5. if time is left: builds sft and runs tests/gpu/e2e_train.py (sft train --device cuda vs --device cpu).
# Debug knobs: SFT_GPU_CHECK_FORCE_SYSROOT=1 (use the carried .debs even if the system has oneDNN),
# SFT_GPU_CHECK_CONFIGURE_ONLY=1 (stop after cmake configure), SFT_BENCH_BATCHES="32 16" (batch sizes to try).
# Budget: SFT_GPU_CHECK_BUDGET seconds (default 570) for everything; every stage's timeout is capped by what is left.
# Expected: 2-4 min build (16 cores), 1 min tests, 2-3 min benchmarks.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
deps_dir="$root/.gpu-deps"
DEBS=(libdnnl-dev libdnnl2 ocl-icd-libopencl1 nlohmann-json3-dev libcli11-dev libpcre2-dev libpcre2-8-0 libpcre2-16-0
      libpcre2-32-0 libpcre2-posix3 libicu-dev libicu72 libgtest-dev libgmock-dev pkgconf pkgconf-bin libpkgconf3)

if [ "${1:-}" = "--prepare" ]; then
  set -e
  mkdir -p "$deps_dir"
  grep -qx '/.gpu-deps/' "$root/.git/info/exclude" 2>/dev/null || echo '/.gpu-deps/' >> "$root/.git/info/exclude"
  (cd "$deps_dir" && apt-get download "${DEBS[@]}")
  du -sh "$deps_dir"
  echo "gpu-check: prepared $deps_dir; now run on the GPU machine: bash scripts/gpu-check.sh (carry .gpu-deps)"
  exit 0
fi

OUT="${OUT:-$root/gpu-out}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu-check.log") 2>&1
summary="$OUT/summary.md"
build="${SFT_GPU_BUILD_DIR:-$root/build-gpu}"
jobs=$(nproc)
t_start=$(date +%s)
budget=${SFT_GPU_CHECK_BUDGET:-570}  # seconds for the whole script (the device tool kills a command at 600 s)
say() { echo "gpu-check [$(( $(date +%s) - t_start ))s]: $*"; }
left() { echo $(( budget - ($(date +%s) - t_start) )); }
# cap N: the smaller of N and the time left minus a 10 s reserve (at least 1)
cap() { local l=$(( $(left) - 10 )); [ "$l" -lt 1 ] && l=1; [ "$1" -lt "$l" ] && echo "$1" || echo "$l"; }
note() { echo "$*" >> "$summary"; }

echo "# sft.cpp GPU check ($(date -u +%Y-%m-%dT%H:%M:%SZ), commit $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?'))" > "$summary"
nvidia-smi -L 2>&1 | sed 's/^/    /' >> "$summary" || note "nvidia-smi failed"
note ""

# ---- toolchain and dependencies ----
export PATH="/usr/local/cuda/bin:$PATH"
command -v nvcc >/dev/null || { note "FAIL: nvcc not found"; exit 1; }
export CUDACXX=$(command -v nvcc)
cmake_args=(-G Ninja -DCMAKE_BUILD_TYPE=Release -DSFT_CUDA=ON -DSFT_TESTS=ON -DSFT_CUDA_ARCHS=90a-real)
run_env=()
if { [ ! -f /usr/include/oneapi/dnnl/dnnl.hpp ] || [ -n "${SFT_GPU_CHECK_FORCE_SYSROOT:-}" ]; } && [ -d "$deps_dir" ]; then
  sysroot=/tmp/sft-sysroot
  say "unpacking $(ls "$deps_dir"/*.deb | wc -l) carried .deb files into $sysroot"
  mkdir -p "$sysroot"
  for f in "$deps_dir"/*.deb; do dpkg-deb -x "$f" "$sysroot" || say "could not unpack $f"; done
  libdir="$sysroot/usr/lib/x86_64-linux-gnu"
  # .pc files name prefix=/usr: point them into the sysroot.
  for pc in "$libdir"/pkgconfig/*.pc "$sysroot"/usr/share/pkgconfig/*.pc; do
    [ -f "$pc" ] && sed -i "s|^prefix=/usr|prefix=$sysroot/usr|" "$pc"
  done
  export PKG_CONFIG_PATH="$libdir/pkgconfig:$sysroot/usr/share/pkgconfig${PKG_CONFIG_PATH:+:$PKG_CONFIG_PATH}"
  pkgconf_bin=$(command -v pkg-config || true)
  if [ -z "$pkgconf_bin" ]; then
    pkgconf_bin="$sysroot/usr/bin/pkgconf"
    cat > /tmp/sft-pkg-config <<WRAP
#!/bin/sh
LD_LIBRARY_PATH="$libdir\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "$pkgconf_bin" "\$@"
WRAP
    chmod +x /tmp/sft-pkg-config
    pkgconf_bin=/tmp/sft-pkg-config
  fi
  cmake_args+=(-DCMAKE_PREFIX_PATH="$sysroot/usr" -DICU_ROOT="$sysroot/usr" -DPKG_CONFIG_EXECUTABLE="$pkgconf_bin"
               -DCMAKE_EXE_LINKER_FLAGS="-Wl,-rpath-link,$libdir -Wl,-rpath,$libdir")
  run_env=(env "LD_LIBRARY_PATH=$libdir${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}")
elif [ ! -f /usr/include/oneapi/dnnl/dnnl.hpp ]; then
  note "WARNING: no oneDNN headers and no carried .gpu-deps/ (run scripts/gpu-check.sh --prepare where apt works)"
fi

# ---- build ----
say "configure"
if ! timeout "$(cap 150)" cmake -S "$root" -B "$build" "${cmake_args[@]}" > "$OUT/build.log" 2>&1; then
  note "FAIL: cmake configure (see build.log)"; tail -30 "$OUT/build.log"; exit 1
fi
[ -n "${SFT_GPU_CHECK_CONFIGURE_ONLY:-}" ] && { say "configured $build (SFT_GPU_CHECK_CONFIGURE_ONLY)"; exit 0; }
targets=(test_gpu_kernels)
if grep -q "test_gpu_model" "$build/build.ninja" 2>/dev/null; then targets+=(test_gpu_model gpu_step_bench); fi
say "build ${targets[*]} (-j$jobs)"
if ! timeout "$(cap 360)" cmake --build "$build" -j "$jobs" --target "${targets[@]}" >> "$OUT/build.log" 2>&1; then
  note "FAIL: build (see build.log)"; grep -E "error|FAILED" "$OUT/build.log" | head -20; exit 1
fi
say "build done"

# ---- 1. kernels vs CPU reference ----
say "kernel tests"
if timeout "$(cap 150)" "${run_env[@]}" "$build/tests/gpu/test_gpu_kernels" --gtest_output="json:$OUT/gtest_kernels.json"; then
  note "- kernels vs CPU reference: PASS"
else
  note "- kernels vs CPU reference: FAIL (see gpu-check.log / gtest_kernels.json)"
fi

# ---- 2. full training step, cuda vs cpu ----
if [ -x "$build/tests/gpu/test_gpu_model" ]; then
  say "model step test"
  if timeout "$(cap 120)" "${run_env[@]}" "$build/tests/gpu/test_gpu_model" --gtest_output="json:$OUT/gtest_model.json"; then
    note "- tiny-model training step, cuda vs cpu reference (loss + every gradient, F32 and BF16): PASS"
  else
    note "- tiny-model training step, cuda vs cpu reference: FAIL (see gpu-check.log / gtest_model.json)"
  fi
else
  note "- tiny-model training step: NOT RUN (src/model has no implementation in this checkout)"
fi

# ---- 3. benchmark: the largest batch that fits ----
bench_json=""
if [ -x "$build/bench/gpu_step_bench" ]; then
  for B in ${SFT_BENCH_BATCHES:-64 48 32 16 8 4 2 1}; do
    [ "$(left)" -lt 60 ] && { say "not enough time left for another bench run"; break; }
    say "sft bench batch $B"
    line=$(timeout "$(cap 150)" "${run_env[@]}" "$build/bench/gpu_step_bench" --batch "$B" --seq 1024 --steps 4 --warmup 1)
    rc=$?
    echo "$line" | tee -a "$OUT/bench.jsonl"
    if [ $rc -eq 0 ]; then bench_json="$line"; break; fi
    [ $rc -eq 3 ] || { say "bench failed (rc $rc), not an out-of-memory: stopping the search"; break; }
  done
fi
if [ -n "$bench_json" ]; then
  note ""
  note "## One optimizer step, Qwen2.5-0.5B shape, seq 1024 (sft CUDA backend, bf16 GEMMs, fp32 masters)"
  note '```'
  note "$bench_json"
  note '```'
else
  note "- sft benchmark: NOT MEASURED (see gpu-check.log)"
fi

# ---- 4. transformers + torch peer ----
py=$(command -v python3 || true)
if [ -n "$py" ] && [ "$(left)" -lt 45 ]; then
  note "- torch peer: skipped, the time budget is spent"
elif [ -n "$py" ]; then
  B=$(echo "$bench_json" | sed -n 's/.*"batch":\([0-9]*\).*/\1/p')
  say "torch bench (batch ${B:-8})"
  tline=$(PYTHONUNBUFFERED=1 timeout "$(cap 200)" "$py" "$root/bench/gpu_step/torch_step.py" --batch "${B:-8}" --seq 1024 --steps 4 --warmup 1 | tail -1)
  echo "$tline" | tee -a "$OUT/bench.jsonl"
  note ""
  note "## transformers + torch (bf16, SDPA), same shape"
  note '```'
  note "$tline"
  note '```'
  "$py" - "$bench_json" "$tline" >> "$summary" <<'PY'
import json, sys
try:
    s, t = json.loads(sys.argv[1]), json.loads(sys.argv[2])
except Exception:
    print("- ratio: not computed (a result is missing)"); sys.exit(0)
if not t.get("available", False) or "tokens_per_s" not in t:
    print(f"- torch peer: not available here ({t.get('reason') or t.get('error')}); no ratio")
else:
    print(f"- tokens/s sft/torch = {s['tokens_per_s'] / t['tokens_per_s']:.2f} "
          f"(sft batch {s['batch']}, torch batch {t['batch']}); peak memory sft {s['peak_mem_gib']} GiB, torch {t['peak_mem_gib']} GiB")
PY
else
  note "- torch peer: no python3 on this machine; skipped"
fi
# ---- 5. last, if time is left: the sft binary, `sft train --device cuda` vs `--device cpu` end to end ----
note ""
if [ "$(left)" -gt 90 ]; then
  if timeout "$(cap 200)" cmake --build "$build" -j "$jobs" --target sft >> "$OUT/build.log" 2>&1; then
    note "- sft binary with the CUDA backend: built"
    if [ -n "$py" ] && [ "$(left)" -gt 40 ]; then
      say "end-to-end sft train, cuda vs cpu"
      if timeout "$(cap 180)" "${run_env[@]}" "$py" "$root/tests/gpu/e2e_train.py" "$build/src/cli/sft" > "$OUT/e2e_train.log" 2>&1; then
        note "- sft train --device cuda vs cpu (tiny model, 6 steps, fp32 + bf16): $(tail -1 "$OUT/e2e_train.log")"
      else
        note "- sft train --device cuda vs cpu: FAIL (see e2e_train.log)"
      fi
      cat "$OUT/e2e_train.log"
    fi
  else
    note "- sft binary: build failed or out of time (see build.log)"
  fi
else
  note "- sft binary / end-to-end train: skipped, the time budget is spent"
fi
say "done; results in $OUT"
cat "$summary"
