#!/usr/bin/env python3
"""The peer of gpu_step_bench: one optimizer step of a Qwen2.5-0.5B-shaped model with random weights in
transformers + torch (bf16 weights as `--torch_dtype bfloat16` trains, SDPA attention, fused torch AdamW, grad clip 1.0).
Prints one JSON line (tokens/s, step time, peak memory). When torch/transformers/CUDA are missing it prints
{"available": false, "reason": ...} and exits 0 so the caller can say so and continue.
Usage: torch_step.py [--batch B] [--seq T] [--steps N] [--warmup W]"""
import argparse
import json
import sys
import time


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--seq", type=int, default=1024)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=2)
    a = ap.parse_args()
    try:
        import torch
        import transformers
        from transformers import Qwen2Config, Qwen2ForCausalLM
    except Exception as e:  # noqa: BLE001
        print(json.dumps({"impl": "torch", "available": False, "reason": f"import failed: {e}"}))
        return 0
    if not torch.cuda.is_available():
        print(json.dumps({"impl": "torch", "available": False, "reason": "torch sees no CUDA device"}))
        return 0
    cfg = Qwen2Config(vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                      num_attention_heads=14, num_key_value_heads=2, max_position_embeddings=32768,
                      rope_theta=1e6, rms_norm_eps=1e-6, tie_word_embeddings=True)
    cfg._attn_implementation = "sdpa"
    torch.manual_seed(0)
    batch = a.batch
    model = opt = ids = None
    while batch >= 1:
        try:
            model = Qwen2ForCausalLM(cfg).to(device="cuda", dtype=torch.bfloat16)
            model.train()
            opt = torch.optim.AdamW(model.parameters(), lr=5e-5, eps=1e-8, weight_decay=0.0, fused=True)
            ids = torch.randint(0, cfg.vocab_size, (batch, a.seq), device="cuda")
            torch.cuda.reset_peak_memory_stats()

            def step():
                out = model(input_ids=ids, labels=ids)
                out.loss.backward()
                torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
                opt.step()
                opt.zero_grad(set_to_none=True)
                return out.loss

            for _ in range(a.warmup):
                step()
            torch.cuda.synchronize()
            t0 = time.perf_counter()
            for _ in range(a.steps):
                loss = step()
            torch.cuda.synchronize()
            secs = (time.perf_counter() - t0) / a.steps
            print(json.dumps({
                "impl": "torch", "available": True, "torch": torch.__version__,
                "transformers": transformers.__version__, "precision": "bf16 weights (pure bf16 training)",
                "attn": "sdpa", "batch": batch, "seq": a.seq, "step_s": round(secs, 4),
                "tokens_per_s": round(batch * a.seq / secs, 1),
                "peak_mem_gib": round(torch.cuda.max_memory_allocated() / 2**30, 2),
                "loss": round(float(loss), 4)}))
            return 0
        except torch.cuda.OutOfMemoryError:
            model = opt = ids = None
            import gc
            gc.collect()
            torch.cuda.empty_cache()
            batch //= 2
    print(json.dumps({"impl": "torch", "available": True, "error": "out of memory even at batch 1"}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
