"""Training parity: `sft train` (fp32) vs a reference loop written with transformers + torch on a tiny random Qwen2
(biases, tied embeddings), a tiny random Qwen3 (q/k norms, head_dim from the config) and a tiny random Gemma 2 (GeGLU,
(1 + w) and sandwich norms, scaled embeddings, attention and final soft-caps, a 24-token sliding window on layer 0),
30 optimizer steps, batch 2, gradient accumulation 2, AdamW with weight decay (none on norms and biases), linear
schedule with warmup, gradient clipping at 1.0.

The reference consumes exactly the micro-batches sft trained on (`--debug_dump_batches`), normalises the loss of
each optimizer step by the target tokens of all its micro-batches (sum reduction / N, transformers >= 4.46), and uses
torch.optim.AdamW + clip_grad_norm_ + transformers.get_scheduler.

Tolerances: per-step loss within 1e-4 relative; final weights within 1e-4 in max-abs difference over every element of
every tensor (L-infinity), weights being O(0.02..1). Both sides compute in fp32 with different summation orders
(oneDNN vs torch), so per-step gradients differ by ~1e-6 relative; AdamW normalises each update, so the accumulated
difference after 30 steps at lr 1e-3 stays well below 1e-4 except for near-zero gradient coordinates, which the
L-infinity bound would catch if they diverged systematically."""
import json
import os

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from train_test_util import make_tiny_model, read_log, run_sft, DATASET

STEPS, BATCH, ACCUM, LR, WARMUP, WD = 30, 2, 2, 1e-3, 3, 0.01


@pytest.fixture(scope="module", params=["qwen2", "qwen3", "gemma2"])
def trained(tmp_path_factory, request):
    d = tmp_path_factory.mktemp("parity_" + request.param)
    # Qwen3 untied: the input embedding then has only the lookup's gradient, where transformers' padding_idx
    # (pad_token_id 0 = eos, a real token at the end of every sample) gives the pad row none.
    base = make_tiny_model(str(d / "base"), family=request.param, tie=request.param != "qwen3")
    if request.param == "qwen3":  # ... and a pad id that is also a frequent token inside the samples (SmolLM2's
        # pad is <|im_end|>, which ends every chat turn), so the lookup would give that row a gradient
        set_pad_to_frequent_token(base, str(d / "probe"))
    out = str(d / "out")
    dump = str(d / "batches.jsonl")
    res = run_sft(["--model_name_or_path", base, "--dataset_path", DATASET, "--output_dir", out,
                   "--max_steps", str(STEPS), "--per_device_train_batch_size", str(BATCH),
                   "--gradient_accumulation_steps", str(ACCUM), "--learning_rate", str(LR),
                   "--warmup_steps", str(WARMUP), "--lr_scheduler_type", "linear", "--weight_decay", str(WD),
                   "--max_grad_norm", "1.0", "--logging_steps", "1", "--save_strategy", "no",
                   "--max_seq_length", "224", "--truncation", "drop", "--seed", "7", "--debug_dump_batches", dump, "--threads", "2"])
    return base, out, dump, res.stdout


def set_pad_to_frequent_token(base, probe):
    run_sft(["--model_name_or_path", base, "--dataset_path", DATASET, "--output_dir", probe, "--max_steps", "2",
             "--per_device_train_batch_size", str(BATCH), "--save_strategy", "no", "--max_seq_length", "224",
             "--truncation", "drop", "--seed", "7", "--debug_dump_batches", probe + ".jsonl", "--threads", "2"])
    counts = {}
    for b in map(json.loads, open(probe + ".jsonl")):
        for i, (tok, doc) in enumerate(zip(b["input_ids"], b["doc_ids"])):
            nxt = b["doc_ids"][i + 1] if i + 1 < len(b["doc_ids"]) else -1
            if doc >= 0 and nxt == doc:  # not a sample's last token: later positions read it
                counts[tok] = counts.get(tok, 0) + 1
    cfg_path = os.path.join(base, "config.json")
    cfg = json.load(open(cfg_path))
    cfg["pad_token_id"] = max(counts, key=counts.get)
    json.dump(cfg, open(cfg_path, "w"))


