"""Peer of bench/big_lora.sh: LoRA on a big model folder (bench/make_random_model.py) the way people run it on one
machine with transformers + peft, on the CPU, one process per configuration:
  --quant none  the base loaded in bf16 (torch_dtype=bfloat16), LoRA adapters, bf16 compute;
  --quant nf4   QLoRA: BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type=nf4, bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype=bfloat16) and peft's prepare_model_for_kbit_training, as TRL's SFTTrainer does
                for a 4-bit model (it upcasts the non-quantised bf16 parameters — embedding, norms, LM head — to fp32).
Both: LoRA r 16, alpha 32, dropout 0, all-linear, gradient checkpointing (non-reentrant), AdamW over the adapters,
batch 1 x 512 random tokens (speed does not depend on the values). Prints one JSON line: load seconds, peak RSS after
loading (the load's peak) and after training, s/step (median of --steps after a warm-up step), tokens/s.
usage: python torch_big_lora.py --model DIR [--quant none|nf4] [--seq 512] [--batch 1] [--steps 2] [--threads N]
"""
import argparse
import json
import os
import resource
import time

import torch


def peak_rss_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--quant", default="none", choices=["none", "nf4"])
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--lora_r", type=int, default=16)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    t0 = time.perf_counter()
    kw = dict(torch_dtype=torch.bfloat16, low_cpu_mem_usage=True)
    if a.quant == "nf4":
        import bitsandbytes
        kw["quantization_config"] = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                                       bnb_4bit_use_double_quant=True,
                                                       bnb_4bit_compute_dtype=torch.bfloat16)
    model = AutoModelForCausalLM.from_pretrained(a.model, device_map="cpu", **kw)
    load_s = time.perf_counter() - t0
    load_rss = peak_rss_mib()
    if a.quant == "nf4":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=True,
                                                gradient_checkpointing_kwargs={"use_reentrant": False})
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    pm = get_peft_model(model, LoraConfig(r=a.lora_r, lora_alpha=2 * a.lora_r, lora_dropout=0.0,
                                          target_modules="all-linear", task_type="CAUSAL_LM"))
    pm.train()
    params = [p for p in pm.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=1e-5)
    V = model.config.vocab_size
    ids = torch.randint(0, V, (a.batch, a.seq))

    def step():
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16):
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
    print(json.dumps({"peer": "transformers+peft" + ("+bitsandbytes nf4 dq" if a.quant == "nf4" else " bf16 base"),
                      "torch": torch.__version__,
                      "bitsandbytes": __import__("bitsandbytes").__version__ if a.quant == "nf4" else None,
                      "model": os.path.basename(os.path.normpath(a.model)), "layers": model.config.num_hidden_layers,
                      "batch": a.batch, "seq": a.seq, "lora_r": a.lora_r,
                      "trainable": sum(p.numel() for p in params), "threads": a.threads,
                      "load_s": round(load_s, 1), "peak_rss_load_mib": load_rss, "step_s_median": round(dt, 3),
                      "tokens_per_s": round(a.batch * a.seq / dt, 1), "peak_rss_mib": peak_rss_mib()}))


if __name__ == "__main__":
    main()
