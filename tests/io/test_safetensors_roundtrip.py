"""safetensors parity with the reference Python package (safetensors 0.8, the Rust implementation underneath).

- We write -> safetensors.numpy / safetensors.torch load the same bytes, names, shapes and metadata.
- They write F32 / BF16 / F16 (and an integer tensor) -> we read identical values, as float32 and as bfloat16
  (bit-exact: torch's float->bfloat16 cast rounds to nearest even, as sft::float_to_bf16 does).
- Sharded folders written by transformers' save_pretrained read back through the index.
- Validation parity: mutated files the reference rejects, we reject too (we may be stricter, never looser).
Needs the io_tool driver ($SFT_BUILD_DIR/tests/io_tool).
"""
import json
import os
import random
import struct
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors import safe_open
from safetensors.numpy import load_file as np_load
from safetensors.torch import load_file as torch_load
from safetensors.torch import save_file as torch_save

BUILD = Path(os.environ.get("SFT_BUILD_DIR", Path(__file__).resolve().parents[2] / "build"))
TOOL = BUILD / "tests" / "io_tool"


def run_tool(*args, check=True):
    r = subprocess.run([str(TOOL), *map(str, args)], capture_output=True, text=True, timeout=300)
    if check and r.returncode != 0:
        raise AssertionError(f"io_tool {args} failed: {r.stderr}")
    return r


def raw_bytes(t: torch.Tensor) -> bytes:
    return t.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()


def read_with_tool(path: Path, out: Path):
    r = run_tool("read", path, out)
    return json.loads(r.stdout)


def random_tensors(seed: int):
    g = torch.Generator().manual_seed(seed)
    return {
        "model.layers.0.self_attn.q_proj.weight": torch.randn(7, 5, generator=g, dtype=torch.float32) * 3,
        "model.embed_tokens.weight": torch.randn(11, 5, generator=g).to(torch.bfloat16),
        "model.norm.weight": (torch.randn(5, generator=g) * 0.1).to(torch.float16),
        "scalar": torch.randn((), generator=g),
        "empty": torch.zeros(0, 3),
        "ints": torch.arange(-3, 9, dtype=torch.int32).reshape(3, 4),
    }


TORCH_TO_ST = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16", torch.int32: "I32",
               torch.int64: "I64"}


@pytest.fixture(scope="module", autouse=True)
def tool_exists():
    if not TOOL.exists():
        pytest.fail(f"{TOOL} not built (cmake --build <build> --target io_tool)")


def test_we_write_reference_reads(tmp_path):
    tensors = random_tensors(1)
    manifest = []
    for name, t in tensors.items():
        raw = tmp_path / f"{len(manifest)}.raw"
        raw.write_bytes(raw_bytes(t))
        manifest.append({"name": name, "dtype": TORCH_TO_ST[t.dtype], "shape": list(t.shape), "file": str(raw)})
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    out = tmp_path / "ours.safetensors"
    run_tool("write", out, tmp_path / "manifest.json")

    loaded = torch_load(out)
    assert set(loaded) == set(tensors)
    for name, t in tensors.items():
        assert loaded[name].dtype == t.dtype, name
        assert loaded[name].shape == t.shape, name
        assert raw_bytes(loaded[name]) == raw_bytes(t), name
    with safe_open(out, framework="pt") as f:
        assert f.metadata() == {"format": "pt", "source": "io_tool"}
        assert sorted(f.keys()) == sorted(tensors)
    # numpy has no bfloat16: check the numpy loader on a file without it.
    np_manifest = [m for m in manifest if m["dtype"] != "BF16"]
    (tmp_path / "np.json").write_text(json.dumps(np_manifest))
    run_tool("write", tmp_path / "np.safetensors", tmp_path / "np.json")
    arrays = np_load(tmp_path / "np.safetensors")
    for m in np_manifest:
        t = tensors[m["name"]]
        np.testing.assert_array_equal(arrays[m["name"]], t.numpy())
    # Header layout of the reference writer: length is a multiple of 8, padded with spaces.
    data = out.read_bytes()
    n = struct.unpack("<Q", data[:8])[0]
    assert n % 8 == 0
    header = data[8:8 + n].decode()
    assert header.rstrip(" ") == header.strip() and header.startswith("{")


def test_reference_writes_we_read(tmp_path):
    tensors = random_tensors(2)
    path = tmp_path / "ref.safetensors"
    torch_save(tensors, path, metadata={"format": "pt", "k": "v"})
    listing = read_with_tool(path, tmp_path / "out")
    assert listing["__metadata__"] == {"format": "pt", "k": "v"}
    for name, t in tensors.items():
        assert listing[name]["dtype"] == TORCH_TO_ST[t.dtype]
        assert listing[name]["shape"] == list(t.shape)
        if not t.is_floating_point():
            continue
        f32 = np.fromfile(tmp_path / "out" / f"{name}.f32", dtype=np.float32).reshape(t.shape)
        np.testing.assert_array_equal(f32, t.float().numpy())  # exact: widening is lossless
        bf16 = np.fromfile(tmp_path / "out" / f"{name}.bf16", dtype=np.uint16).reshape(t.shape)
        want = t.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        np.testing.assert_array_equal(bf16, want)  # bit-exact rounding, as torch


