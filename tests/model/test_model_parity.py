"""Parity of sft's decoder (forward, loss, every parameter gradient, scoring, KV session) against transformers.

Tiny random models of every family (Qwen2, Llama, Qwen3, Gemma 2) are built with transformers, saved as HF folders, run
through tests/model/model_parity_tool and compared with transformers' eager fp32 CPU computation.

Gemma 2 cases use soft-caps small enough that the tanh bends the tiny models' scores and logits (the published 50 / 30
would leave them in the linear part), a sliding window shorter than the sequences (so the mask differs from full
attention inside a document), query_pre_attn_scalar != head_dim, head_dim != hidden / heads, and pad_token_id None
(Gemma2Config's default 0 makes nn.Embedding zero the lookup gradient of token 0, which sft does not model for any
family; the random ids here include 0).

Norms and tolerances (fp32 on both sides; the differences are summation order only):
  logits: max|ours - ref| / max|ref| over non-padding positions < 1e-5
  loss (sum of token CEs / targets): |ours - ref| / |ref| < 1e-6
  gradients: per parameter ||ours - ref||_2 / ||ref||_2 < 1e-4
  bf16 compute mode vs the fp32 reference: logits rel. < 3e-2, loss rel. < 1e-2, gradients < 5e-2 — bf16 keeps 8
  mantissa bits (2^-9 = 2e-3 relative per operand rounding); errors grow through a few layers of matmuls with
  ~100-term sums, so a few 1e-2 is the expected size and anything structural (a wrong transpose, a missing term) is O(1).
"""
import json
import os
import subprocess
import tempfile
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file
from transformers import (Gemma2Config, Gemma2ForCausalLM, LlamaConfig, LlamaForCausalLM, Qwen2Config,
                          Qwen2ForCausalLM, Qwen3Config, Qwen3ForCausalLM)

BUILD = Path(os.environ.get("SFT_BUILD_DIR", "build"))
TOOL = BUILD / "tests" / "model_parity_tool"

CASES = {
    # name: (family, hidden, intermediate, layers, heads, kv_heads, vocab, tied, bias, rope extra)
    "qwen_tied_gqa2": ("qwen2", 48, 80, 2, 4, 2, 97, True, True, {}),
    "qwen_untied_mha": ("qwen2", 60, 84, 2, 6, 6, 131, False, True, {}),
    "llama_tied_gqa4": ("llama", 64, 96, 2, 8, 2, 113, True, False, {}),
    "llama_untied_bias_mqa_llama3": ("llama", 40, 70, 3, 4, 1, 89, False, True,
                                     {"rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
                                                       "high_freq_factor": 4.0,
                                                       "original_max_position_embeddings": 16}}),
    # Qwen3: per-head q/k RMSNorm before RoPE; head_dim from the config (not hidden / heads)
    "qwen3_tied_gqa2_hd16": ("qwen3", 48, 80, 2, 4, 2, 97, True, False, {"head_dim": 16}),
    "qwen3_untied_bias_mha_hd10": ("qwen3", 40, 72, 2, 4, 4, 89, False, True, {"head_dim": 10}),
    # Gemma 2: GeGLU (tanh GELU), (1 + w) norms, sandwich norms, embeddings * sqrt(hidden), attention and final
    # soft-caps, query_pre_attn_scalar, sliding window on the layers layer_types marks (default: even layers)
    "gemma2_tied_gqa2_hd16": ("gemma2", 48, 80, 2, 4, 2, 97, True, False,
                              {"head_dim": 16, "query_pre_attn_scalar": 24, "sliding_window": 4,
                               "attn_logit_softcapping": 1.0, "final_logit_softcapping": 2.0}),
    "gemma2_untied_bias_mha_hd10": ("gemma2", 40, 72, 3, 4, 4, 89, False, True,
                                    {"head_dim": 10, "query_pre_attn_scalar": 10, "sliding_window": 5,
                                     "layer_types": ["full_attention", "sliding_attention", "sliding_attention"],
                                     "attn_logit_softcapping": 2.0, "final_logit_softcapping": 3.0}),
}


