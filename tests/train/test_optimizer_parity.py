"""Optimizer and schedule parity against the real references:
- train::lr_multiplier vs transformers.get_scheduler (every step, 4 schedule types, warmup steps and ratio);
- train::AdamW + clip_grad_norm on the CPU backend vs torch.optim.AdamW + torch.nn.utils.clip_grad_norm_.
Tolerances: schedule multipliers 1e-12 absolute (both evaluate the same double expressions); AdamW parameters 2e-6
absolute after 6 steps (fp32 elementwise math; torch's single-tensor AdamW and our kernel may order the fp32 ops
differently, a few ulps per step on values of order 1)."""
import os
import subprocess
import tempfile

import pytest
import torch
from safetensors.torch import load_file

BUILD = os.environ.get("SFT_BUILD_DIR", "")
LR_TOOL = os.path.join(BUILD, "tests", "lr_schedule_tool")
ADAMW_TOOL = os.path.join(BUILD, "tests", "adamw_tool")


def hf_multipliers(kind, warmup, total):
    from transformers import get_scheduler
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = get_scheduler(kind, opt, num_warmup_steps=warmup, num_training_steps=total)
    out = []
    for _ in range(total + 1):
        out.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    return out


@pytest.mark.parametrize("kind", ["linear", "cosine", "constant", "constant_with_warmup"])
@pytest.mark.parametrize("warmup_steps,warmup_ratio,total", [(0, 0.0, 17), (5, 0.0, 40), (0, 0.1, 33), (0, 0.03, 4851)])
def test_schedule_matches_transformers(kind, warmup_steps, warmup_ratio, total):
    res = subprocess.run([LR_TOOL, kind, str(warmup_steps), str(warmup_ratio), str(total)],
                         capture_output=True, text=True, check=True)
    lines = res.stdout.split("\n")
    warmup = int(lines[0].split()[1])
    # HF TrainingArguments.get_warmup_steps: warmup_steps if > 0 else ceil(total * ratio)
    import math
    assert warmup == (warmup_steps if warmup_steps > 0 else math.ceil(total * warmup_ratio))
    ours = [float(x) for x in lines[1:] if x]
    ref = hf_multipliers(kind, warmup if kind != "constant" else 0, total)
    assert len(ours) == len(ref)
    for step, (a, b) in enumerate(zip(ours, ref)):
        assert abs(a - b) <= 1e-12, (kind, step, a, b)


@pytest.mark.parametrize("max_norm,wd", [(1.0, 0.1), (0.0, 0.0)])
def test_adamw_matches_torch(max_norm, wd):
    steps = 6
    with tempfile.TemporaryDirectory() as d:
        res = subprocess.run([ADAMW_TOOL, d, str(steps), str(max_norm), str(wd)], capture_output=True, text=True,
                             check=True)
        lines = [l.split() for l in res.stdout.strip().split("\n")]
        assert lines[-1] == ["state", "steps", str(steps)]
        init = load_file(os.path.join(d, "init.safetensors"))
        final = load_file(os.path.join(d, "final.safetensors"))
        names = sorted(init)
        params = {n: torch.nn.Parameter(init[n].clone()) for n in names}
        decay = [params[n] for n in names if n.endswith(".weight") and not n.startswith("norm")]
        no_decay = [params[n] for n in names if not (n.endswith(".weight") and not n.startswith("norm"))]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": wd}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=1.0, betas=(0.9, 0.95), eps=1e-8, foreach=False)
        clipped_steps = 0
        for k in range(1, steps + 1):
            grads = load_file(os.path.join(d, f"grads_{k}.safetensors"))
            for n in names:
                params[n].grad = grads[n].clone()
            if max_norm > 0:
                norm = torch.nn.utils.clip_grad_norm_([params[n] for n in names], max_norm)
            else:
                norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(params[n].grad) for n in names]))
            ours_norm = float(lines[k - 1][5])
            assert abs(ours_norm - float(norm)) <= 1e-5 * float(norm), (k, ours_norm, float(norm))
            clipped_steps += max_norm > 0 and float(norm) > max_norm
            for g in opt.param_groups:
                g["lr"] = float(lines[k - 1][3])
            opt.step()
        if max_norm > 0:
            assert 0 < clipped_steps < steps  # both branches of clipping were exercised
        for n in names:
            diff = (final[n] - params[n].detach()).abs().max().item()
            moved = (final[n] - init[n]).abs().max().item()
            assert moved > 1e-3, n  # the test would be vacuous if nothing moved
            assert diff <= 2e-6, (n, diff)
