"""LoRA training against transformers + peft, adapter files, resume, merge, and bad input.

Loss curve: `sft train --use_peft` starts from an adapter peft initialised and saved (--adapter_name_or_path, so
both sides start from the same A; B = 0 as peft's default init), lora_dropout 0 (a torch dropout mask cannot be
reproduced; dropout > 0 is covered by the finite-difference test in tests/model/lora_test.cpp and the resume test
below), 20 optimizer steps, batch 2, accumulation 2, AdamW with weight decay, warmup + linear, clipping at 1.0. The
reference loop consumes exactly the micro-batches sft trained on (--debug_dump_batches) with
PeftModel.from_pretrained(is_trainable=True) + torch.optim.AdamW + clip_grad_norm_ + get_scheduler.
Tolerances: per-step loss within 1e-4 relative; final adapter tensors within 1e-4 max-abs (fp32 on both sides, only
summation order differs; AdamW's normalised updates keep the difference near 1e-6).
Merge: `sft merge` vs peft's merge_and_unload() on every tensor within 1e-6 max-abs (fp32; the delta B@A*scaling is
summed in a different order, weights O(0.1)).
"""
import json
import os
import shutil
import subprocess

import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from train_test_util import DATASET, SFT, make_tiny_model, read_log, run_sft

STEPS, BATCH, ACCUM, LR, WARMUP, WD = 20, 2, 2, 1e-3, 2, 0.01


def make_init_adapter(base, path, seed=3, **lora):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    cfg = dict(r=4, lora_alpha=8, target_modules="all-linear", lora_dropout=0.0, task_type="CAUSAL_LM")
    cfg.update(lora)
    pm = get_peft_model(model, LoraConfig(**cfg))
    pm.save_pretrained(path)
    return path


def common(base, out, *extra):
    return ["--model_name_or_path", base, "--dataset_path", DATASET, "--output_dir", out, "--use_peft",
            "--max_steps", str(STEPS), "--per_device_train_batch_size", str(BATCH), "--gradient_accumulation_steps",
            str(ACCUM), "--learning_rate", str(LR), "--warmup_steps", str(WARMUP), "--weight_decay", str(WD),
            "--max_grad_norm", "1.0", "--logging_steps", "1", "--max_seq_length", "224", "--truncation", "drop",
            "--seed", "7", "--threads", "2", *extra]


def train_lora(d, family):
    base = make_tiny_model(str(d / "base"), family=family)
    init = make_init_adapter(base, str(d / "init"))
    out = str(d / "out")
    dump = str(d / "batches.jsonl")
    res = run_sft(common(base, out, "--adapter_name_or_path", init, "--save_steps", "10", "--debug_dump_batches", dump))
    return base, init, out, dump, res.stdout


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    return train_lora(tmp_path_factory.mktemp("lora"), "qwen2")


@pytest.fixture(scope="module")
def trained_gemma2(tmp_path_factory):
    return train_lora(tmp_path_factory.mktemp("lora_gemma2"), "gemma2")


def reference_run(base, init, dump):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, get_scheduler
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32, attn_implementation="eager")
    pm = PeftModel.from_pretrained(model, init, is_trainable=True)
    pm.train()
    params = [p for p in pm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW([{"params": params, "weight_decay": WD}], lr=LR, betas=(0.9, 0.999), eps=1e-8,
                            foreach=False)
    sched = get_scheduler("linear", opt, num_warmup_steps=WARMUP, num_training_steps=STEPS)
    by_step = {}
    for line in open(dump):
        b = json.loads(line)
        by_step.setdefault(b["step"], []).append(b)
    assert sorted(by_step) == list(range(1, STEPS + 1))
    losses = []
    for step in range(1, STEPS + 1):
        mbs = by_step[step]
        n_targets = mbs[0]["step_targets"]
        total = 0.0
        for b in mbs:
            B, T = b["B"], b["T"]
            ids = torch.tensor(b["input_ids"]).view(B, T)
            pos = torch.tensor(b["position_ids"]).view(B, T)
            labels = torch.tensor(b["labels"]).view(B, T)
            mask = (torch.tensor(b["doc_ids"]).view(B, T) >= 0).long()
            logits = pm(input_ids=ids, position_ids=pos, attention_mask=mask).logits
            loss_sum = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                       ignore_index=-100, reduction="sum")
            (loss_sum / n_targets).backward()
            total += loss_sum.item()
        losses.append(total / n_targets)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
    return pm, losses


