"""Peer measurement copied verbatim from /work/shared/bench/torch_step.py (the project's shared benchmark peer),
with two additions: --layers N overrides the layer count (default: the shape's own), so that bench/train_step.sh can
run a quick comparison on a small machine with both sides at the same size; --gradient_checkpointing 1 runs every
block under torch.utils.checkpoint (non-reentrant, as transformers' gradient_checkpointing_enable), to compare with
sft's --gradient_checkpointing."""

"""Peer measurement: one training step (forward + backward + AdamW) of a Qwen2/Llama-shaped decoder in PyTorch on the CPU.

This is the PyTorch side of sft.cpp's CPU speed comparison; run it in the same script as sft.cpp's own step benchmark
and report the ratio. Weights are random (speed does not depend on their values). Prints one JSON line.
usage: python torch_step.py --shape qwen2.5-0.5b --batch 4 --seq 512 --dtype bf16 [--threads N] [--steps 3]
"""
import argparse, json, os, resource, time
import torch, torch.nn as nn, torch.nn.functional as F

SHAPES = {  # hidden, intermediate, layers, heads, kv heads, vocab, head_dim, qkv bias, tied, rope theta
    "qwen2.5-0.5b": (896, 4864, 24, 14, 2, 151936, 64, True, True, 1e6),
    "qwen2.5-1.5b": (1536, 8960, 28, 12, 2, 151936, 128, True, True, 1e6),
    "smollm2-135m": (576, 1536, 30, 9, 3, 49152, 64, False, True, 1e5),
}

class RMSNorm(nn.Module):
    def __init__(self, d):
        super().__init__(); self.weight = nn.Parameter(torch.ones(d))
    def forward(self, x):
        v = x.float().pow(2).mean(-1, keepdim=True)
        return self.weight * (x.float() * torch.rsqrt(v + 1e-6)).to(x.dtype)

def rope(x, cos, sin):
    h = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., h:], x[..., :h]), -1) * sin

class Block(nn.Module):
    def __init__(self, H, I, NH, NKV, HD, bias):
        super().__init__()
        self.NH, self.NKV, self.HD = NH, NKV, HD
        self.n1, self.n2 = RMSNorm(H), RMSNorm(H)
        self.q = nn.Linear(H, NH * HD, bias=bias); self.k = nn.Linear(H, NKV * HD, bias=bias)
        self.v = nn.Linear(H, NKV * HD, bias=bias); self.o = nn.Linear(NH * HD, H, bias=False)
        self.g = nn.Linear(H, I, bias=False); self.u = nn.Linear(H, I, bias=False); self.d = nn.Linear(I, H, bias=False)
    def forward(self, x, cos, sin):
        B, T, _ = x.shape; h = self.n1(x)
        q = self.q(h).view(B, T, self.NH, self.HD).transpose(1, 2)
        k = self.k(h).view(B, T, self.NKV, self.HD).transpose(1, 2)
        v = self.v(h).view(B, T, self.NKV, self.HD).transpose(1, 2)
        q, k = rope(q, cos, sin), rope(k, cos, sin)
        k = k.repeat_interleave(self.NH // self.NKV, 1); v = v.repeat_interleave(self.NH // self.NKV, 1)
        if hasattr(F, "scaled_dot_product_attention"):
            a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        else:  # PyTorch < 2.0
            s = (q @ k.transpose(-1, -2)) * self.HD ** -0.5
            s = s.masked_fill(torch.triu(torch.ones(T, T, dtype=torch.bool), 1), float("-inf"))
            a = torch.softmax(s.float(), -1).to(q.dtype) @ v
        x = x + self.o(a.transpose(1, 2).reshape(B, T, -1))
        h = self.n2(x)
        return x + self.d(F.silu(self.g(h)) * self.u(h))

class Decoder(nn.Module):
    def __init__(self, shape):
        super().__init__()
        H, I, L, NH, NKV, V, HD, bias, tied, theta = shape
        self.HD, self.theta, self.V = HD, theta, V
        self.embed = nn.Embedding(V, H)
        self.blocks = nn.ModuleList([Block(H, I, NH, NKV, HD, bias) for _ in range(L)])
        self.norm = RMSNorm(H)
        self.ckpt = False
    def forward(self, ids):
        T = ids.shape[1]
        inv = 1.0 / (self.theta ** (torch.arange(0, self.HD, 2).float() / self.HD))
        f = torch.outer(torch.arange(T).float(), inv); emb = torch.cat((f, f), -1)
        x = self.embed(ids); cos, sin = emb.cos().to(x.dtype), emb.sin().to(x.dtype)
        for b in self.blocks:
            if self.ckpt:
                x = torch.utils.checkpoint.checkpoint(b, x, cos.to(x.dtype), sin.to(x.dtype), use_reentrant=False)
            else:
                x = b(x, cos.to(x.dtype), sin.to(x.dtype))
        logits = F.linear(self.norm(x), self.embed.weight)
        return F.cross_entropy(logits[:, :-1].float().reshape(-1, self.V), ids[:, 1:].reshape(-1))

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="qwen2.5-0.5b", choices=sorted(SHAPES))
    ap.add_argument("--batch", type=int, default=4); ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--dtype", default="bf16", choices=["bf16", "fp32"])
    ap.add_argument("--threads", type=int, default=os.cpu_count()); ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--layers", type=int, default=0)  # sft.cpp addition: 0 = the shape's own layer count
    ap.add_argument("--gradient_checkpointing", type=int, default=0)  # sft.cpp addition
    ap.add_argument("--neftune_noise_alpha", type=float, default=0)  # sft.cpp addition: transformers' NEFTune hook
    a = ap.parse_args()
    torch.manual_seed(0); torch.set_num_threads(a.threads)
    shape = SHAPES[a.shape]
    if a.layers > 0:
        shape = shape[:2] + (a.layers,) + shape[3:]
    m = Decoder(shape); n = sum(p.numel() for p in m.parameters()); m.ckpt = bool(a.gradient_checkpointing)
    ids = torch.randint(0, shape[5], (a.batch, a.seq)); opt = torch.optim.AdamW(m.parameters(), lr=1e-5)
    if a.neftune_noise_alpha > 0:  # what Trainer does for TrainingArguments.neftune_noise_alpha
        from transformers.integrations.neftune import neftune_post_forward_hook
        m.embed.neftune_noise_alpha = a.neftune_noise_alpha
        m.embed.register_forward_hook(neftune_post_forward_hook)
    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=(a.dtype == "bf16")):
            loss = m(ids)
        loss.backward(); opt.step()
    step()  # warm-up
    times = []
    for _ in range(a.steps):
        t = time.perf_counter(); step(); times.append(time.perf_counter() - t)
    dt = sorted(times)[len(times) // 2]
    H, L, T, B = shape[0], shape[2], a.seq, a.batch
    flops = 6 * n * B * T + 6 * L * B * T * T * shape[3] * shape[6]  # 6N per token + causal attention fwd+bwd
    print(json.dumps({"peer": "pytorch", "torch": torch.__version__, "shape": a.shape, "layers": L, "params": n, "batch": B, "seq": T,
                      "dtype": a.dtype, "threads": a.threads, "gradient_checkpointing": bool(a.gradient_checkpointing),
                      "neftune_noise_alpha": a.neftune_noise_alpha, "step_s_median": round(dt, 3),
                      "tokens_per_s": round(B * T / dt, 1), "model_gflops": round(flops / dt / 1e9, 1),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))

if __name__ == "__main__":
    main()
