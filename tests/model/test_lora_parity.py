"""LoRA parity against the real peft (0.21): sft's decoder with a peft adapter attached vs transformers + peft.

For tiny random models of each family (Qwen2 with qkv bias and tied embeddings; Llama untied, GQA; Qwen3 with q/k
norms and head_dim 16 != hidden/heads), peft builds the
adapter (get_peft_model with init_lora_weights=False, so B is random and every LoRA term is non-zero), saves it with
save_pretrained, and sft loads that folder unchanged (tests/model/lora_parity_tool). Compared: logits of every real
token, the loss, and the gradient of every trainable tensor (lora_A, lora_B, modules_to_save copies) under peft's names;
and peft's print_trainable_parameters counts.

Tolerances (fp32 on both sides, only the summation order differs — oneDNN vs torch):
  logits: max|ours - ref| / max|ref| < 1e-5;  loss: relative < 1e-6;
  gradients: per tensor ||ours - ref||_2 / ||ref||_2 < 1e-4 (measured ~1e-6; a wrong transpose, scaling or missing
  term is O(1)).
"""
import json
import os
import subprocess
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.numpy import load_file

BUILD = Path(os.environ.get("SFT_BUILD_DIR", "build"))
TOOL = BUILD / "tests" / "lora_parity_tool"

CASES = {
    # name: (family, H, I, L, heads, kv, V, tied, lora kwargs)
    "qwen2_tied_all_linear": ("qwen2", 48, 80, 2, 4, 2, 97, True,
                              dict(r=4, lora_alpha=8, target_modules="all-linear")),
    "llama_untied_qvd_rslora_lm_head": ("llama", 40, 72, 2, 4, 1, 89, False,
                                        dict(r=3, lora_alpha=5, target_modules=["q_proj", "v_proj", "down_proj"],
                                             use_rslora=True, modules_to_save=["lm_head"])),
    "qwen2_untied_embed_saved": ("qwen2", 32, 56, 2, 4, 4, 71, False,
                                 dict(r=2, lora_alpha=16, target_modules=["o_proj", "gate_proj", "up_proj", "k_proj"],
                                      modules_to_save=["embed_tokens"])),
    # Qwen3: q/k RMSNorm per head (frozen; their gradient flows through to the LoRA of q/k), head_dim 16 != H/heads
    "qwen3_tied_hd16_all_linear_rslora": ("qwen3", 48, 80, 2, 4, 2, 97, True,
                                          dict(r=4, lora_alpha=8, target_modules="all-linear", use_rslora=True)),
}


def build(case, root: Path):
    from peft import LoraConfig, get_peft_model
    from transformers import (LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM, Qwen3Config,
                              Qwen3ForCausalLM)
    fam, H, I, L, NH, NKV, V, tied, lora = CASES[case]
    torch.manual_seed(zlib.crc32(case.encode()))
    common = dict(vocab_size=V, hidden_size=H, intermediate_size=I, num_hidden_layers=L, num_attention_heads=NH,
                  num_key_value_heads=NKV, tie_word_embeddings=tied, max_position_embeddings=128, rms_norm_eps=1e-5,
                  rope_theta=500.0)
    if fam == "qwen2":
        model = Qwen2ForCausalLM(Qwen2Config(**common))
    elif fam == "qwen3":
        model = Qwen3ForCausalLM(Qwen3Config(head_dim=16, **common))
    else:
        model = LlamaForCausalLM(LlamaConfig(**common))
    model.config._attn_implementation = "eager"
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.08)
    model = model.float()
    base = root / case / "base"
    model.save_pretrained(base, safe_serialization=True)
    pm = get_peft_model(model, LoraConfig(lora_dropout=0.0, init_lora_weights=False, task_type="CAUSAL_LM", **lora))
    pm.eval()
    adapter = root / case / "adapter"
    pm.save_pretrained(adapter)
    return pm, base, adapter


def padded_batch(V, lens, seed):
    g = np.random.default_rng(seed)
    B, T = len(lens), max(lens)
    ids = np.zeros((B, T), np.int32)
    pos = np.zeros((B, T), np.int32)
    doc = -np.ones((B, T), np.int32)
    lab = -100 * np.ones((B, T), np.int32)
    for r, n in enumerate(lens):
        ids[r, :n] = g.integers(0, V, n)
        pos[r, :n] = np.arange(n)
        doc[r, :n] = r
        lab[r, :n] = ids[r, :n]
        lab[r, : n // 3] = -100
    return dict(B=B, T=T, input_ids=ids.ravel().tolist(), position_ids=pos.ravel().tolist(),
                doc_ids=doc.ravel().tolist(), labels=lab.ravel().tolist())


def peft_name(n):
    """peft's parameter name -> its adapter-file name (the adapter name removed)."""
    return n.replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B.").replace(
        ".modules_to_save.default.", ".")


