"""Peer of bench/nonfinite_guard_bench.cpp: PyTorch's AdamW step (torch.optim.AdamW, foreach=False, as sft's parity
tests use) over P fp32 parameters in tensors of --tensor_mib, and the check a PyTorch training loop would add after it,
all(torch.isfinite(p).all()) over the same tensors. Prints one JSON line (medians of --iters runs).
usage: python torch_nonfinite_check.py [--params N] [--iters 5] [--tensor_mib 4] [--threads N]
"""
import argparse, json, resource, time
import torch

ap = argparse.ArgumentParser()
ap.add_argument("--params", type=int, default=134515008)
ap.add_argument("--iters", type=int, default=5)
ap.add_argument("--tensor_mib", type=float, default=4)
ap.add_argument("--threads", type=int, default=0)
a = ap.parse_args()
if a.threads:
    torch.set_num_threads(a.threads)
chunk = max(1, int(a.tensor_mib * (1 << 20) / 4))
sizes = [min(chunk, a.params - i) for i in range(0, a.params, chunk)]
gen = torch.Generator().manual_seed(1)
params = [torch.nn.Parameter((torch.rand(n, generator=gen) - 0.5) * 0.2) for n in sizes]
for p in params:
    p.grad = (torch.rand(p.numel(), generator=gen) - 0.5) * 2e-3
opt = torch.optim.AdamW(params, lr=1e-5, weight_decay=0.0, foreach=False)
t_step, t_check = [], []
for it in range(a.iters + 1):
    t0 = time.perf_counter()
    opt.step()
    t1 = time.perf_counter()
    ok = all(bool(torch.isfinite(p).all()) for p in params)
    t2 = time.perf_counter()
    assert ok
    if it:
        t_step.append(t1 - t0)
        t_check.append(t2 - t1)
med = lambda v: sorted(v)[len(v) // 2]
print(json.dumps({"peer": "pytorch", "torch": torch.__version__, "params": a.params, "tensors": len(sizes),
                  "adamw_ms": round(med(t_step) * 1e3, 2), "check_ms": round(med(t_check) * 1e3, 2),
                  "check_over_adamw": round(med(t_check) / med(t_step), 4),
                  "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))
