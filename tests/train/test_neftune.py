"""NEFTune (`sft train --neftune_noise_alpha`) against transformers 5.24's own hook (transformers.integrations.neftune.
neftune_post_forward_hook) on a tiny random Qwen2:
  - the scale: our float32 m equals `alpha / torch.sqrt(torch.tensor(L * hidden))` bit for bit on a grid of alphas,
    lengths and widths (neftune_tool);
  - a whole training run: the reference loop of test_train_parity.py with the hook registered on the embedding and
    torch's `uniform_` made to draw our noise (the hook computes the scale itself and asks for U(-m, m): the patch
    checks the interval is symmetric and fills it with m times our counter-based draws, transcribed below and checked
    against neftune_tool exactly). Per-step losses within 1e-4 relative and final weights within 1e-4 max-abs, as
    test_train_parity.py (fp32 on both sides, different summation orders); and the noise visibly changes the loss;
  - evaluation never sees the noise: at learning rate 0 the eval losses equal the no-noise run's exactly while the
    training losses differ;
  - resume from a mid-run checkpoint is bit-identical (the noise is a function of seed, step and micro-batch)."""
import filecmp
import json
import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from train_test_util import DATASET, make_tiny_model, read_log, run_sft

TOOL = Path(os.environ.get("SFT_BUILD_DIR", "")) / "tests" / "neftune_tool"
M64 = (1 << 64) - 1
ALPHA, SEED, STEPS, BATCH = 5.0, 11, 8, 2


