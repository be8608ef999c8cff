#!/usr/bin/env bash
# Installs (once) Apache Arrow's C++ libraries for reading parquet / Arrow datasets and prints the folder.
# Debian 12 has no libarrow-dev, so the libraries and headers come from the pinned `pyarrow` wheel (it ships
# libarrow.so.2600, libparquet.so.2600 and include/), extracted into a cached product folder outside the clone:
#   ${SFT_CACHE:-~/.cache/sft}/arrow-26.0.1/{include,lib}
# CMake finds it there (-DSFT_PARQUET=AUTO|ON|OFF, -DSFT_ARROW_ROOT=...) and links with an rpath to lib/.
# The wheel is the manylinux_2_28 one (built with the new C++ ABI, _GLIBCXX_USE_CXX11_ABI=1, like GCC 12's default;
# needs glibc >= 2.28: Debian 12 has 2.36), fixed by file name and SHA-256 whatever Python runs this script.
# Exit status 0 and the folder on stdout when it is installed; non-zero (and nothing on stdout) when it cannot be
# (no network, no python3): the build then goes on without parquet support.
set -euo pipefail
version=26.0.1
wheel=pyarrow-$version-cp311-cp311-manylinux_2_28_x86_64.whl
sha256=39cb0f2418282c24bea6ceda77b03e5a8f0a5766b63a8bf194d4e2a2c423548c
dest="${SFT_CACHE:-$HOME/.cache/sft}/arrow-$version"
if [ -f "$dest/.complete" ]; then
  echo "$dest"
  exit 0
fi
[ "$(uname -m)" = x86_64 ] || { echo "setup-arrow: only x86_64 is pinned (got $(uname -m))" >&2; exit 1; }
command -v python3 >/dev/null || { echo "setup-arrow: python3 is needed to download the wheel" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "setup-arrow: downloading $wheel (about 55 MB, one time)" >&2
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 --implementation cp --abi cp311 \
  --platform manylinux_2_28_x86_64 -d "$tmp" "pyarrow==$version" >&2
echo "$sha256  $tmp/$wheel" | sha256sum -c --quiet - >&2
python3 - "$tmp/$wheel" "$tmp/x" <<'EOF'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    wanted = [n for n in z.namelist() if n.startswith(("pyarrow/include/arrow/", "pyarrow/include/parquet/"))
              or n in ("pyarrow/libarrow.so.2600", "pyarrow/libparquet.so.2600")]
    z.extractall(sys.argv[2], wanted)
EOF
rm -rf "$dest.partial"
mkdir -p "$dest.partial/lib"
mv "$tmp/x/pyarrow/include" "$dest.partial/include"
mv "$tmp/x/pyarrow/libarrow.so.2600" "$tmp/x/pyarrow/libparquet.so.2600" "$dest.partial/lib/"
# Linker names for -larrow / -lparquet; the SONAMEs stay libarrow.so.2600 / libparquet.so.2600.
ln -s libarrow.so.2600 "$dest.partial/lib/libarrow.so"
ln -s libparquet.so.2600 "$dest.partial/lib/libparquet.so"
echo "$version $wheel $sha256" > "$dest.partial/.complete"
rm -rf "$dest"
mv "$dest.partial" "$dest"
echo "setup-arrow: installed $dest" >&2
echo "$dest"
