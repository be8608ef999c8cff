"""GGUF cases of the bad-input catalogue (run_robustness.py imports CASES and EXTRA from here): broken .gguf files
(each made from `sft export` of the catalogue's tiny Qwen2, then edited with the minimal GGUF reader/writer below)
and bad `sft export` / `--save_gguf` requests. Python 3 standard library only, like the runner."""
import os
import struct
import subprocess

A_GGUF = "gguf"
# GGUF value types: (struct format, size) of the scalars; 8 = string, 9 = array
SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
BLOCK = {0: (1, 4), 1: (1, 2), 6: (32, 22), 8: (32, 34), 30: (1, 2)}  # F32 F16 Q5_0 Q8_0 BF16


def _read_value(b, p, t):
    if t in SCALARS:
        return struct.unpack_from(SCALARS[t], b, p)[0], p + struct.calcsize(SCALARS[t])
    if t == 8:
        n = struct.unpack_from("<Q", b, p)[0]
        return b[p + 8:p + 8 + n].decode("utf-8", "surrogateescape"), p + 8 + n
    et, n = struct.unpack_from("<IQ", b, p)
    p += 12
    out = []
    for _ in range(n):
        v, p = _read_value(b, p, et)
        out.append(v)
    return (et, out), p


def read_gguf(b):
    """-> (kvs [(key, type, value)], tensors [(name, dims, type, data bytes)]) of a well-formed file."""
    _, _, nt, nkv = struct.unpack_from("<IIQQ", b, 0)
    p, kvs, infos = 24, [], []
    for _ in range(nkv):
        k, p = _read_value(b, p, 8)
        t = struct.unpack_from("<I", b, p)[0]
        v, p = _read_value(b, p + 4, t)
        kvs.append((k, t, v))
    for _ in range(nt):
        name, p = _read_value(b, p, 8)
        nd = struct.unpack_from("<I", b, p)[0]
        dims = list(struct.unpack_from(f"<{nd}q", b, p + 4))
        t, off = struct.unpack_from("<IQ", b, p + 4 + 8 * nd)
        p += 4 + 8 * nd + 12
        infos.append((name, dims, t, off))
    start = (p + 31) // 32 * 32
    tensors = []
    for name, dims, t, off in infos:
        n = 1
        for d in dims:
            n *= d
        blk, size = BLOCK[t]
        tensors.append((name, dims, t, b[start + off:start + off + n // blk * size]))
    return kvs, tensors


def _write_value(t, v):
    if t in SCALARS:
        return struct.pack(SCALARS[t], v)
    if t == 8:
        e = v.encode("utf-8", "surrogateescape")
        return struct.pack("<Q", len(e)) + e
    et, items = v
    return struct.pack("<IQ", et, len(items)) + b"".join(_write_value(et, x) for x in items)


def write_gguf(kvs, tensors):
    out = [struct.pack("<IIQQ", 0x46554747, 3, len(tensors), len(kvs))]
    for k, t, v in kvs:
        out += [_write_value(8, k), struct.pack("<I", t), _write_value(t, v)]
    off = 0
    for name, dims, t, data in tensors:
        out += [_write_value(8, name), struct.pack("<I", len(dims)), struct.pack(f"<{len(dims)}q", *dims),
                struct.pack("<IQ", t, off)]
        off += (len(data) + 31) // 32 * 32
    head = b"".join(out)
    head += b"\0" * ((32 - len(head) % 32) % 32)
    return head + b"".join(d + b"\0" * ((32 - len(d) % 32) % 32) for _, _, _, d in tensors)


def exported(env, d, outtype="f32"):
    p = os.path.join(d, "base.gguf")
    if not os.path.exists(p):
        r = subprocess.run([env.sft, "export", "--model", env.model, "--outfile", p, "--outtype", outtype],
                           capture_output=True, text=True)
        if r.returncode != 0:
            raise RuntimeError(r.stderr)
    return p


def gguf_with(kv_edit=None, tensor_edit=None, raw_edit=None, outtype="f32"):
    """A copy of the exported tiny model as bad.gguf: kv_edit(dict key -> [type, value]) / tensor_edit(list) /
    raw_edit(bytes) -> bytes."""
    def make(env, d):
        with open(exported(env, d, outtype), "rb") as f:
            b = f.read()
        if kv_edit or tensor_edit:
            kvs, tensors = read_gguf(b)
            kv = {k: [t, v] for k, t, v in kvs}
            if kv_edit:
                kv_edit(kv)
            if tensor_edit:
                tensor_edit(tensors)
            b = write_gguf([(k, t, v) for k, (t, v) in kv.items()], tensors)
        if raw_edit:
            b = raw_edit(b)
        p = os.path.join(d, "bad.gguf")
        with open(p, "wb") as f:
            f.write(b)
        return p
    return make


def set_kv(key, t, v):
    return lambda kv: kv.__setitem__(key, [t, v])


def q5_0_tensor(tensors):
    for i, (name, dims, t, data) in enumerate(tensors):
        if name == "blk.0.ffn_up.weight":  # ggml dims [32, 64]: 64 Q5_0 blocks (a valid type sft does not decode)
            tensors[i] = (name, dims, 6, b"\0" * (64 * 22))


def shrink_ffn(kv):
    kv["qwen2.feed_forward_length"] = [4, 48]


def info(model_setup):
    return lambda env, d: ["info", "--model", model_setup(env, d)]


def export_to(outfile_of, *extra):
    return lambda env, d: ["export", "--model", env.model, "--outfile", outfile_of(d), *extra]


def existing_outfile(d):
    p = os.path.join(d, "exists.gguf")
    with open(p, "w") as f:
        f.write("keep me")
    return p


def unchanged_outfile(d, res):
    with open(os.path.join(d, "exists.gguf")) as f:
        return None if f.read() == "keep me" else "the existing file was changed"


def nothing_written(d, res):
    left = [n for n in os.listdir(d) if n.endswith(".gguf") or ".tmp" in n]
    return f"left {left}" if left else None


def nan_model(env, d):
    import array
    import json
    import shutil
    m = os.path.join(d, "m")
    shutil.copytree(env.model, m)
    with open(os.path.join(m, "model.safetensors"), "rb") as f:
        b = bytearray(f.read())
    n = struct.unpack_from("<Q", b, 0)[0]
    hdr = json.loads(b[8:8 + n])
    begin = 8 + n + hdr["model.layers.1.mlp.down_proj.weight"]["data_offsets"][0]
    b[begin:begin + 4] = array.array("f", [float("nan")]).tobytes()
    with open(os.path.join(m, "model.safetensors"), "wb") as f:
        f.write(b)
    return ["export", "--model", m, "--outfile", os.path.join(d, "x.gguf"), "--outtype", "q8_0"]


CASES = [
    ("gguf/truncated", A_GGUF, info(gguf_with(raw_edit=lambda b: b[:len(b) - 1000])), 1, ["bad.gguf", "truncated"]),
    ("gguf/truncated_header", A_GGUF, info(gguf_with(raw_edit=lambda b: b[:300])), 1, ["bad.gguf", "truncated"]),
    ("gguf/bad_magic", A_GGUF, info(gguf_with(raw_edit=lambda b: b"GGML" + b[4:])), 1, ["bad.gguf"]),
    ("gguf/tensor_count_2_60", A_GGUF, info(gguf_with(raw_edit=lambda b: b[:8] + struct.pack("<Q", 1 << 60) + b[16:])),
     1, ["bad.gguf", "tensor count"]),
    ("gguf/string_length_2_62", A_GGUF, info(gguf_with(raw_edit=lambda b: b[:24] + struct.pack("<Q", 1 << 62) + b[32:])),
     1, ["bad.gguf", "truncated"]),
    ("gguf/unknown_architecture", A_GGUF, info(gguf_with(set_kv("general.architecture", 8, "phi3"))), 1,
     ["bad.gguf", "general.architecture", "phi3"]),
    ("gguf/block_count_2_40", A_GGUF, info(gguf_with(set_kv("qwen2.block_count", 10, 1 << 40))), 1,
     ["bad.gguf", "num_hidden_layers"]),
    ("gguf/block_count_more_than_tensors", A_GGUF, info(gguf_with(set_kv("qwen2.block_count", 4, 3))), 1,
     ["bad.gguf", "blk.2."]),
    ("gguf/metadata_contradicts_shapes", A_GGUF, info(gguf_with(shrink_ffn)), 1,
     ["bad.gguf", "blk.0.ffn_gate.weight", "shape"]),
    ("gguf/unsupported_tensor_type", A_GGUF,
     lambda env, d: ["generate", "--model", gguf_with(tensor_edit=q5_0_tensor)(env, d), "--prompt", "hi",
                     "--max_new_tokens", "2"], 1, ["bad.gguf", "blk.0.ffn_up.weight", "Q5_0"]),
    ("gguf/tokenizer_pre_unknown", A_GGUF,
     lambda env, d: ["tokenize", "--model", gguf_with(set_kv("tokenizer.ggml.pre", 8, "martian"))(env, d), "--text",
                     "hi"], 1, ["bad.gguf", "tokenizer.ggml.pre", "martian"]),
    ("gguf/head_count_string", A_GGUF, info(gguf_with(set_kv("qwen2.attention.head_count", 8, "4"))), 1,
     ["bad.gguf", "qwen2.attention.head_count", "STRING"]),
    ("gguf/q8_0_reads", A_GGUF, lambda env, d: ["info", "--model", exported(env, d, "q8_0")], 0, ["Q8_0"]),
    ("export/outfile_exists", A_GGUF, export_to(existing_outfile), 1, ["exists.gguf", "--overwrite"]),
    ("export/unknown_outtype", A_GGUF, export_to(lambda d: os.path.join(d, "x.gguf"), "--outtype", "q4_k"), 1,
     ["--outtype", "q4_k"]),
    ("export/outfile_folder_missing", A_GGUF, export_to(lambda d: os.path.join(d, "no", "x.gguf")), 1, ["x.gguf"]),
    ("export/nan_weight", A_GGUF, nan_model, 1, ["model.layers.1.mlp.down_proj.weight", "non-finite"]),
    ("export/adapter_missing", A_GGUF, export_to(lambda d: os.path.join(d, "x.gguf"), "--adapter", "/nonexistent"), 1,
     ["--adapter", "/nonexistent"]),
    ("train/save_gguf_bad_type", A_GGUF,
     lambda env, d: ["train", *env.train_args(env.data, os.path.join(d, "out")), "--max_steps", "1", "--save_gguf",
                     "q4"], 1, ["--save_gguf", "q4"]),
]

EXTRA = {
    "export/outfile_exists": unchanged_outfile,
    "export/unknown_outtype": nothing_written,
    "export/outfile_folder_missing": lambda d, r: None if not os.path.exists(os.path.join(d, "no")) else "folder made",
    "export/nan_weight": nothing_written,
    "train/save_gguf_bad_type": lambda d, r: None if not os.path.exists(os.path.join(d, "out")) else "training ran",
}