def tool(*args, stdin=""):
    res = subprocess.run([str(TOOL), *args], input=stdin, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return [float.fromhex(l) for l in res.stdout.split()]


# ---- our noise, transcribed (train/trainer.cpp neftune_seed, model/neftune.h neftune_unit) ----
def dropout_seed(seed, step, micro):
    z = (seed * 0x9E3779B97F4A7C15 + step * 0xBF58476D1CE4E5B9 + micro * 0x94D049BB133111EB) & M64
    return z ^ (z >> 29)


def neftune_seed(seed, step, micro):
    return dropout_seed(seed ^ 0x4E454654756E6521, step, micro)


def units(seed, n):
    with np.errstate(over="ignore"):
        z = np.uint64(seed) + (np.arange(n, dtype=np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        z ^= z >> np.uint64(31)
    k = (z >> np.uint64(40)).astype(np.int64)
    return (2 * k - (1 << 24)).astype(np.float32) * np.float32(1.0 / 16777216.0)


def test_scale_equals_transformers_formula():
    rng = np.random.default_rng(5)
    cases = [(a, L, H) for a in (0.1, 1.0, 5.0, 10.0, 15.0) for L in (1, 7, 64, 511, 4096) for H in (8, 64, 576, 896)]
    cases += [(float(rng.uniform(0.01, 20)), int(rng.integers(1, 9000)), int(rng.integers(1, 5000))) for _ in range(300)]
    cases += [(5.0, 131072, 8192), (3.3, 100003, 4099)]  # L * H beyond 2^24: rounded to float32 first, as torch
    ours = tool("magnitude", stdin="".join(f"{a!r} {L} {H}\n" for a, L, H in cases))
    exact = 0
    for (a, L, H), m in zip(cases, ours):
        dims = torch.tensor(L * H)
        want = (a / torch.sqrt(dims)).item()  # transformers' neftune_post_forward_hook, verbatim
        # Bit-identical, except where torch's own float32 sqrt is not correctly rounded (one ulp low on x86 CPUs for
        # a fraction of a percent of the products): that ulp, through the reciprocal and the product, leaves m at most
        # two ulps apart.
        assert abs(m - want) <= 2 * np.spacing(np.float32(want)), (a, L, H, m.hex(), want.hex())
        if m == want:
            exact += 1
        else:  # check that the difference is torch's sqrt: with the correctly rounded root the formula agrees
            root = np.sqrt(np.float32(L * H))
            assert torch.sqrt(dims).item() != float(root)
            assert m == float((np.float32(1) / root) * np.float32(a))
    assert exact >= 0.97 * len(cases), (exact, len(cases))


def test_noise_transcription_equals_the_tool():
    m = 0.0625
    got = tool("noise", "123456789012345", "5000", repr(m))
    want = (np.float32(m) * units(123456789012345, 5000)).astype(np.float64)
    assert got == want.tolist()
    assert min(got) >= -m and max(got) < m


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("neftune")
    return make_tiny_model(str(d / "base"), seed=3), DATASET


def args_for(base_dir, data, out, *extra):
    return ["--model_name_or_path", base_dir, "--dataset_path", data, "--output_dir", out,
            "--per_device_train_batch_size", str(BATCH), "--max_steps", str(STEPS), "--learning_rate", "1e-3",
            "--warmup_steps", "2", "--lr_scheduler_type", "linear", "--max_grad_norm", "1.0", "--logging_steps", "1",
            "--max_seq_length", "224", "--truncation", "drop", "--seed", str(SEED), "--threads", "2",
            "--neftune_noise_alpha", str(ALPHA), *extra]


def reference_run(base_dir, dump, alpha):
    """test_train_parity.py's loop (accumulation 1) with transformers' NEFTune hook; torch's uniform_ draws our noise."""
    from transformers import AutoModelForCausalLM, get_scheduler
    from transformers.integrations.neftune import neftune_post_forward_hook
    model = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32, attn_implementation="eager")
    model.train()
    emb = model.get_input_embeddings()
    emb.neftune_noise_alpha = alpha
    emb.register_forward_hook(neftune_post_forward_hook)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0, foreach=False)
    sched = get_scheduler("linear", opt, num_warmup_steps=2, num_training_steps=STEPS)
    draws = {}  # the seed of the micro-batch being embedded, and the (from, to) and shape the hook asked for
    original = torch.Tensor.uniform_

    def our_uniform_(self, a=0.0, b=1.0, generator=None):
        assert a == -b and self.dtype == torch.float32, (a, b)
        draws.setdefault("asked", []).append((b, tuple(self.shape)))
        v = np.float32(b) * units(draws["seed"], self.numel())
        return self.copy_(torch.from_numpy(v).view(self.shape))

    losses = []
    torch.Tensor.uniform_ = our_uniform_
    try:
        for step, b in enumerate([json.loads(l) for l in open(dump)], start=1):
            assert b["step"] == step and b["micro"] == 0  # accumulation 1: one micro-batch per step, as trained
            B, T = b["B"], b["T"]
            ids = torch.tensor(b["input_ids"]).view(B, T)
            labels = torch.tensor(b["labels"]).view(B, T)
            mask = (torch.tensor(b["doc_ids"]).view(B, T) >= 0).long()
            draws["seed"] = neftune_seed(SEED, step, 0)
            logits = model(input_ids=ids, position_ids=torch.tensor(b["position_ids"]).view(B, T),
                           attention_mask=mask).logits
            loss_sum = F.cross_entropy(logits[:, :-1].reshape(-1, logits.shape[-1]), labels[:, 1:].reshape(-1),
                                       ignore_index=-100, reduction="sum")
            (loss_sum / b["step_targets"]).backward()
            losses.append(loss_sum.item() / b["step_targets"])
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            sched.step()
            opt.zero_grad()
    finally:
        torch.Tensor.uniform_ = original
    return model, losses, draws["asked"]


def test_training_equals_transformers_hook(base, tmp_path):
    base_dir, data = base
    out, dump = str(tmp_path / "out"), str(tmp_path / "batches.jsonl")
    # The padded layout is what transformers embeds (its hook draws [B, T, hidden]); padding-free rows draw in theirs.
    run_sft(args_for(base_dir, data, out, "--save_strategy", "no", "--debug_dump_batches", dump,
                     "--padding_free", "False"))
    rows = [r for r in read_log(out) if "loss" in r]
    model, ref, asked = reference_run(base_dir, dump, ALPHA)
    batches = [json.loads(l) for l in open(dump)]
    # The hook drew once per forward, for the batch's [B, T, hidden] at its own scale (L = the padded T).
    assert [shape for _, shape in asked] == [(b["B"], b["T"], 64) for b in batches]
    assert len({shape[1] for _, shape in asked}) > 1  # batches of different lengths: the scale followed T
    assert [r["step"] for r in rows] == list(range(1, STEPS + 1))
    worst = max(abs(r["loss"] - x) / abs(x) for r, x in zip(rows, ref))
    print(f"max per-step loss relative difference = {worst:.3g}")
    assert worst <= 1e-4
    ours = load_file(os.path.join(out, "model.safetensors"))
    for name, w in model.state_dict().items():
        if name != "lm_head.weight":  # tied: saved once
            assert (ours[name] - w).abs().max().item() <= 1e-4, name
    # The noise matters: the same batches without it give losses far further from ours than the parity gap.
    _, clean, _ = reference_run(base_dir, dump, 0.0)  # alpha 0: the hook adds U(-0, 0)
    effect = max(abs(r["loss"] - x) / abs(x) for r, x in zip(rows, clean))
    print(f"max per-step loss relative change from the noise = {effect:.3g}")
    assert effect > 100 * max(worst, 1e-7)


def test_evaluation_never_sees_the_noise(base, tmp_path):
    base_dir, data = base
    logs = {}
    for alpha in ("0", str(ALPHA)):
        out = str(tmp_path / ("a" + alpha))
        args = args_for(base_dir, data, out, "--learning_rate", "0", "--save_strategy", "no", "--validation_split",
                        "6", "--eval_strategy", "steps", "--eval_steps", "2")
        args[args.index("--neftune_noise_alpha") + 1] = alpha
        run_sft(args)
        logs[alpha] = read_log(out)
    evals = {a: [r["eval_loss"] for r in rows if "eval_loss" in r] for a, rows in logs.items()}
    train = {a: [r["loss"] for r in rows if "loss" in r] for a, rows in logs.items()}
    assert len(evals["0"]) == STEPS // 2 and evals["0"] == evals[str(ALPHA)]  # lr 0: the same weights, no noise
    assert all(abs(a - b) > 1e-4 for a, b in zip(train["0"], train[str(ALPHA)]))  # training passes are noised


def test_resume_is_bit_identical(base, tmp_path):
    base_dir, data = base
    full, resumed = str(tmp_path / "full"), str(tmp_path / "resumed")
    extra = ["--save_steps", "3", "--gradient_accumulation_steps", "2"]  # rows regrouped per step: still exact
    run_sft(args_for(base_dir, data, full, *extra))
    os.makedirs(resumed)
    shutil.copytree(os.path.join(full, "checkpoint-3"), os.path.join(resumed, "checkpoint-3"))
    res = run_sft(args_for(base_dir, data, resumed, "--resume_from_checkpoint", "last", *extra))
    assert "resuming" in res.stdout
    assert filecmp.cmp(os.path.join(full, "model.safetensors"), os.path.join(resumed, "model.safetensors"),
                       shallow=False)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("tokens_per_second", "model_flops_per_second")}
                          for r in rows]
    assert strip(read_log(full)) == strip(read_log(resumed))


def test_negative_alpha_is_refused(base, tmp_path):
    base_dir, data = base
    res = run_sft(args_for(base_dir, data, str(tmp_path / "o"), "--neftune_noise_alpha", "-1"), check=False)
    assert res.returncode != 0
    assert res.stderr.strip().splitlines()[-1].startswith("sft: error: --neftune_noise_alpha: expected a finite number")
    assert not os.path.exists(tmp_path / "o")