def peft_file_name(n):
    return n.replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B.")


def check_against_peft(base, init, out, dump, stdout):
    assert "trainable params: " in stdout and " || all params: " in stdout and " || trainable%: " in stdout
    rows = [r for r in read_log(out) if "loss" in r]
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    pm, ref = reference_run(base, init, dump)
    worst = 0.0
    for r, x in zip(rows, ref):
        worst = max(worst, abs(r["loss"] - x) / abs(x))
        assert abs(r["loss"] - x) <= 1e-4 * abs(x), (r["step"], r["loss"], x)
    print(f"20-step LoRA loss curve: max relative difference {worst:.3g}")
    assert ref[-1] < ref[0]
    ours = load_file(os.path.join(out, "adapter_model.safetensors"))
    ref_state = {peft_file_name(n): p.detach() for n, p in pm.named_parameters() if p.requires_grad}
    assert set(ours) == set(ref_state)
    w = 0.0
    for n, p in ref_state.items():
        d = (ours[n] - p).abs().max().item()
        w = max(w, d)
        assert d <= 1e-4, (n, d)
    print(f"max |adapter_sft - adapter_peft| = {w:.3g}")


def test_loss_curve_and_adapter_match_peft(trained):
    check_against_peft(*trained)


def test_gemma2_loss_curve_and_adapter_match_peft(trained_gemma2):
    """The same 20-step curve on a tiny Gemma 2 (every LoRA target inside the sandwich-normed, soft-capped blocks)."""
    check_against_peft(*trained_gemma2)


def test_output_is_a_peft_adapter_folder(trained):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    base, init, out, dump, stdout = trained
    assert not os.path.exists(os.path.join(out, "model.safetensors"))
    cfg = json.load(open(os.path.join(out, "adapter_config.json")))
    assert cfg["peft_type"] == "LORA" and cfg["task_type"] == "CAUSAL_LM" and cfg["r"] == 4 and cfg["lora_alpha"] == 8
    assert cfg["base_model_name_or_path"] == base
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    pm = PeftModel.from_pretrained(model, out)  # unchanged
    ids = torch.tensor([[5, 17, 42, 9, 77]])
    with torch.no_grad():
        assert torch.isfinite(pm(ids).logits).all()
    ck = os.path.join(out, "checkpoint-10")
    side = ("tokenizer", "generation_config", "special_tokens", "vocab", "merges", "chat_template")
    assert sorted(f for f in os.listdir(ck) if not f.startswith(side)) == [
        "adapter_config.json", "adapter_model.safetensors", "optimizer.safetensors", "trainer_state.json",
        "training_args.json"]


def test_resume_is_bit_identical_with_dropout_and_bf16(tmp_path):
    base = make_tiny_model(str(tmp_path / "base"))
    args = ["--lora_r", "4", "--lora_alpha", "16", "--lora_dropout", "0.1", "--lora_target_modules", "q_proj", "v_proj",
            "up_proj", "--bf16", "--save_steps", "5"]
    full = str(tmp_path / "full")
    run_sft(common(base, full, *args))
    resumed = str(tmp_path / "resumed")
    os.makedirs(resumed)
    shutil.copytree(os.path.join(full, "checkpoint-10"), os.path.join(resumed, "checkpoint-10"))
    res = run_sft(common(base, resumed, *args, "--resume_from_checkpoint", "last"))
    assert "resuming" in res.stdout
    a = open(os.path.join(full, "adapter_model.safetensors"), "rb").read()
    b = open(os.path.join(resumed, "adapter_model.safetensors"), "rb").read()
    assert a == b
    cfg = json.load(open(os.path.join(full, "adapter_config.json")))
    assert sorted(cfg["target_modules"]) == ["q_proj", "up_proj", "v_proj"] and cfg["lora_dropout"] == 0.1
    la = [r["loss"] for r in read_log(full) if "loss" in r][10:]
    lb = [r["loss"] for r in read_log(resumed) if "loss" in r][10:]
    assert la == lb


