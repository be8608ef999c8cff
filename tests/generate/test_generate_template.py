"""`sft generate --template model|auto` and `sft chat --template model` on SmolLM2-135M-Instruct (whose folder carries
chat_template.jinja): the prompt ids are exactly transformers' apply_chat_template(..., add_generation_prompt=True,
tokenize=True) (the template writes its own specials; no extra BOS), the greedy continuation equals
transformers.generate token for token, and generation stops on the template's end-of-turn token <|im_end|>."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2]
SFT = os.environ.get("SFT_BIN", str(SRC / "build" / "src" / "cli" / "sft"))
ENV = dict(os.environ, OMP_NUM_THREADS="1")


@pytest.fixture(scope="module")
def model_dir():
    r = subprocess.run([sys.executable, str(SRC / "scripts" / "convert_smollm2.py")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


def test_generate_with_the_model_template(model_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    prompt = "What is the capital of France?"
    want_ids = tok.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                       tokenize=True, return_dict=True)["input_ids"]
    for tmpl in ("model", "auto"):
        r = subprocess.run([SFT, "generate", "--model", model_dir, "--template", tmpl, "--prompt", prompt, "--greedy",
                            "--max_new_tokens", "40", "--json"], capture_output=True, text=True, env=ENV)
        assert r.returncode == 0, r.stderr
        out = json.loads(r.stdout)
        assert out["prompt_ids"] == list(want_ids), tmpl
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    im_end = tok.convert_tokens_to_ids("<|im_end|>")
    with torch.no_grad():
        ref = model.generate(torch.tensor([want_ids]), do_sample=False, max_new_tokens=40,
                             eos_token_id=[im_end, tok.eos_token_id])[0, len(want_ids):].tolist()
    if ref and ref[-1] in (im_end, tok.eos_token_id):
        ref = ref[:-1]
    got = out["tokens"]
    if got and got[-1] == im_end:
        got = got[:-1]
    assert got == ref
    if len(ref) < 40:
        assert out["stop_reason"] != "max_new_tokens"


def test_chat_with_the_model_template(model_dir):
    r = subprocess.run([SFT, "chat", "--model", model_dir, "--template", "model", "--greedy", "--max_new_tokens", "12"],
                       input="Hi!\n/exit\n", capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    assert "model template" in r.stderr and ">>>" in r.stdout
