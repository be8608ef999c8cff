"""Tiny random models (real tokenizers) for the GGUF tests: each an HF folder written by transformers.

llama   Llama 3 tokenizer (tokenizer.ggml.pre llama-bpe) with Meta's BOS-adding post-processor, tied, GQA 4/2
        (q/k permuted in GGUF)
llama_rs  the same with Llama 3 rope scaling (rope_freqs.weight in GGUF; transformers' GGUF loader ignores it)
qwen2   Qwen2.5 / Qwen3 tokenizer (pre qwen2), tied, q/k/v biases
qwen3   Qwen3 tokenizer, untied, head_dim 128 != hidden / heads (key_length / value_length), q/k norms (128 is
        also Qwen3Config's default, which transformers' GGUF loader assumes: it does not read key_length for qwen3)
tiny    Llama with attention biases (permuted q/k biases), untied, the tiny byte-level tokenizer (pre gpt-2)
Weights are perturbed away from transformers' init so that norms are not 1 and greedy picks are decisive."""
import json
import shutil
import subprocess
from pathlib import Path

import torch

SRC = Path(__file__).resolve().parents[2]
FIX = SRC / "tests" / "fixtures"
QWEN_VOCAB = 151680  # Qwen2.5/Qwen3's embedding rows: 151,669 tokens + padding ids ([PAD<id>] in GGUF)
LLAMA_VOCAB = 128256


def tokenizer_files(name, dest):
    src = FIX / "tokenizers" / name
    subprocess.run(["zstd", "-q", "-d", "-f", str(src / "tokenizer.json.zst"), "-o", str(dest / "tokenizer.json")],
                   check=True)
    shutil.copy(src / "tokenizer_config.json", dest / "tokenizer_config.json")


def build(kind, dest):
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM
    dest = Path(dest)
    common = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-5)
    if kind in ("llama", "llama_rs"):
        rs = {"rope_type": "llama3", "factor": 32.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
              "original_max_position_embeddings": 8192} if kind == "llama_rs" else None
        cfg = LlamaConfig(vocab_size=LLAMA_VOCAB, rope_theta=500000.0, tie_word_embeddings=True, bos_token_id=128000,
                          eos_token_id=128001, rope_scaling=rs, **common)
        model, tok = LlamaForCausalLM, "llama3"
    elif kind == "qwen2":
        cfg = Qwen2Config(vocab_size=QWEN_VOCAB, rope_theta=1000000.0, tie_word_embeddings=True,
                          bos_token_id=151643, eos_token_id=151645, **common)
        model, tok = Qwen2ForCausalLM, "qwen3"
    elif kind == "qwen3":
        cfg = Qwen3Config(vocab_size=QWEN_VOCAB, rope_theta=1000000.0, tie_word_embeddings=False, head_dim=128,
                          bos_token_id=151643, eos_token_id=151645, **common)
        model, tok = Qwen3ForCausalLM, "qwen3"
    elif kind == "tiny":
        cfg = LlamaConfig(vocab_size=320, rope_theta=10000.0, tie_word_embeddings=False, attention_bias=True,
                          bos_token_id=None, eos_token_id=0, pad_token_id=0, **common)
        model, tok = LlamaForCausalLM, None
    else:
        raise ValueError(kind)
    torch.manual_seed(7)
    m = model(cfg).float()
    with torch.no_grad():
        for name, p in m.named_parameters():
            p.add_(torch.randn_like(p) * (0.1 if "norm" in name or "bias" in name else 0.06))
    m.save_pretrained(dest, safe_serialization=True)
    if tok:
        tokenizer_files(tok, dest)
        if tok == "llama3":  # the fixture (npm copy) has a bare ByteLevel post-processor; Meta's file adds BOS
            tj = json.loads((dest / "tokenizer.json").read_text())
            tj["post_processor"] = {"type": "Sequence", "processors": [
                {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
                {"type": "TemplateProcessing",
                 "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                            {"Sequence": {"id": "A", "type_id": 0}}],
                 "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}},
                          {"Sequence": {"id": "A", "type_id": 0}},
                          {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}},
                          {"Sequence": {"id": "B", "type_id": 1}}],
                 "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000],
                                                          "tokens": ["<|begin_of_text|>"]}}}]}
            (dest / "tokenizer.json").write_text(json.dumps(tj))
    else:
        for f in ("tokenizer.json", "tokenizer_config.json"):
            shutil.copy(FIX / "train" / "tiny_tokenizer" / f, dest / f)
    return dest
