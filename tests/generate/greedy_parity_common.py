"""Shared by the greedy-generation parity tests. The acceptance rule (same_greedy_ids, all of them): sft's generated
ids equal transformers' `generate(do_sample=False)` ids, or diverge first at an exact near-tie of transformers' top
two logits (margin < 1e-4). For test_generate_qwen3.py and test_generate_gemma2.py also the harness around a tiny
random model of one family saved with the byte-level tokenizer of tests/fixtures/train."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import torch

SRC = Path(__file__).resolve().parents[2]
FIX = SRC / "tests" / "fixtures" / "train" / "tiny_tokenizer"
N_NEW = 40
PROMPTS = ["Give three tips for staying healthy.", "The capital of France is", "Write a short poem about"]


def same_greedy_ids(label, ref, got, scores):
    """True when sft's ids `got` equal transformers' `ref` throughout; False when they diverge at a near-tie of
    transformers' top two logits (`scores`: generate's output_scores), which is accepted; any other divergence, or a
    different length, fails."""
    for i in range(min(len(ref), len(got))):
        if ref[i] != got[i]:
            top2 = torch.topk(scores[i][0], 2).values
            margin = float(top2[0] - top2[1])
            assert margin < 1e-4, f"{label}: token {i} differs ({got[i]} vs {ref[i]}), HF margin {margin}"
            print(f"{label}: diverged at token {i} on a near-tie (HF margin {margin:.2e})")
            return False
    assert got == ref, f"{label}: lengths differ ({len(got)} vs {len(ref)})"
    return True


def sft_binary():
    return os.environ.get("SFT_BIN", str(SRC / "build" / "src" / "cli" / "sft"))


def save_tiny_model(d, model_class, config, seed):
    """A random `model_class(config)` with every parameter perturbed (sharper, non-trivial distributions, norms off
    their init, so greedy picks are decisive), saved to `d` with the tiny tokenizer. Returns the folder as a string."""
    torch.manual_seed(seed)
    model = model_class(config).float()
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.add_(torch.randn_like(p) * (0.1 if "norm" in name else 0.08))
    model.save_pretrained(d, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(FIX / f, d / f)
    return str(d)


def sft_generate(model_dir, prompt):
    """`sft generate --greedy --json` of N_NEW tokens on the raw prompt (no template), one thread."""
    cmd = [sft_binary(), "generate", "--model", model_dir, "--template", "none", "--prompt", prompt, "--greedy",
           "--max_new_tokens", str(N_NEW), "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def greedy_matches_transformers(model_dir, **from_pretrained_kwargs):
    """For every prompt: identical prompt ids, and identical generated ids up to a near-tie divergence; at least 40
    tokens compared in all. Returns transformers' model and tokenizer and, per prompt, (prompt ids, sft's ids), for
    the caller's own checks."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, **from_pretrained_kwargs).eval()
    compared = 0
    runs = []
    for prompt in PROMPTS:
        ours = sft_generate(model_dir, prompt)
        ids = ours["prompt_ids"]
        assert ids == tok(prompt)["input_ids"], "prompt tokenisation differs"
        inp = torch.tensor([ids])
        with torch.no_grad():
            out = model.generate(inp, attention_mask=torch.ones_like(inp), do_sample=False, max_new_tokens=N_NEW,
                                 eos_token_id=0, pad_token_id=0, output_scores=True, return_dict_in_generate=True)
        ref = out.sequences[0, len(ids):].tolist()
        got = ours["tokens"]
        if same_greedy_ids(f"{prompt!r}", ref, got, out.scores):
            print(f"{prompt!r}: {len(got)} tokens identical ({ours['stop_reason']})")
            compared += len(got)
        runs.append((ids, got))
    assert compared >= 40, "at least 40 generated tokens must be compared"
    return model, tok, runs