def build_model(case, root: Path):
    fam, H, I, L, NH, NKV, V, tied, bias, extra = CASES[case]
    torch.manual_seed(zlib.crc32(case.encode()))  # stable across runs (str hash is salted per process)
    common = dict(vocab_size=V, hidden_size=H, intermediate_size=I, num_hidden_layers=L, num_attention_heads=NH,
                  num_key_value_heads=NKV, tie_word_embeddings=tied, max_position_embeddings=256,
                  rms_norm_eps=1e-5, rope_theta=500.0)
    if fam == "qwen2":
        cfg = Qwen2Config(**common)
        model = Qwen2ForCausalLM(cfg)
    elif fam == "qwen3":
        cfg = Qwen3Config(attention_bias=bias, **common, **extra)
        model = Qwen3ForCausalLM(cfg)
    elif fam == "gemma2":
        cfg = Gemma2Config(attention_bias=bias, pad_token_id=None, **common, **extra)
        model = Gemma2ForCausalLM(cfg)
    else:
        cfg = LlamaConfig(attention_bias=bias, **common, **extra)
        model = LlamaForCausalLM(cfg)
    model.config._attn_implementation = "eager"
    with torch.no_grad():  # move every tensor off its init value (norms off 1, biases off 0) so each term matters
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.08)
    model = model.float().eval()
    d = root / case
    model.save_pretrained(d, safe_serialization=True)
    return model, d