def test_special_values(tmp_path):
    # Rounding edge cases for the bf16 read path: ties, subnormals, infinities, NaN, f16 extremes.
    vals = torch.tensor([0.0, -0.0, 1.0 + 2**-8, 1.0 + 3 * 2**-8, 1e-40, -1e-45, 3.4e38, float("inf"),
                         float("-inf"), float("nan"), 65504.0, 6e-8], dtype=torch.float32)
    path = tmp_path / "special.safetensors"
    torch_save({"f32": vals, "f16": vals.to(torch.float16), "bf16": vals.to(torch.bfloat16)}, path)
    read_with_tool(path, tmp_path / "out")
    for name, t in {"f32": vals, "f16": vals.to(torch.float16), "bf16": vals.to(torch.bfloat16)}.items():
        f32 = np.fromfile(tmp_path / "out" / f"{name}.f32", dtype=np.float32)
        np.testing.assert_array_equal(f32, t.float().numpy())  # NaN == NaN for assert_array_equal
        bf16 = np.fromfile(tmp_path / "out" / f"{name}.bf16", dtype=np.uint16)
        want = t.to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)
        nan = np.isnan(t.float().numpy())
        np.testing.assert_array_equal(bf16[~nan], want[~nan])
        assert np.all((bf16[nan] & 0x7F80) == 0x7F80) and np.all((bf16[nan] & 0x7F) != 0)  # still a NaN


def test_sharded_folder_from_transformers(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=97, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=False)
    model = LlamaForCausalLM(cfg).to(torch.bfloat16)
    model.save_pretrained(tmp_path / "m", safe_serialization=True, max_shard_size="20KB")
    assert (tmp_path / "m" / "model.safetensors.index.json").exists()
    assert len(list((tmp_path / "m").glob("model-*.safetensors"))) > 1
    listing = read_with_tool(tmp_path / "m", tmp_path / "out")
    sd = model.state_dict()
    assert set(listing) == set(sd)
    for name, t in sd.items():
        f32 = np.fromfile(tmp_path / "out" / f"{name}.f32", dtype=np.float32).reshape(t.shape)
        np.testing.assert_array_equal(f32, t.float().numpy())

    # Our writer re-saves the folder sharded (and then as one file); transformers loads both identically.
    for max_bytes in (16384, 0):
        out = tmp_path / f"resaved-{max_bytes}"
        run_tool("resave", tmp_path / "m", out, max_bytes)
        assert (out / "model.safetensors.index.json").exists() == (max_bytes > 0)
        back = LlamaForCausalLM.from_pretrained(out, dtype=torch.bfloat16)
        for name, t in back.state_dict().items():
            assert torch.equal(t, sd[name]), name

    # A missing shard is named.
    shards = sorted((tmp_path / "m").glob("model-*.safetensors"))
    shards[-1].unlink()
    r = run_tool("read", tmp_path / "m", tmp_path / "out2", check=False)
    assert r.returncode == 1 and shards[-1].name in r.stderr and "missing" in r.stderr


def _reference_accepts(path: Path) -> bool:
    try:
        with safe_open(path, framework="np") as f:
            for k in f.keys():
                f.get_slice(k)
        return True
    except Exception:
        return False


def test_validation_never_looser_than_reference(tmp_path):
    """Random header mutations: whenever the reference rejects a file we must reject it too, and whatever we both
    accept must read back to the same tensors. (We are stricter on purpose in a few cases, e.g. duplicate keys.)"""
    base = {"a.weight": torch.arange(12, dtype=torch.float32).reshape(3, 4),
            "b.bias": torch.arange(5, dtype=torch.float16)}
    good = tmp_path / "good.safetensors"
    torch_save(base, good)
    orig = bytearray(good.read_bytes())
    n = struct.unpack("<Q", orig[:8])[0]
    rng = random.Random(7)
    interesting = b'{}[]",:0123456789-. \x00'
    ours_only_rejects = both_accept = both_reject = 0
    for i in range(300):
        data = bytearray(orig)
        if i % 5 == 4:
            data = data[:rng.randrange(len(data))]
        else:
            for _ in range(rng.randint(1, 2)):
                pos = rng.randrange(8, 8 + n) if rng.random() < 0.9 else rng.randrange(8)
                data[pos] = rng.choice(interesting) if rng.random() < 0.7 else rng.randrange(256)
        p = tmp_path / "mut.safetensors"
        p.write_bytes(bytes(data))
        ref_ok = _reference_accepts(p)
        r = run_tool("read", p, tmp_path / "mut_out", check=False)
        assert r.returncode in (0, 1), f"io_tool crashed (rc {r.returncode}) on mutation {i}: {r.stderr}"
        ours_ok = r.returncode == 0
        if ours_ok:
            assert ref_ok, f"we accepted a file the reference rejects (mutation {i}): {bytes(data[:8 + n])!r}"
            both_accept += 1
            ref = np_load(p)
            for name, arr in ref.items():
                if arr.dtype.kind == "f":
                    ours = np.fromfile(tmp_path / "mut_out" / f"{name}.f32", dtype=np.float32).reshape(arr.shape)
                    np.testing.assert_array_equal(ours, arr.astype(np.float32))
        else:
            assert r.stderr.startswith("io_tool: error: ") and str(p) in r.stderr, r.stderr
            if ref_ok:
                ours_only_rejects += 1
            else:
                both_reject += 1
    print(f"mutations: both accept {both_accept}, both reject {both_reject}, only we reject {ours_only_rejects}")
    assert both_reject > 100 and both_accept > 5, (both_accept, both_reject, ours_only_rejects)
