#!/usr/bin/env bash
# Creates (once) the Python venv with the pinned test oracles of tests/requirements.txt and prints its path.
# Cached outside the clone, keyed by the requirements file's hash, so a fresh clone (CI) reuses it.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
req="$root/tests/requirements.txt"
key=$(sha256sum "$req" | cut -c1-12)
venv="${SFT_CACHE:-$HOME/.cache/sft}/venv-$key"
if [ ! -f "$venv/.complete" ]; then
  echo "setup-venv: creating $venv (one time; several GB of wheels)" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --upgrade pip >&2
  "$venv/bin/pip" install -q -r "$req" >&2
  nodeps=$(sed -n 's/^# nodeps: //p' "$req")
  [ -z "$nodeps" ] || "$venv/bin/pip" install -q --no-deps $nodeps >&2
  touch "$venv/.complete"
fi
echo "$venv"
