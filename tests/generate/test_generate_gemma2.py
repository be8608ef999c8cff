"""`sft generate --greedy` vs transformers' `generate(do_sample=False)` on a tiny random Gemma 2 (GeGLU, (1 + w) and
sandwich norms, scaled embeddings, attention and final soft-caps, query_pre_attn_scalar, head_dim from the config, tied
head) whose sliding window (12) is shorter than prompt + 40 new tokens, so the KV-cached decode attends through the
window on the sliding layers (0 and 2) and over everything on the full one (1). Tiny byte-level tokenizer of
tests/fixtures/train. Same acceptance rule as test_generate_parity.py: a divergence is accepted only at an exact
near-tie of transformers' top two logits (margin < 1e-4). The harness is greedy_parity_common.py."""
import pytest
import torch
from greedy_parity_common import N_NEW, PROMPTS, greedy_matches_transformers, save_tiny_model, sft_generate


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    from transformers import Gemma2Config, Gemma2ForCausalLM
    cfg = Gemma2Config(vocab_size=320, hidden_size=64, intermediate_size=160, num_hidden_layers=3,
                       num_attention_heads=4, num_key_value_heads=2, head_dim=24, query_pre_attn_scalar=20,
                       max_position_embeddings=256, rope_theta=10000.0, rms_norm_eps=1e-6, sliding_window=12,
                       attn_logit_softcapping=3.0, final_logit_softcapping=10.0, tie_word_embeddings=True,
                       eos_token_id=0, pad_token_id=0, bos_token_id=None)
    return save_tiny_model(tmp_path_factory.mktemp("gemma2"), Gemma2ForCausalLM, cfg, seed=13)


def test_greedy_matches_transformers(model_dir):
    model, tok, runs = greedy_matches_transformers(model_dir, attn_implementation="eager")
    for ids, got in runs:
        assert len(ids) + len(got) > 12, "prompt + generated tokens must exceed the sliding window"
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
        differs += full != sft_generate(model_dir, prompt)["tokens"]
    assert differs > 0, "the sliding window changed no generation: the test would not see it ignored"
