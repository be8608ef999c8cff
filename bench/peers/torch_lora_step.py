"""Peer measurement for LoRA: one training step (forward + backward + AdamW over the adapters) of a Qwen2/Llama-shaped
transformers model with a peft LoRA adapter, on the CPU — what a user of transformers + peft runs. Random weights
(speed does not depend on their values). Prints one JSON line with the fields of bench/train_step.
usage: python torch_lora_step.py --shape qwen2.5-0.5b --layers 4 --batch 1 --seq 512 --lora_r 16
       [--lora_targets all-linear] [--dtype fp32|bf16] [--threads N] [--steps 2] [--gradient_checkpointing 0|1]
--gradient_checkpointing 1: transformers' gradient_checkpointing_enable (non-reentrant) + enable_input_require_grads,
the usual peft recipe, to compare with sft's --gradient_checkpointing.
"""
import argparse
import json
import os
import resource
import time

import torch

SHAPES = {  # hidden, intermediate, layers, heads, kv heads, vocab, head_dim, qkv bias (qwen2), tied, rope theta
    "qwen2.5-0.5b": (896, 4864, 24, 14, 2, 151936, 64, True, True, 1e6),
    "qwen2.5-1.5b": (1536, 8960, 28, 12, 2, 151936, 128, True, True, 1e6),
    "smollm2-135m": (576, 1536, 30, 9, 3, 49152, 64, False, True, 1e5),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shape", default="qwen2.5-0.5b", choices=sorted(SHAPES))
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--layers", type=int, default=0)
    ap.add_argument("--lora_r", type=int, default=16)
    ap.add_argument("--lora_targets", default="all-linear")
    ap.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"])
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--gradient_checkpointing", type=int, default=0)
    a = ap.parse_args()
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM
    torch.manual_seed(0)
    torch.set_num_threads(a.threads)
    H, I, L, NH, NKV, V, HD, qwen, tied, theta = SHAPES[a.shape]
    L = a.layers or L
    common = dict(vocab_size=V, hidden_size=H, intermediate_size=I, num_hidden_layers=L, num_attention_heads=NH,
                  num_key_value_heads=NKV, head_dim=HD, tie_word_embeddings=tied, rope_theta=theta, rms_norm_eps=1e-6,
                  max_position_embeddings=32768)
    model = Qwen2ForCausalLM(Qwen2Config(**common)) if qwen else LlamaForCausalLM(LlamaConfig(**common))
    n_all = sum(p.numel() for p in model.parameters())
    if a.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    targets = "all-linear" if a.lora_targets == "all-linear" else a.lora_targets.split(",")
    pm = get_peft_model(model, LoraConfig(r=a.lora_r, lora_alpha=2 * a.lora_r, lora_dropout=0.0,
                                          target_modules=targets, task_type="CAUSAL_LM"))
    pm.train()
    params = [p for p in pm.parameters() if p.requires_grad]
    trainable = sum(p.numel() for p in params)
    opt = torch.optim.AdamW(params, lr=1e-5)
    ids = torch.randint(0, V, (a.batch, a.seq))

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=(a.dtype == "bf16")):
            loss = pm(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()

    step()  # warm-up
    times = []
    for _ in range(a.steps):
        t = time.perf_counter()
        step()
        times.append(time.perf_counter() - t)
    dt = sorted(times)[len(times) // 2]
    T, B = a.seq, a.batch
    flops = 6 * n_all * B * T + 6 * L * B * T * T * NH * HD  # full-FT model FLOPs, as bench/train_step counts them
    print(json.dumps({"peer": "pytorch+peft", "torch": torch.__version__, "shape": a.shape, "layers": L,
                      "params": n_all, "batch": B, "seq": T, "lora_r": a.lora_r, "trainable": trainable,
                      "dtype": a.dtype, "threads": a.threads,
                      "gradient_checkpointing": bool(a.gradient_checkpointing), "step_s_median": round(dt, 3),
                      "tokens_per_s": round(B * T / dt, 1), "model_gflops": round(flops / dt / 1e9, 1),
                      "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024}))


if __name__ == "__main__":
    main()
