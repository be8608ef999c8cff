"""`sft generate` greedy decoding vs transformers' `generate(do_sample=False)` on SmolLM2-135M (fp32, CPU):
identical prompt ids and identical generated ids, token for token, for 48 new tokens on several prompts (raw text,
alpaca and chatml templates), plus a stop-string check.

Greedy ids can legitimately diverge only at an exact near-tie of the top two logits; the model layer matches
transformers' logits to ~1e-5 relative (tests/model), so the test reports the HF top-2 margin at the first
divergence and accepts it only when that margin is below 1e-4 (never observed on these prompts)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from greedy_parity_common import same_greedy_ids

SRC = Path(__file__).resolve().parents[2]
N_NEW = 48
PROMPTS = [
    ("none", "The capital of France is"),
    ("none", "def fibonacci(n):\n    "),
    ("chatml", "Write a haiku about the sea."),
    ("alpaca", "Give three tips for staying healthy."),
    ("none", "Once upon a time, in a small village by the sea,"),
    ("none", "The planets of the solar system, in order from the Sun:\n1."),
]


@pytest.fixture(scope="module")
def model_dir():
    r = subprocess.run([sys.executable, str(SRC / "scripts" / "convert_smollm2.py")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


def sft(model_dir, template, prompt, *extra):
    cmd = [os.environ.get("SFT_BIN", str(SRC / "build" / "src" / "cli" / "sft")), "generate", "--model", model_dir,
           "--template", template, "--prompt", prompt, "--greedy", "--max_new_tokens", str(N_NEW), "--json", *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_greedy_matches_transformers(model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)  # numbers, not speed: keep a loaded CI machine from thrashing
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    long_runs = 0
    for template, prompt in PROMPTS:
        ours = sft(model_dir, template, prompt)
        ids = ours["prompt_ids"]
        if template == "none":
            assert ids == tok(prompt)["input_ids"], "prompt tokenisation differs"
        elif template == "chatml":
            text = "<|im_start|>user\n" + prompt + "<|im_end|>\n<|im_start|>assistant\n"
            assert ids == tok(text)["input_ids"]
        inp = torch.tensor([ids])
        with torch.no_grad():
            out = model.generate(inp, attention_mask=torch.ones_like(inp), do_sample=False, max_new_tokens=N_NEW,
                                 eos_token_id=model.generation_config.eos_token_id, pad_token_id=tok.pad_token_id,
                                 output_scores=True, return_dict_in_generate=True)
        ref = out.sequences[0, len(ids):].tolist()
        got = ours["tokens"]
        if same_greedy_ids(f"{template} {prompt!r}", ref, got, out.scores):
            assert ours["text"] == tok.decode(ref, skip_special_tokens=True)
            print(f"{template} {prompt!r}: {len(got)} tokens identical ({ours['stop_reason']})")
            long_runs += len(got) >= 32
    assert long_runs >= 2, "at least two prompts must compare 32+ generated tokens"


def test_stop_string_cuts_output(model_dir):
    full = sft(model_dir, "none", "1, 2, 3, 4,")
    text = full["text"]
    assert len(text) > 4
    stop = text[2:4]  # a string that certainly occurs in the greedy output
    cut = sft(model_dir, "none", "1, 2, 3, 4,", "--stop", stop)
    assert cut["stop_reason"] == "stop_string"
    assert cut["text"] == text[: text.find(stop)]