def test_merge_matches_peft_merge_and_unload(trained, tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    base, init, out, dump, stdout = trained
    merged = str(tmp_path / "merged")
    r = subprocess.run([SFT, "merge", "--model", base, "--adapter", out, "--output_dir", merged], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    ref = PeftModel.from_pretrained(model, out).merge_and_unload().state_dict()
    ours = load_file(os.path.join(merged, "model.safetensors"))
    worst = 0.0
    for n, t in ours.items():
        d = (t - ref[n]).abs().max().item()
        worst = max(worst, d)
        assert d <= 1e-6, (n, d)
    print(f"merge: max |sft - peft merge_and_unload| = {worst:.3g}")
    m2 = AutoModelForCausalLM.from_pretrained(merged, dtype=torch.float32)  # transformers loads it
    assert os.path.exists(os.path.join(merged, "tokenizer.json"))
    # generate --adapter (adapter applied at run time) == generate on the merged folder (greedy tokens)
    gen = lambda *m: json.loads(subprocess.run([SFT, "generate", *m, "--prompt", "Give three tips", "--greedy",
                                                "--max_new_tokens", "12", "--json"], capture_output=True, text=True,
                                               check=True).stdout)["tokens"]
    assert gen("--model", base, "--adapter", out) == gen("--model", merged)
    bf = str(tmp_path / "merged_bf16")
    r = subprocess.run([SFT, "merge", "--model", base, "--adapter", out, "--output_dir", bf, "--torch_dtype",
                        "bfloat16"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert all(t.dtype == torch.bfloat16 for t in load_file(os.path.join(bf, "model.safetensors")).values())


def one_line_error(res, *needles):
    assert res.returncode != 0
    err = res.stderr.strip()
    assert err.startswith("sft: error: ") and "\n" not in err, err
    for n in needles:
        assert n in err, err


def test_bad_input_errors_write_nothing(trained, tmp_path):
    base, init, out, dump, stdout = trained
    o = str(tmp_path / "o")
    one_line_error(run_sft(common(base, o, "--lora_target_modules", "q_proj,qkv_proj"), check=False),
                   "--lora_target_modules", "qkv_proj")
    assert not os.path.exists(o)
    one_line_error(run_sft(common(base, o, "--lora_r", "0"), check=False), "--lora_r")
    assert not os.path.exists(o)
    one_line_error(run_sft(common(base, o, "--lora_modules_to_save", "lm_head"), check=False), "--lora_modules_to_save")
    assert not os.path.exists(o)
    # an adapter made for a different base (hidden 48 instead of 64): merge, generate and train refuse it by tensor
    other = make_tiny_model(str(tmp_path / "other"))
    cfg = json.load(open(os.path.join(other, "config.json")))
    cfg["hidden_size"] = 48
    small = str(tmp_path / "small")
    from transformers import Qwen2Config, Qwen2ForCausalLM
    Qwen2ForCausalLM(Qwen2Config(**{k: v for k, v in cfg.items() if k not in ("architectures",)})).save_pretrained(small)
    bad_adapter = make_init_adapter(small, str(tmp_path / "bad_adapter"))
    merged = str(tmp_path / "m")
    r = subprocess.run([SFT, "merge", "--model", base, "--adapter", bad_adapter, "--output_dir", merged],
                       capture_output=True, text=True)
    one_line_error(r, ".lora_", "has shape")
    assert not os.path.exists(merged)
    r = subprocess.run([SFT, "generate", "--model", base, "--adapter", bad_adapter, "--prompt", "hi"],
                       capture_output=True, text=True)
    one_line_error(r, "has shape")
    one_line_error(run_sft(common(base, o, "--adapter_name_or_path", bad_adapter), check=False), "has shape")
    assert not os.path.exists(o)
