"""`sft generate --greedy` vs transformers' `generate(do_sample=False)` on a tiny random Qwen3 (q/k norms, head_dim
from the config, untied head) with the tiny byte-level tokenizer of tests/fixtures/train: identical generated ids for
40 new tokens on several prompts. Same acceptance rule as test_generate_parity.py: a divergence is accepted only at
an exact near-tie of transformers' top two logits (margin < 1e-4). The harness is greedy_parity_common.py."""
import json
import os
import subprocess

import pytest
from greedy_parity_common import greedy_matches_transformers, save_tiny_model, sft_binary


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from transformers import Qwen3Config, Qwen3ForCausalLM
    cfg = Qwen3Config(vocab_size=320, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=24, max_position_embeddings=256,
                      rope_theta=10000.0, rms_norm_eps=1e-6, tie_word_embeddings=False, eos_token_id=0,
                      pad_token_id=0, bos_token_id=None)
    return save_tiny_model(tmp_path_factory.mktemp("qwen3"), Qwen3ForCausalLM, cfg, seed=11)


def test_greedy_matches_transformers(model_dir):
    greedy_matches_transformers(model_dir)


def test_chat_first_turn_equals_generate_and_reset_forgets(model_dir):
    """`sft chat` (generate/chat_session): the first alpaca turn is `sft generate --template alpaca`; after a second
    turn (which carries the history), /reset starts over: the same line gets the first turn's reply again."""
    binary = sft_binary()
    q = "Give three tips for staying healthy."
    one = subprocess.run([binary, "generate", "--model", model_dir, "--template", "alpaca", "--prompt", q, "--greedy",
                          "--max_new_tokens", "12", "--json"], capture_output=True, text=True)
    assert one.returncode == 0, one.stderr
    first = json.loads(one.stdout)["text"]
    r = subprocess.run([binary, "chat", "--model", model_dir, "--greedy", "--max_new_tokens", "12"],
                       input=f"{q}\n{q}\n/reset\n{q}\n/exit\n", capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert r.returncode == 0, r.stderr
    assert "alpaca template" in r.stderr  # the tiny tokenizer has no <|im_start|>: alpaca by default
    replies = [part.strip("\n") for part in r.stdout.split(">>> ")[1:]]
    assert replies[0] == first.strip("\n")
    assert "(history cleared)" in replies[2]
    assert replies[3] == first.strip("\n")
