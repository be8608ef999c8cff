"""Writes a random-weight Llama-family model folder for the data-parallel benchmark (bench/dist_throughput.sh):
SmolLM2-135M's layer shapes (hidden 576, 9 heads / 3 KV heads, MLP 1536) with a layer count of choice and the
vocabulary of the shared Llama-3 tokenizer (128256), whose tokenizer files are copied in.
usage: make_bench_model.py OUT_DIR [--layers 4] [--tokenizer_dir /work/shared/data/tokenizers/llama3]"""
import argparse
import os
import shutil

import torch
from transformers import LlamaConfig, LlamaForCausalLM

ap = argparse.ArgumentParser()
ap.add_argument("out")
ap.add_argument("--layers", type=int, default=4)
ap.add_argument("--tokenizer_dir", default="/work/shared/data/tokenizers/llama3")
a = ap.parse_args()
cfg = LlamaConfig(vocab_size=128256, hidden_size=576, intermediate_size=1536, num_hidden_layers=a.layers,
                  num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048, rope_theta=100000.0,
                  rms_norm_eps=1e-5, tie_word_embeddings=True, bos_token_id=128000, eos_token_id=128001)
torch.manual_seed(0)
LlamaForCausalLM(cfg).float().save_pretrained(a.out, safe_serialization=True)
for f in ("tokenizer.json", "tokenizer_config.json"):
    shutil.copy(os.path.join(a.tokenizer_dir, f), os.path.join(a.out, f))
print(a.out)
