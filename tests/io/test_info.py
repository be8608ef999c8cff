"""`sft info` on small model folders written by transformers (random weights, real HF layout), plus bad folders.

Parameter counts, dtype on disk and the architecture fields are compared with what transformers reports for the
same folder; the memory figures are checked for their defining structure (16 bytes/param for masters + grads +
AdamW, 2 more in bf16 mode, activations linear in batch*seq_len); their formula is documented in docs/arch/io.md.
"""
import json
import os
import subprocess
from pathlib import Path

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

SRC = Path(os.environ.get("SFT_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BUILD = Path(os.environ.get("SFT_BUILD_DIR", SRC / "build"))
SFT = Path(os.environ.get("SFT_BIN", BUILD / "src" / "cli" / "sft"))


def sft(*args):
    return subprocess.run([str(SFT), *map(str, args)], capture_output=True, text=True, timeout=120)


def info_json(folder, *extra):
    r = sft("info", "--model", folder, "--json", *extra)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("models")
    torch.manual_seed(0)
    qwen = Qwen2ForCausalLM(Qwen2Config(vocab_size=151, hidden_size=48, intermediate_size=96, num_hidden_layers=2,
                                        num_attention_heads=6, num_key_value_heads=2, tie_word_embeddings=True,
                                        max_position_embeddings=256))
    qwen.to(torch.bfloat16).save_pretrained(root / "qwen", safe_serialization=True)
    llama = LlamaForCausalLM(LlamaConfig(vocab_size=131, hidden_size=64, intermediate_size=80, num_hidden_layers=3,
                                         num_attention_heads=4, num_key_value_heads=1, head_dim=32,
                                         attention_bias=True, tie_word_embeddings=False,
                                         rope_scaling={"rope_type": "llama3", "factor": 8.0,
                                                       "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                                                       "original_max_position_embeddings": 64},
                                         rope_theta=500000.0, max_position_embeddings=512))
    llama.save_pretrained(root / "llama", safe_serialization=True, max_shard_size="40KB")
    (root / "qwen" / "tokenizer.json").write_text("{}")
    return {"root": root, "qwen": (root / "qwen", qwen), "llama": (root / "llama", llama)}


@pytest.mark.parametrize("which", ["qwen", "llama"])
def test_info_matches_transformers(folders, which):
    folder, model = folders[which]
    cfg = model.config
    j = info_json(folder)
    assert j["num_parameters"] == model.num_parameters()
    assert j["embedding_parameters"] == model.get_input_embeddings().weight.numel()
    assert j["architecture"] == cfg.architectures[0]
    assert j["model_type"] == cfg.model_type
    for key in ("num_hidden_layers", "hidden_size", "intermediate_size", "num_attention_heads",
                "num_key_value_heads", "vocab_size", "tie_word_embeddings"):
        assert j[key] == getattr(cfg, key), key
    assert j["head_dim"] == getattr(cfg, "head_dim", cfg.hidden_size // cfg.num_attention_heads)
    on_disk = {str(v.dtype) for v in model.state_dict().values()}
    want_dtype = {"torch.bfloat16": "BF16", "torch.float32": "F32"}[on_disk.pop()]
    assert list(j["dtype_on_disk"]) == [want_dtype]
    assert j["dtype_on_disk"][want_dtype]["elements"] == model.num_parameters()
    if which == "llama":
        assert j["weight_files"] > 1 and j["rope_scaling"] == "llama3" and j["rope_theta"] == 500000.0
    else:
        assert j["tokenizer_files"] == ["tokenizer.json", "generation_config.json"]  # the latter from save_pretrained


def test_memory_estimate_structure(folders):
    folder, model = folders["qwen"]
    P = model.num_parameters()
    a = info_json(folder, "--seq_len", 64, "--batch_size", 2)["memory_bytes"]
    b = info_json(folder, "--seq_len", 128, "--batch_size", 2)["memory_bytes"]
    c = info_json(folder, "--seq_len", 64, "--batch_size", 4)["memory_bytes"]
    # The decoder's buffers (model::plan_training_memory; exact against a counting backend in
    # tests/model/family_test.cpp): every tensor starts 64-byte aligned, so masters/gradients are 4P plus at most
    # 60 bytes per tensor; the masters also hold the RoPE frequency table (head_dim / 2 floats).
    n_tensors = len(model.state_dict()) - int(model.config.tie_word_embeddings)
    slack = 60 * n_tensors
    assert 4 * P <= a["fp32_gradients"] <= 4 * P + slack
    assert a["fp32_master_weights"] == a["fp32_gradients"] + 4 * (model.config.hidden_size // model.config.num_attention_heads // 2)
    assert a["adamw_m_v"] == 8 * P
    # bf16 copies: 2 bytes per float where bf16 gemms are native, bf16-rounded fp32 (4 bytes) where emulated
    assert a["bf16_weight_copies"] in (a["fp32_gradients"] // 2, a["fp32_gradients"])
    fixed = a["fp32_master_weights"] + a["fp32_gradients"] + a["adamw_m_v"]
    assert a["total_fp32"] == fixed + a["activations_fp32"]
    assert a["total_bf16"] == fixed + a["bf16_weight_copies"] + a["activations_bf16"]
    # Activations grow linearly with tokens per micro-batch (plus a constant LM-head chunk): doubling seq_len or
    # batch gives the same figure, and the increment equals the token-proportional part.
    assert b["activations_fp32"] == c["activations_fp32"] > a["activations_fp32"]
    d = info_json(folder, "--seq_len", 256, "--batch_size", 2)["memory_bytes"]
    assert d["activations_fp32"] - b["activations_fp32"] == 2 * (b["activations_fp32"] - a["activations_fp32"])


def test_info_text_output(folders):
    folder, model = folders["qwen"]
    r = sft("info", "--model", folder)
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "Qwen2ForCausalLM" in out
    assert f"{model.num_parameters():,}" in out
    assert "6 query / 2 key-value" in out
    assert "BF16" in out and "AdamW" in out and "total, bf16 compute" in out


def test_info_errors(folders, tmp_path):
    root = folders["root"]
    r = sft("info", "--model", tmp_path / "nope")
    assert r.returncode == 1 and "not found" in r.stderr
    (tmp_path / "empty").mkdir()
    r = sft("info", "--model", tmp_path / "empty")
    assert r.returncode == 1 and "config.json" in r.stderr
    # Pickle only.
    pk = tmp_path / "pickle"
    pk.mkdir()
    (pk / "config.json").write_text((root / "qwen" / "config.json").read_text())
    torch.save({"x": torch.zeros(1)}, pk / "pytorch_model.bin")
    r = sft("info", "--model", pk)
    assert r.returncode == 1 and "pytorch_model.bin" in r.stderr and "safe_serialization=True" in r.stderr
    # Weights that disagree with config.json name the tensor.
    bad = tmp_path / "bad"
    bad.mkdir()
    cfg = json.loads((root / "qwen" / "config.json").read_text())
    cfg["intermediate_size"] = 100
    (bad / "config.json").write_text(json.dumps(cfg))
    (bad / "model.safetensors").write_bytes((root / "qwen" / "model.safetensors").read_bytes())
    r = sft("info", "--model", bad)
    assert r.returncode == 1 and "mlp.gate_proj.weight" in r.stderr and "[100, 48]" in r.stderr, r.stderr
    # Truncated weights name the file.
    cfg["intermediate_size"] = 96
    (bad / "config.json").write_text(json.dumps(cfg))
    data = (root / "qwen" / "model.safetensors").read_bytes()
    (bad / "model.safetensors").write_bytes(data[: len(data) - 10])
    r = sft("info", "--model", bad)
    assert r.returncode == 1 and "model.safetensors" in r.stderr and "data section" in r.stderr, r.stderr
    # Unsupported architecture.
    cfg["model_type"] = "gpt2"
    (bad / "config.json").write_text(json.dumps(cfg))
    r = sft("info", "--model", bad)
    assert r.returncode == 1 and "gpt2" in r.stderr
