"""`sft generate --greedy` vs transformers' `generate(do_sample=False)` on a tiny random Gemma 2 (GeGLU, (1 + w) and
sandwich norms, scaled embeddings, attention and final soft-caps, query_pre_attn_scalar, head_dim from the config, tied
head) whose sliding window (12) is shorter than prompt + 40 new tokens, so the KV-cached decode attends through the
window on the sliding layers (0 and 2) and over everything on the full one (1). Tiny byte-level tokenizer of
tests/fixtures/train. Same acceptance rule as test_generate_parity.py: a divergence is accepted only at an exact
near-tie of transformers' top two logits (margin < 1e-4)."""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

SRC = Path(__file__).resolve().parents[2]
FIX = SRC / "tests" / "fixtures" / "train" / "tiny_tokenizer"
N_NEW = 40
PROMPTS = ["Give three tips for staying healthy.", "The capital of France is", "Write a short poem about"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from transformers import Gemma2Config, Gemma2ForCausalLM
    d = tmp_path_factory.mktemp("gemma2")
    cfg = Gemma2Config(vocab_size=320, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=24, query_pre_attn_scalar=20,
                       max_position_embeddings=256, rope_theta=10000.0, rms_norm_eps=1e-6, sliding_window=12,
                       attn_logit_softcapping=3.0, final_logit_softcapping=10.0, tie_word_embeddings=True,
                       eos_token_id=0, pad_token_id=0, bos_token_id=None)
    torch.manual_seed(13)
    model = Gemma2ForCausalLM(cfg).float()
    with torch.no_grad():  # sharper, non-trivial distributions (and norms off their init) so greedy picks are decisive
        for name, p in model.named_parameters():
            p.add_(torch.randn_like(p) * (0.1 if "norm" in name else 0.08))
    model.save_pretrained(d, safe_serialization=True)
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(FIX / f, d / f)
    return str(d)


def sft(model_dir, prompt):
    cmd = [os.environ.get("SFT_BIN", str(SRC / "build" / "src" / "cli" / "sft")), "generate", "--model", model_dir,
           "--template", "none", "--prompt", prompt, "--greedy", "--max_new_tokens", str(N_NEW), "--json"]
    r = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_greedy_matches_transformers(model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32, attn_implementation="eager").eval()
    compared = 0
    for prompt in PROMPTS:
        ours = sft(model_dir, prompt)
        ids = ours["prompt_ids"]
        assert ids == tok(prompt)["input_ids"], "prompt tokenisation differs"
        inp = torch.tensor([ids])
        with torch.no_grad():
            out = model.generate(inp, attention_mask=torch.ones_like(inp), do_sample=False, max_new_tokens=N_NEW,
                                 eos_token_id=0, pad_token_id=0, output_scores=True, return_dict_in_generate=True)
        ref = out.sequences[0, len(ids):].tolist()
        got = ours["tokens"]
        for i in range(min(len(ref), len(got))):
            if ref[i] != got[i]:
                top2 = torch.topk(out.scores[i][0], 2).values
                margin = float(top2[0] - top2[1])
                assert margin < 1e-4, f"{prompt!r}: token {i} differs ({got[i]} vs {ref[i]}), HF margin {margin}"
                print(f"{prompt!r}: diverged at token {i} on a near-tie (HF margin {margin:.2e})")
                break
        else:
            assert got == ref, f"{prompt!r}: lengths differ ({len(got)} vs {len(ref)})"
            print(f"{prompt!r}: {len(got)} tokens identical ({ours['stop_reason']})")
            compared += len(got)
        assert len(ids) + len(got) > 12, "prompt + generated tokens must exceed the sliding window"
    assert compared >= 40, "at least 40 generated tokens must be compared"
    # The window mattered: without it transformers generates something else for at least one prompt.
    model.config.sliding_window = 10 ** 6
    for layer in model.model.layers:
        if layer.self_attn.sliding_window:
            layer.self_attn.sliding_window = 10 ** 6
    differs = 0
    for prompt in PROMPTS:
        inp = torch.tensor([tok(prompt)["input_ids"]])
        with torch.no_grad():
            full = model.generate(inp, attention_mask=torch.ones_like(inp), do_sample=False, max_new_tokens=N_NEW,
                                  eos_token_id=0, pad_token_id=0)[0, inp.shape[1]:].tolist()
        differs += full != sft(model_dir, prompt)["tokens"]
    assert differs > 0, "the sliding window changed no generation: the test would not see it ignored"