def run_tool(model_dir, batch, out, prec="f32"):
    bf = out / "batch.json"
    out.mkdir(parents=True, exist_ok=True)
    bf.write_text(json.dumps(batch))
    r = subprocess.run([str(TOOL), str(model_dir), str(bf), str(out), prec], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return out


def padded_batch(V, lens, seed):
    g = np.random.default_rng(seed)
    T = max(lens)
    B = len(lens)
    ids = np.zeros((B, T), np.int32)
    pos = np.zeros((B, T), np.int32)
    doc = -np.ones((B, T), np.int32)
    lab = -100 * np.ones((B, T), np.int32)
    for r, n in enumerate(lens):
        ids[r, :n] = g.integers(0, V, n)
        pos[r, :n] = np.arange(n)
        doc[r, :n] = r
        lab[r, :n] = ids[r, :n]
        lab[r, : n // 3] = -100  # a "prompt" part without loss
    return dict(B=B, T=T, input_ids=ids.ravel().tolist(), position_ids=pos.ravel().tolist(),
                doc_ids=doc.ravel().tolist(), labels=lab.ravel().tolist(), session_split=max(1, lens[0] // 2))


def packed_batch(V, doc_lens, T, seed):
    """One row holding several documents back to back (+ padding); labels at each document start are -100."""
    g = np.random.default_rng(seed)
    ids = np.zeros(T, np.int32)
    pos = np.zeros(T, np.int32)
    doc = -np.ones(T, np.int32)
    lab = -100 * np.ones(T, np.int32)
    t = 0
    for k, n in enumerate(doc_lens):
        ids[t:t + n] = g.integers(0, V, n)
        pos[t:t + n] = np.arange(n)
        doc[t:t + n] = k
        lab[t + 1:t + n] = ids[t + 1:t + n]
        t += n
    return dict(B=1, T=T, input_ids=ids.tolist(), position_ids=pos.tolist(), doc_ids=doc.tolist(),
                labels=lab.tolist(), session_split=2)


def reference(model, batch):
    """transformers logits for every real token, sum-CE loss, grads of sum-loss / n_targets, per-document runs."""
    B, T = batch["B"], batch["T"]
    ids = np.array(batch["input_ids"]).reshape(B, T)
    doc = np.array(batch["doc_ids"]).reshape(B, T)
    lab = np.array(batch["labels"]).reshape(B, T)
    model.zero_grad()
    logits = np.zeros((B, T, model.config.vocab_size), np.float32)
    total, n_tgt = 0.0, 0
    losses = []
    for r in range(B):
        for dk in sorted(set(doc[r].tolist()) - {-1}):
            sel = np.nonzero(doc[r] == dk)[0]
            x = torch.tensor(ids[r, sel], dtype=torch.long)[None]
            out = model(input_ids=x, position_ids=torch.arange(len(sel))[None])
            lg = out.logits[0]
            logits[r, sel] = lg.detach().numpy()
            y = torch.tensor(lab[r, sel], dtype=torch.long)
            losses.append(F.cross_entropy(lg[:-1], y[1:], ignore_index=-100, reduction="sum"))
            n_tgt += int((y[1:] != -100).sum())
    loss_sum = torch.stack(losses).sum()
    (loss_sum / n_tgt).backward()
    grads = {n: p.grad.detach().numpy().copy() for n, p in model.named_parameters()}
    return logits, float(loss_sum.detach()), n_tgt, grads


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


def check(model, model_dir, batch, out, prec="f32"):
    B, T, V = batch["B"], batch["T"], model.config.vocab_size
    ref_logits, ref_sum, ref_n, ref_grads = reference(model, batch)
    run_tool(model_dir, batch, out, prec)
    doc = np.array(batch["doc_ids"]).reshape(B, T)
    real = doc >= 0
    ours = np.fromfile(out / "logits.bin", np.float32).reshape(B, T, V)
    loss = json.loads((out / "loss.json").read_text())
    grads = load_file(str(out / "grads.safetensors"))
    tol = dict(f32=(1e-5, 1e-6, 1e-4), bf16=(3e-2, 1e-2, 5e-2))[prec]
    print(f"{out.name}: logits rel {rel(ours[real], ref_logits[real]):.2e} loss rel {abs(loss['sum'] - ref_sum) / abs(ref_sum):.2e} "
          f"max grad rel {max(np.linalg.norm(grads[k] - g) / np.linalg.norm(g) for k, g in ref_grads.items() if k in grads):.2e}")
    assert rel(ours[real], ref_logits[real]) < tol[0], rel(ours[real], ref_logits[real])
    assert loss["n_targets"] == ref_n == loss["count_targets"]
    assert abs(loss["sum"] - ref_sum) / abs(ref_sum) < tol[1], (loss["sum"], ref_sum)
    if model.config.tie_word_embeddings:
        assert "lm_head.weight" not in grads
    for name, g in ref_grads.items():
        if name == "lm_head.weight" and model.config.tie_word_embeddings:
            continue
        err = np.linalg.norm(grads[name] - g) / np.linalg.norm(g)
        assert err < tol[2], (name, err)
    ev = json.loads((out / "eval_loss.json").read_text())
    assert abs(ev["sum"] - loss["sum"]) <= 1e-6 * abs(loss["sum"]) and ev["n_targets"] == ref_n
    if prec != "f32":
        return
    # scoring: log p(next token) and greedy flags from the reference logits
    lp = np.fromfile(out / "logprobs.bin", np.float32).reshape(B, T)
    gr = np.fromfile(out / "greedy.bin", np.uint8).reshape(B, T)
    ids = np.array(batch["input_ids"]).reshape(B, T)
    ref_lsm = torch.log_softmax(torch.tensor(ref_logits, dtype=torch.float64), -1).numpy()
    for r in range(B):
        for t in range(T - 1):
            if doc[r, t] >= 0 and doc[r, t + 1] == doc[r, t]:
                assert abs(lp[r, t] - ref_lsm[r, t, ids[r, t + 1]]) < 1e-5 * (1 + abs(lp[r, t]))
                assert gr[r, t] == int(ref_logits[r, t].argmax() == ids[r, t + 1])
            else:
                assert lp[r, t] == 0 and gr[r, t] == 0
    # KV session over row 0's first document, appended in two pieces, equals the full forward
    n0 = int(np.sum(np.cumprod(doc[0] == doc[0, 0])))
    sess = np.fromfile(out / "session_logits.bin", np.float32).reshape(n0, V)
    assert rel(sess, ref_logits[0, :n0]) < 1e-5
    last = np.fromfile(out / "session_last.bin", np.float32)
    assert rel(last, ref_logits[0, n0 - 1]) < 1e-5


@pytest.fixture(scope="module")
def tmp():
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def assert_gemma_features_matter(model, batch):
    """Each Gemma 2 option the parity covers changes these tiny models' logits by far more than the 1e-5 tolerance
    (switched off one at a time in transformers), so a kernel that ignored it could not pass."""
    ids = torch.tensor(batch["input_ids"][:batch["T"]])[None]
    layers = [l.self_attn for l in model.model.layers]

    def logits():
        with torch.no_grad():
            return model(ids).logits

    base = logits()
    for what, attrs in {"attention soft-cap": [(a, "attn_logit_softcapping", None) for a in layers],
                        "final soft-cap": [(model.config, "final_logit_softcapping", None)],
                        "sliding window": [(a, "sliding_window", None) for a in layers if a.sliding_window] +
                                          [(model.config, "sliding_window", 10 ** 6)]}.items():
        old = [(o, k, getattr(o, k)) for o, k, _ in attrs]
        for o, k, v in attrs:
            setattr(o, k, v)
        changed = float((logits() - base).abs().max() / base.abs().max())
        for o, k, v in old:
            setattr(o, k, v)
        print(f"without the {what}: logits change {changed:.2e}")
        assert changed > 1e-3, what


@pytest.mark.parametrize("case", sorted(CASES))
def test_padded_batch(case, tmp):
    model, d = build_model(case, tmp)
    batch = padded_batch(model.config.vocab_size, [13, 7, 10], 1)
    check(model, d, batch, tmp / (case + "_pad"))
    if CASES[case][0] == "gemma2":
        assert_gemma_features_matter(model, batch)


@pytest.mark.parametrize("case", ["qwen_tied_gqa2", "llama_untied_bias_mqa_llama3", "qwen3_untied_bias_mha_hd10",
                                  "gemma2_untied_bias_mha_hd10"])
def test_packed_batch_matches_separate_documents(case, tmp):
    model, d = build_model(case, tmp)
    check(model, d, packed_batch(model.config.vocab_size, [6, 9, 5], 23, 2), tmp / (case + "_packed"))


@pytest.mark.parametrize("case", ["qwen_tied_gqa2", "llama_tied_gqa4", "qwen3_tied_gqa2_hd16", "gemma2_tied_gqa2_hd16"])
def test_bf16_mode_within_stated_tolerance(case, tmp):
    model, d = build_model(case, tmp)
    check(model, d, padded_batch(model.config.vocab_size, [12, 9], 3), tmp / (case + "_bf16"), "bf16")


@pytest.mark.parametrize("case,cls", [("qwen_tied_gqa2", Qwen2ForCausalLM),
                                      ("qwen3_untied_bias_mha_hd10", Qwen3ForCausalLM),
                                      ("gemma2_untied_bias_mha_hd10", Gemma2ForCausalLM)])
def test_save_roundtrip_loads_in_transformers(case, cls, tmp):
    """Model::save output (written by the tool-independent path) loads in transformers with identical weights."""
    model, d = build_model(case, tmp)
    out = tmp / ("saved_" + case)
    r = subprocess.run([str(BUILD / "tests" / "model_save_tool"), str(d), str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    again = cls.from_pretrained(out, torch_dtype=torch.float32)
    for (n1, p1), (n2, p2) in zip(model.state_dict().items(), again.state_dict().items()):
        assert n1 == n2 and torch.equal(p1, p2), n1
