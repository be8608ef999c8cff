"""Frozen weights (model/frozen_weights.h, backend/quant4.h) against bitsandbytes 0.50.2 and torch.

A sharded safetensors folder of random matrices (odd shapes, 65536 blocks, a column count that is not a multiple of the 64-element
block so blocks straddle rows, an odd element count, an all-zero block, an outlier, a constant matrix whose absmax
values are all equal, a matrix above one nested block of 256 absmax values) goes through sft's streamed loader
(tests/model/frozen_weights_tool: model::load_frozen with small chunks, so block-aligned chunking is exercised) into
bf16 and into NF4 / FP4 with and without double quantisation, from fp32 and from bf16 values. Compared:

- the packed 4-bit bytes and the per-block absmax: bit for bit against bitsandbytes.functional.quantize_4bit on a CPU
  tensor (every shape: its quantiser is the torch implementation of the published algorithm);
- double quantisation: the offset (mean of the absmax values) to within 1 ulp of torch's fp32 mean (torch's
  vectorised cascade sum and our double sum can round differently; the test reports how often), and the 8-bit
  absmax indices + nested absmax bit for bit against bitsandbytes' CPU quantize_blockwise of (absmax - our offset);
- dequantised values: bit for bit against bitsandbytes.functional.dequantize_4bit (its CPU kernel) where that kernel
  follows the algorithm (column counts that are multiples of 64 — for other shapes bitsandbytes 0.50.2's CPU kernel
  scales elements by a wrong block's absmax), and for every shape against an independent reimplementation of the
  published algorithm in torch (code[index] * absmax, double-quantised absmax = code8[q] * absmax2 + offset);
- the exported quant state (FrozenTensor::bnb_state) against QuantState.as_dict(packed=True): names, dtypes, shapes,
  bytes (the packed JSON too, whenever the offsets agree);
- bf16 storage: exactly torch's fp32 -> bf16 cast; fp32 storage: the values themselves.
No tolerance anywhere except the documented 1 ulp on the mean.
"""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

BUILD = Path(os.environ.get("SFT_BUILD_DIR", "build"))
TOOL = BUILD / "tests" / "frozen_weights_tool"


