"""Writes a random-weight Hugging Face model folder with the shapes of a published Qwen2.5 model, in bf16, sharded the
way the real checkpoint is (model-0000i-of-0000n.safetensors of at most ~4 GB + model.safetensors.index.json), once:
the folder is reused when its .complete marker exists. For the big-model LoRA / QLoRA benchmarks
(bench/big_lora.sh, bench/stream_load.sh): Qwen2.5-7B is ~15 GB on disk, Qwen2.5-14B ~30 GB — check `df -h` first.

Memory stays small whatever the size: every shard's safetensors header is written first (shapes and offsets are known
up front) and each tensor is generated and written in row chunks of <= 32M values, so the script never holds more
than one chunk (~128 MB of fp32) — a 7B folder is written on a machine others are using.

Values: normal(0, 0.02) matrices (rounded to bf16), norms 1, biases normal(0, 0.02); seeded per tensor name, so a
folder is the same on every machine. The Qwen2.5 tokenizer is not redistributable here; --tokenizer_dir copies
tokenizer.json / tokenizer_config.json from a folder of a compatible vocabulary (default: the shared Qwen3 one, whose
151,669 tokens fit Qwen2.5's 151,936 / 152,064 embedding rows).

usage: make_random_model.py SHAPE [--out DIR] [--layers N] [--tokenizer_dir DIR]
       SHAPE: qwen2.5-0.5b | qwen2.5-7b | qwen2.5-14b     prints the folder path
"""
import argparse
import json
import os
import shutil
import struct
import zlib
from pathlib import Path

import torch

# The published configs' sizes (Qwen/Qwen2.5-0.5B, -7B, -14B config.json).
SHAPES = {
    "qwen2.5-0.5b": dict(hidden_size=896, intermediate_size=4864, num_hidden_layers=24, num_attention_heads=14,
                         num_key_value_heads=2, vocab_size=151936, tie_word_embeddings=True, rms_norm_eps=1e-6),
    "qwen2.5-7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                       num_key_value_heads=4, vocab_size=152064, tie_word_embeddings=False, rms_norm_eps=1e-6),
    "qwen2.5-14b": dict(hidden_size=5120, intermediate_size=13824, num_hidden_layers=48, num_attention_heads=40,
                        num_key_value_heads=8, vocab_size=152064, tie_word_embeddings=False, rms_norm_eps=1e-5),
}
MAX_SHARD_BYTES = 4_000_000_000
CHUNK_VALUES = 32 << 20


def tensor_list(c):
    """(name, shape) in the order transformers saves a Qwen2ForCausalLM."""
    H, I, V = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    d = H // c["num_attention_heads"]
    kv = c["num_key_value_heads"] * d
    out = [("model.embed_tokens.weight", (V, H))]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        out += [(p + "self_attn.q_proj.weight", (H, H)), (p + "self_attn.q_proj.bias", (H,)),
                (p + "self_attn.k_proj.weight", (kv, H)), (p + "self_attn.k_proj.bias", (kv,)),
                (p + "self_attn.v_proj.weight", (kv, H)), (p + "self_attn.v_proj.bias", (kv,)),
                (p + "self_attn.o_proj.weight", (H, H)),
                (p + "mlp.gate_proj.weight", (I, H)), (p + "mlp.up_proj.weight", (I, H)),
                (p + "mlp.down_proj.weight", (H, I)),
                (p + "input_layernorm.weight", (H,)), (p + "post_attention_layernorm.weight", (H,))]
    out.append(("model.norm.weight", (H,)))
    if not c["tie_word_embeddings"]:
        out.append(("lm_head.weight", (V, H)))
    return out


def numel(shape):
    n = 1
    for s in shape:
        n *= s
    return n


def shards_of(tensors):
    shards, cur, size = [], [], 0
    for name, shape in tensors:
        b = 2 * numel(shape)
        if cur and size + b > MAX_SHARD_BYTES:
            shards.append(cur)
            cur, size = [], 0
        cur.append((name, shape))
        size += b
    shards.append(cur)
    return shards


def write_shard(path, tensors):
    header, off = {}, 0
    for name, shape in tensors:
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [off, off + 2 * numel(shape)]}
        off += 2 * numel(shape)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header, separators=(",", ":")).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        f.write(struct.pack("<Q", len(h)))
        f.write(h)
        for name, shape in tensors:
            g = torch.Generator().manual_seed(zlib.crc32(name.encode()))
            if name.endswith("norm.weight"):
                f.write(torch.ones(shape, dtype=torch.bfloat16).view(torch.int16).numpy().tobytes())
                continue
            rows = shape[0]
            per_row = numel(shape) // rows
            step = max(1, CHUNK_VALUES // per_row)
            for r0 in range(0, rows, step):
                r1 = min(rows, r0 + step)
                x = (torch.randn((r1 - r0,) + tuple(shape[1:]), generator=g) * 0.02).to(torch.bfloat16)
                f.write(x.view(torch.int16).numpy().tobytes())
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("shape", choices=sorted(SHAPES))
    ap.add_argument("--out", default=None)
    ap.add_argument("--layers", type=int, default=None)
    ap.add_argument("--tokenizer_dir", default="/work/shared/data/tokenizers/qwen3")
    a = ap.parse_args()
    c = dict(SHAPES[a.shape])
    if a.layers:
        c["num_hidden_layers"] = a.layers
    name = a.shape + (f"-{a.layers}l" if a.layers else "")
    out = Path(a.out or Path.home() / ".cache" / "sft" / "bench-models" / name)
    if (out / ".complete").exists():
        print(out)
        return
    out.mkdir(parents=True, exist_ok=True)
    tensors = tensor_list(c)
    shards = shards_of(tensors)
    weight_map, total = {}, 0
    for i, sh in enumerate(shards):
        fname = f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors"
        write_shard(out / fname, sh)
        for n, s in sh:
            weight_map[n] = fname
            total += 2 * numel(s)
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2))
    cfg = dict(architectures=["Qwen2ForCausalLM"], model_type="qwen2", attention_dropout=0.0, bos_token_id=151643,
               eos_token_id=151643, hidden_act="silu", initializer_range=0.02, max_position_embeddings=32768,
               max_window_layers=c["num_hidden_layers"], rope_theta=1000000.0, sliding_window=32768,
               use_sliding_window=False, use_cache=True, torch_dtype="bfloat16", **c)
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    for f in ("tokenizer.json", "tokenizer_config.json"):
        src = Path(a.tokenizer_dir) / f
        if src.exists():
            shutil.copy(src, out / f)
    (out / ".complete").write_text(f"{total} bytes of weights in {len(shards)} shards\n")
    print(out)


if __name__ == "__main__":
    main()