@pytest.mark.parametrize("case", list(CASES))
def test_logits_loss_grads_match_peft(case, tmp_path):
    pm, base, adapter = build(case, tmp_path)
    V = CASES[case][6]
    batch = padded_batch(V, [11, 7, 9], zlib.crc32(case.encode()) % 1000)
    bf = tmp_path / "batch.json"
    bf.write_text(json.dumps(batch))
    out = tmp_path / "out"
    r = subprocess.run([str(TOOL), str(base), str(adapter), str(bf), str(out)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr

    B, T = batch["B"], batch["T"]
    ids = torch.tensor(batch["input_ids"]).view(B, T).long()
    pos = torch.tensor(batch["position_ids"]).view(B, T).long()
    mask = (torch.tensor(batch["doc_ids"]).view(B, T) >= 0).long()
    lab = torch.tensor(batch["labels"]).view(B, T).long()
    pm.zero_grad()
    logits = pm(input_ids=ids, position_ids=pos, attention_mask=mask).logits
    loss_sum = F.cross_entropy(logits[:, :-1].reshape(-1, V), lab[:, 1:].reshape(-1), ignore_index=-100,
                               reduction="sum")
    n_t = int((lab[:, 1:] != -100).sum())
    (loss_sum / n_t).backward()

    ours = np.fromfile(out / "logits.bin", np.float32).reshape(B, T, V)
    ref = logits.detach().numpy()
    real = mask.numpy().astype(bool)
    lrel = float(np.abs(ours[real] - ref[real]).max() / np.abs(ref[real]).max())
    loss = json.loads((out / "loss.json").read_text())
    assert loss["n_targets"] == n_t
    ref_loss = float(loss_sum.detach())
    loss_rel = abs(loss["sum"] - ref_loss) / abs(ref_loss)
    grads = load_file(str(out / "grads.safetensors"))
    ref_grads = {peft_name(n): p.grad.numpy() for n, p in pm.named_parameters() if p.requires_grad}
    assert set(grads) == set(ref_grads), (sorted(set(grads) ^ set(ref_grads)))
    worst = 0.0
    for n, g in ref_grads.items():
        e = float(np.linalg.norm(grads[n] - g) / np.linalg.norm(g))
        worst = max(worst, e)
        assert e < 1e-4, (n, e)
    print(f"{case}: logits rel {lrel:.2e}, loss rel {loss_rel:.2e}, worst grad rel {worst:.2e} over {len(grads)} tensors")
    assert lrel < 1e-5
    assert loss_rel < 1e-6
    counts = json.loads((out / "trainable.json").read_text())
    trainable = sum(p.numel() for p in pm.parameters() if p.requires_grad)
    assert counts == {"trainable": trainable, "all": sum(p.numel() for p in pm.parameters())}


def test_bf16_mode_close_to_fp32_peft(tmp_path):
    """bf16 compute (base gemm operands rounded to bf16, adapters fp32) stays close to peft's fp32 logits."""
    case = "qwen2_tied_all_linear"
    pm, base, adapter = build(case, tmp_path)
    V = CASES[case][6]
    batch = padded_batch(V, [10, 6], 5)
    bf = tmp_path / "batch.json"
    bf.write_text(json.dumps(batch))
    out = tmp_path / "out"
    r = subprocess.run([str(TOOL), str(base), str(adapter), str(bf), str(out), "bf16"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    B, T = batch["B"], batch["T"]
    ids = torch.tensor(batch["input_ids"]).view(B, T).long()
    mask = (torch.tensor(batch["doc_ids"]).view(B, T) >= 0).long()
    with torch.no_grad():
        ref = pm(input_ids=ids, attention_mask=mask).logits.numpy()
    ours = np.fromfile(out / "logits.bin", np.float32).reshape(B, T, V)
    real = mask.numpy().astype(bool)
    lrel = float(np.abs(ours[real] - ref[real]).max() / np.abs(ref[real]).max())
    print(f"bf16 logits rel vs fp32 peft: {lrel:.2e}")
    assert lrel < 3e-2  # bf16 operands (2^-9 relative each) through two layers, as test_model_parity's bf16 bound
