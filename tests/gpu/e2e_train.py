#!/usr/bin/env python3
"""End-to-end `sft train` on the GPU: the same short run (tiny random Qwen2 folder made with transformers, the tiny
alpaca fixture, 6 optimizer steps, batch 4 x accumulation 2) with --device cpu and --device cuda, in fp32 and bf16
compute; the per-step training losses and the final weights must agree.
Tolerances: fp32 1e-3 relative on losses, 2e-3 of the tensor scale on weights (the CUDA attention runs TF32);
bf16 (--torch_dtype bfloat16 / --bf16) 2e-2 on losses, 2e-2 of the scale on weights.
Needs torch + transformers (to write the model folder) and safetensors; prints SKIP and exits 0 without them.
Usage: e2e_train.py <path to the sft binary>     (scripts/gpu-check.sh runs it)"""
import json
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "train"))


def main():
    sft = sys.argv[1]
    os.environ["SFT_BIN"] = sft
    try:
        import numpy as np
        from safetensors.numpy import load_file
        from train_test_util import DATASET, make_tiny_model, read_log, run_sft
    except Exception as e:  # noqa: BLE001
        print(f"SKIP: {e}")
        return 0
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        base = make_tiny_model(os.path.join(tmp, "base"))
        for prec, extra, loss_rtol, w_tol in (("fp32", [], 1e-3, 2e-3), ("bf16", ["--bf16"], 2e-2, 2e-2)):
            logs, weights = {}, {}
            for dev in ("cpu", "cuda"):
                out = os.path.join(tmp, f"{prec}-{dev}")
                res = run_sft(["--model_name_or_path", base, "--dataset_path", DATASET, "--output_dir", out,
                               "--max_steps", "6", "--per_device_train_batch_size", "4",
                               "--gradient_accumulation_steps", "2", "--learning_rate", "1e-3",
                               "--lr_scheduler_type", "linear", "--max_grad_norm", "1.0", "--logging_steps", "1",
                               "--save_strategy", "no", "--max_seq_length", "224", "--seed", "7",
                               "--device", dev, *extra], check=False)
                if res.returncode != 0:
                    failures.append(f"{prec} {dev}: sft train failed ({res.returncode}): {res.stderr[-2000:]}")
                    break
                logs[dev] = [r["loss"] for r in read_log(out) if "loss" in r]
                st = sorted(f for f in os.listdir(out) if f.endswith(".safetensors"))
                if not st:
                    failures.append(f"{prec} {dev}: no .safetensors in {out}")
                weights[dev] = {}
                for f in st:
                    weights[dev].update(load_file(os.path.join(out, f)))
            if len(logs) < 2:
                continue
            lc, lg = logs["cpu"], logs["cuda"]
            print(f"{prec}: cpu losses {lc}\n{prec}: cuda losses {lg}")
            if len(lc) != len(lg) or not lc:
                failures.append(f"{prec}: {len(lc)} cpu vs {len(lg)} cuda loss lines")
            else:
                worst = max(abs(a - b) / max(abs(a), 1e-6) for a, b in zip(lc, lg))
                print(f"{prec}: worst relative loss difference {worst:.2e} (tolerance {loss_rtol})")
                if worst > loss_rtol:
                    failures.append(f"{prec}: losses differ by {worst:.2e} relative")
            for name, wc in weights["cpu"].items():
                wg = weights["cuda"].get(name)
                if wg is None:
                    failures.append(f"{prec}: {name} missing from the cuda output")
                    continue
                wc32, wg32 = wc.astype(np.float32), wg.astype(np.float32)
                scale = max(float(np.abs(wc32).max()), 1e-6)
                err = float(np.abs(wc32 - wg32).max()) / scale
                if err > w_tol:
                    failures.append(f"{prec}: {name} differs by {err:.2e} of its scale")
    if failures:
        print("FAIL:\n  " + "\n  ".join(failures))
        return 1
    print("PASS: sft train --device cuda matches --device cpu (losses and final weights, fp32 and bf16)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