def matrices():
    g = torch.Generator().manual_seed(25)
    m = {
        "a.square": torch.randn(128, 128, generator=g) * 0.05,
        "a.straddle": torch.randn(64, 96, generator=g),          # blocks straddle rows (96 % 64 != 0)
        "a.odd": torch.randn(33, 131, generator=g) * 0.02,       # odd element count: a padded last nibble
        "a.tiny": torch.randn(3, 5, generator=g),                 # one partial block
        "a.wide": torch.randn(40, 448, generator=g) * 0.01,       # > 256 blocks: two nested blocks
        "b.constant": torch.full((16, 64), 0.125),                # all absmax equal: absmax - mean == 0
        "b.outlier": torch.randn(8, 192, generator=g) * 0.01,
        # 65536 blocks: enough absmax values that the 8-bit double quantisation meets values near its code
        # midpoints, where bitsandbytes' 65536-entry lookup table and a nearest-code search disagree (~1 in 1000)
        "c.many_blocks": torch.randn(256, 16384, generator=g) * torch.rand(256, 1, generator=g),
    }
    m["b.outlier"][3, 17] = 3.0
    m["a.square"][0, :64] = 0.0  # an all-zero block
    return m


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("frozen")
    mats = matrices()
    names = sorted(mats)
    shards = {"model-00001-of-00002.safetensors": names[: len(names) // 2],
              "model-00002-of-00002.safetensors": names[len(names) // 2:]}
    weight_map = {}
    for shard, keys in shards.items():
        save_file({k: mats[k].contiguous() for k in keys}, str(root / shard))
        weight_map.update({k: shard for k in keys})
    (root / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return root, mats


def run_tool(folder, out, fmt, dq, source, chunk=192):
    r = subprocess.run([str(TOOL), str(folder), str(out), fmt, "1" if dq else "0", source, str(chunk)],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return load_file(str(out))


def algorithm_dequant(packed, absmax, code, shape, dtype):
    """The published algorithm, independently: nibbles (high first) -> code -> times the block's absmax (fp32)."""
    n = shape[0] * shape[1]
    p = packed.reshape(-1).to(torch.int64)
    idx = torch.stack([p >> 4, p & 15], dim=1).reshape(-1)[:n]
    scale = absmax.repeat_interleave(64)[:n]
    return (code[idx] * scale).reshape(shape).to(dtype)


def nested_absmax(st):
    """absmax of a double-quantised QuantState, as the published algorithm defines it (two fp32 roundings)."""
    q = st.absmax.to(torch.int64)
    a2 = st.state2.absmax.repeat_interleave(256)[: q.numel()]
    return st.state2.code[q] * a2 + st.offset


@pytest.mark.parametrize("source", ["float32", "bfloat16"])
@pytest.mark.parametrize("qt,dq", [("nf4", False), ("nf4", True), ("fp4", False), ("fp4", True)])
def test_4bit_matches_bitsandbytes(folder, tmp_path, qt, dq, source):
    import bitsandbytes.functional as BF
    root, mats = folder
    ours = run_tool(root, tmp_path / "out.safetensors", qt, dq, source)
    tdt = torch.bfloat16 if source == "bfloat16" else torch.float32
    code = BF.get_4bit_type(qt, device="cpu")
    offsets_equal = 0
    for name, m in mats.items():
        A = m.to(tdt)
        q0, st0 = BF.quantize_4bit(A, blocksize=64, quant_type=qt)  # no double quant: the raw absmax
        q, st = BF.quantize_4bit(A, blocksize=64, quant_type=qt, compress_statistics=dq)
        assert torch.equal(ours[name].view(torch.uint8), q.view(torch.uint8)), f"{name}: packed bytes differ"
        if not dq:
            assert torch.equal(ours[name + ".absmax"], st.absmax), f"{name}: absmax differs"
            absmax = st.absmax
        else:
            # the offset: torch's fp32 mean vs ours (double sum, one rounding) within 1 ulp
            state = json.loads(bytes(ours[name + ".quant_state.bitsandbytes__" + qt].tolist()).decode())
            ours_off = np.float32(state["nested_offset"])
            ref_off = np.float32(st.offset.item())
            assert abs(int(ours_off.view(np.int32)) - int(ref_off.view(np.int32))) <= 1, f"{name}: offset"
            offsets_equal += ours_off == ref_off
            # 8-bit indices and nested absmax: bitsandbytes' CPU quantize_blockwise of (absmax - our offset)
            qa, st2 = BF.quantize_blockwise(st0.absmax - torch.tensor(ours_off), blocksize=256)
            assert torch.equal(ours[name + ".absmax"], qa), f"{name}: 8-bit absmax indices differ"
            assert torch.equal(ours[name + ".nested_absmax"], st2.absmax), f"{name}: nested absmax differs"
            assert torch.equal(ours[name + ".nested_quant_map"], st2.code), f"{name}: nested quant map differs"
            if ours_off == ref_off:
                assert torch.equal(ours[name + ".absmax"], st.absmax), f"{name}: 8-bit absmax vs bitsandbytes"
            # dequantise below with our offset and the nested state bitsandbytes derives from it
            st.offset, st.absmax, st.state2 = torch.tensor(ours_off), ours[name + ".absmax"], st2
            absmax = nested_absmax(st)
        assert torch.equal(ours[name + ".quant_map"], st.code), f"{name}: quant_map differs"
        # dequantisation: the published algorithm for every shape, bitsandbytes' CPU kernel where it follows it
        for key, dt in ((".values", torch.float32), (".values_bf16", torch.bfloat16)):
            want = algorithm_dequant(q, absmax, code, m.shape, dt).float()
            got = ours[name + key]
            assert torch.equal(got, want), f"{name}{key}: differs from the algorithm ({(got != want).sum()} values)"
        if m.shape[1] % 64 == 0:
            st.dtype = tdt
            bnb = BF.dequantize_4bit(q, st).float()
            want_key = ".values_bf16" if tdt == torch.bfloat16 else ".values"
            assert torch.equal(ours[name + want_key], bnb), f"{name}: differs from bitsandbytes' dequantize_4bit"
    if dq:
        print(f"double quant offsets bit-equal to torch's mean: {offsets_equal}/{len(mats)}")


@pytest.mark.parametrize("dq", [False, True])
def test_exported_quant_state_matches_bitsandbytes(folder, tmp_path, dq):
    import bitsandbytes.functional as BF
    root, mats = folder
    ours = run_tool(root, tmp_path / "out.safetensors", "nf4", dq, "bfloat16", chunk=1 << 22)
    for name, m in mats.items():
        q, st = BF.quantize_4bit(m.to(torch.bfloat16), blocksize=64, quant_type="nf4", compress_statistics=dq)
        ref = {name: q}
        ref.update({f"{name}.{k}": v for k, v in st.as_dict(packed=True).items()})
        got = {k: v for k, v in ours.items() if k == name or (k.startswith(name + ".") and not k.startswith(
            name + ".values"))}
        assert sorted(got) == sorted(ref), name
        state_key = name + ".quant_state.bitsandbytes__nf4"
        g, r = json.loads(bytes(got[state_key].tolist())), json.loads(bytes(ref[state_key].tolist()))
        same_offset = True
        if dq:  # the offset: within 1 ulp of torch's fp32 mean (see the module docstring); the rest identical
            go, ro = np.float32(g.pop("nested_offset")), np.float32(r.pop("nested_offset"))
            assert abs(int(go.view(np.int32)) - int(ro.view(np.int32))) <= 1, name
            same_offset = go == ro
        assert g == r, name
        for k, v in ref.items():
            assert got[k].dtype == v.dtype, k
            # what depends on the offset was compared bit for bit, with our offset, in the test above (the JSON
            # bytes: its other fields just above)
            if same_offset or not k.endswith((".absmax", ".nested_absmax", "bitsandbytes__nf4")):
                assert torch.equal(got[k], v), k


@pytest.mark.parametrize("source", ["float32", "bfloat16"])
def test_bf16_and_fp32_storage_are_the_torch_casts(folder, tmp_path, source):
    root, mats = folder
    bf = run_tool(root, tmp_path / "bf.safetensors", "bfloat16", False, source, chunk=100)
    f32 = run_tool(root, tmp_path / "f32.safetensors", "float32", False, source, chunk=100)
    for name, m in mats.items():
        assert torch.equal(bf[name + ".values"], m.to(torch.bfloat16).float()), name
        assert torch.equal(f32[name + ".values"], m), name


def test_reference_backend_loads_the_same_bits(folder, tmp_path):
    root, mats = folder
    a = run_tool(root, tmp_path / "fast.safetensors", "fp4", True, "bfloat16")
    r = subprocess.run([str(TOOL), str(root), str(tmp_path / "ref.safetensors"), "fp4", "1", "bfloat16", "4096",
                        "reference"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    b = load_file(str(tmp_path / "ref.safetensors"))
    assert sorted(a) == sorted(b)
    for k in a:
        assert torch.equal(a[k], b[k]), k