def reference_run(base, dump):
    from transformers import AutoModelForCausalLM, get_scheduler
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, attn_implementation="eager")
    model.train()
    decay = [p for n, p in model.named_parameters() if not ("bias" in n or "norm" in n)]
    no_decay = [p for n, p in model.named_parameters() if "bias" in n or "norm" in n]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": WD}, {"params": no_decay, "weight_decay": 0.0}],
                            lr=LR, betas=(0.9, 0.999), eps=1e-8, foreach=False)
    sched = get_scheduler("linear", opt, num_warmup_steps=WARMUP, num_training_steps=STEPS)
    batches = [json.loads(l) for l in open(dump)]
    by_step = {}
    for b in batches:
        by_step.setdefault(b["step"], []).append(b)
    assert sorted(by_step) == list(range(1, STEPS + 1))
    assert max(len(v) for v in by_step.values()) == ACCUM
    losses = []
    for step in range(1, STEPS + 1):
        mbs = by_step[step]
        # The last step of an epoch takes the remaining micro-batches (fewer than ACCUM), as transformers 5.x.
        assert 1 <= len(mbs) <= ACCUM
        n_targets = mbs[0]["step_targets"]
        counted = 0
        total = 0.0
        for b in mbs:
            B, T = b["B"], b["T"]
            ids = torch.tensor(b["input_ids"]).view(B, T)
            pos = torch.tensor(b["position_ids"]).view(B, T)
            labels = torch.tensor(b["labels"]).view(B, T)
            mask = (torch.tensor(b["doc_ids"]).view(B, T) >= 0).long()
            # Right padding only (no packing here): a 2-D padding mask + causal masking is the same attention.
            assert all(mask[r, :int(mask[r].sum())].all() for r in range(B))
            keep = (labels != -100)
            assert torch.equal(labels[keep], ids[keep])  # targets are the tokens themselves
            logits = model(input_ids=ids, position_ids=pos, attention_mask=mask).logits
            loss_sum = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                       ignore_index=-100, reduction="sum")
            counted += int((labels[:, 1:] != -100).sum())
            (loss_sum / n_targets).backward()
            total += loss_sum.item()
        assert counted == n_targets
        losses.append(total / n_targets)
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
    return model, losses


def test_loss_and_weights_match_reference(trained):
    base, out, dump, stdout = trained
    assert "Step    Training Loss" in stdout
    rows = [r for r in read_log(out) if "loss" in r]
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    model, ref_losses = reference_run(base, dump)
    worst_rel = 0.0
    for r, ref in zip(rows, ref_losses):
        worst_rel = max(worst_rel, abs(r["loss"] - ref) / abs(ref))
        assert abs(r["loss"] - ref) <= 1e-4 * abs(ref), (r["step"], r["loss"], ref)
    print(f"max per-step loss relative difference = {worst_rel:.3g}")
    assert ref_losses[-1] < ref_losses[0]  # it did learn something
    ours = load_file(os.path.join(out, "model.safetensors"))
    tied = model.config.tie_word_embeddings
    ref_state = {k: v for k, v in model.state_dict().items() if not (tied and k == "lm_head.weight")}  # saved once
    assert set(ours) == set(ref_state)
    init = load_file(os.path.join(base, "model.safetensors"))
    worst = 0.0
    for name, ref in ref_state.items():
        diff = (ours[name] - ref).abs().max().item()
        worst = max(worst, diff)
        assert diff <= 1e-4, (name, diff)
        assert (ref - init[name]).abs().max().item() > 1e-3, name  # every tensor was actually trained
    if not tied:  # the pad row has no gradient on either side (nn.Embedding padding_idx): only weight decay moves
        # it, identically (without padding_idx the lookup's gradient would move ours by ~lr per step, ~1e-3 here)
        pad = model.config.pad_token_id
        diff = (ours["model.embed_tokens.weight"][pad] - ref_state["model.embed_tokens.weight"][pad]).abs().max().item()
        assert diff <= 1e-6, diff
    print(f"max |w_sft - w_torch| = {worst:.3g}")


def test_output_folder_loads_in_transformers(trained):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    base, out, dump, stdout = trained
    for f in ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json", "trainer_state.json",
              "trainer_log.jsonl", "loss_curve.svg"):
        assert os.path.exists(os.path.join(out, f)), f
    model = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok("Give three tips", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits
    assert torch.isfinite(logits).all()
    state = json.load(open(os.path.join(out, "trainer_state.json")))
    assert state["global_step"] == STEPS and len(state["log_history"]) == STEPS
    assert open(os.path.join(out, "loss_curve.svg")).read().startswith("<svg")
