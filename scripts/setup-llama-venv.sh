#!/usr/bin/env bash
# Creates (once) a Python venv with llama-cpp-python — llama.cpp itself, compiled from source by pip, CPU only — and
# prints its path. It is the oracle of the GGUF tests (tests/io/test_gguf_llama_cpp.py) and of bench/gguf_llama_cpp.sh:
# llama.cpp loads the files `sft export` writes and its greedy continuations / perplexity are compared with ours.
# Kept apart from scripts/setup-venv.sh's oracle venv because the compile takes many minutes on 2 cores; cached
# outside the clone under ~/.cache/sft/llama-venv-<sha of the pins and build flags>, so changing them rebuilds it.
set -euo pipefail
pins="llama-cpp-python==0.3.36 numpy==2.4.6"
# CPU only, no tools/examples/tests/server/multimodal: the bindings need only libllama + libggml.
cmake_args="-DGGML_CUDA=OFF -DGGML_METAL=OFF -DGGML_VULKAN=OFF -DGGML_BLAS=OFF -DGGML_NATIVE=ON \
-DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF -DLLAMA_BUILD_SERVER=OFF \
-DLLAMA_CURL=OFF -DLLAVA_BUILD=OFF -DMTMD_BUILD=OFF"
key=$(printf '%s\n%s\n' "$pins" "$cmake_args" | sha256sum | cut -c1-12)
venv="${SFT_CACHE:-$HOME/.cache/sft}/llama-venv-$key"
# SFT_LLAMA_NO_BUILD=1: only print the path of an existing venv (exit 3 when it has not been built), never build.
if [ ! -f "$venv/.complete" ] && [ -n "${SFT_LLAMA_NO_BUILD:-}" ]; then
  echo "setup-llama-venv: $venv not built (run scripts/setup-llama-venv.sh)" >&2
  exit 3
fi
if [ ! -f "$venv/.complete" ]; then
  echo "setup-llama-venv: creating $venv (one time; compiles llama.cpp, ~10-30 min on 2 cores)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >&2
  CMAKE_ARGS="$cmake_args" CMAKE_BUILD_PARALLEL_LEVEL="${SFT_LLAMA_JOBS:-2}" \
    "$venv/bin/pip" install -q --no-cache-dir $pins >&2
  touch "$venv/.complete"
fi
# llama.cpp's own converter (convert_hf_to_gguf.py + conversion/ + gguf-py/ of the same sdist) beside it: the
# reference `sft export` is compared with (tests/io/test_gguf_llama_cpp.py) and timed against (bench/gguf_llama_cpp.sh).
if [ ! -f "$venv/llama.cpp/.complete" ] && [ -z "${SFT_LLAMA_NO_BUILD:-}" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  "$venv/bin/pip" download -q --no-deps --no-binary :all: -d "$tmp" "${pins%% *}" >&2
  tar -xzf "$tmp"/llama_cpp_python-*.tar.gz -C "$tmp" --wildcards '*/vendor/llama.cpp/convert_hf_to_gguf.py' \
    '*/vendor/llama.cpp/conversion/*' '*/vendor/llama.cpp/gguf-py/*'
  rm -rf "$venv/llama.cpp"
  mv "$tmp"/llama_cpp_python-*/vendor/llama.cpp "$venv/llama.cpp"
  touch "$venv/llama.cpp/.complete"
fi
echo "$venv"
