"""Shared helpers of the `sft train` Python tests: a tiny random Qwen2 (or Qwen3, Gemma 2) model folder made with
transformers (with the tiny byte-level BPE tokenizer of tests/fixtures/train), and running the sft binary."""
import json
import os
import shutil
import subprocess

SRC = os.environ.get("SFT_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
SFT = os.environ.get("SFT_BIN", os.path.join(os.environ.get("SFT_BUILD_DIR", ""), "src", "cli", "sft"))
FIX = os.path.join(SRC, "tests", "fixtures", "train")
DATASET = os.path.join(FIX, "alpaca_tiny.json")


def make_tiny_model(dirname, seed=0, vocab=320, tie=True, family="qwen2"):
    import torch
    from transformers import (Gemma2Config, Gemma2ForCausalLM, LlamaConfig, LlamaForCausalLM, Qwen2Config,
                              Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)
    common = dict(vocab_size=vocab, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512, rope_theta=10000.0,
                  rms_norm_eps=1e-6, tie_word_embeddings=tie, eos_token_id=0, pad_token_id=0, bos_token_id=None)
    torch.manual_seed(seed)
    if family == "qwen3":  # q/k norms, no bias, head_dim from the config (24, not 64 / 4)
        model = Qwen3ForCausalLM(Qwen3Config(head_dim=24, attention_bias=False, **common)).float()
    elif family == "llama":  # no biases; its own RoPE / norm defaults (SmolLM2's family)
        model = LlamaForCausalLM(LlamaConfig(**common)).float()
    elif family == "gemma2":  # every Gemma 2 block feature, with a window and caps small enough to matter here
        model = Gemma2ForCausalLM(Gemma2Config(head_dim=24, query_pre_attn_scalar=20, sliding_window=24,
                                               attn_logit_softcapping=2.0, final_logit_softcapping=8.0,
                                               **common)).float()
    else:
        model = Qwen2ForCausalLM(Qwen2Config(**common)).float()
    with torch.no_grad():  # non-trivial norm weights and biases, so that a missed no-decay rule shows
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.normal_(0.0, 0.02)
            elif "norm" in name:  # a gain around 1: w itself, or 1 + w for Gemma's (1 + w) norms
                p.uniform_(-0.2, 0.2) if family == "gemma2" else p.uniform_(0.8, 1.2)
    model.save_pretrained(dirname, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(FIX, "tiny_tokenizer", f), os.path.join(dirname, f))
    return dirname


def subset_dataset(path, n):
    rows = json.load(open(DATASET))[:n]
    with open(path, "w") as f:
        json.dump(rows, f)
    return path


def run_sft(args, check=True, timeout=600):
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "2"))
    res = subprocess.run([SFT, "train", *args], capture_output=True, text=True, timeout=timeout, env=env)
    if check and res.returncode != 0:
        raise AssertionError(f"sft train failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


def read_log(out_dir):
    with open(os.path.join(out_dir, "trainer_log.jsonl")) as f:
        return [json.loads(l) for l in f if l.strip()]
