#!/usr/bin/env python3
"""Benchmark: `sft eval` vs lm-evaluation-harness (HF backend), and `sft generate` vs transformers, same CPU, same
data, same SmolLM2-135M fp32 weights. Prints ratios (ours / peer) measured in this one script run.

  MMLU questions/s (0-shot by default, --num_fewshot N): both sides time only the evaluation (model loading excluded): sft's results.json
    "sft.total_seconds" vs wall time of lm_eval.simple_evaluate around a preloaded HFLM.
  Generation tokens/s (greedy, --max_new_tokens N): sft's decode time from `sft generate --json` vs the wall time of
    model.generate minus a 1-token generate (prefill) for transformers.
  Accuracies of both engines on the same documents are printed side by side.

Usage: <venv>/bin/python bench/eval_bench.py [--sft build/src/cli/sft] [--data_dir tests/fixtures/eval/data]
        [--subjects abstract_algebra,marketing,world_religions] [--limit 40] [--other_tasks arc_easy,arc_challenge,hellaswag]
        [--other_limit 20] [--gen_tokens 64] [--threads N]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SRC = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(SRC / "tests" / "eval"))


def model_dir():
    r = subprocess.run([sys.executable, str(SRC / "scripts" / "convert_smollm2.py")], capture_output=True, text=True,
                       check=True)
    return r.stdout.strip().splitlines()[-1]


def run_sft_eval(a, model, tasks, limit, out, shots=0):
    cmd = [a.sft, "eval", "--model", model, "--tasks", tasks, "--limit", str(limit), "--data_dir", a.data_dir,
           "--num_fewshot", str(shots),
           "--arc_split", "dev", "--output_path", str(out), "--quiet"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return json.loads((Path(out) / "results.json").read_text())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sft", default=os.environ.get("SFT_BIN", str(SRC / "build" / "src" / "cli" / "sft")))
    ap.add_argument("--data_dir", default=str(SRC / "tests" / "fixtures" / "eval" / "data"))
    ap.add_argument("--subjects", default="abstract_algebra,marketing,world_religions")
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--num_fewshot", type=int, default=0, help="MMLU shots for the questions/s measurement")
    ap.add_argument("--other_tasks", default="arc_easy,arc_challenge,hellaswag")
    ap.add_argument("--other_limit", type=int, default=20)
    ap.add_argument("--gen_tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(a.threads))

    import lm_eval_oracle as oracle  # also installs the accelerate import stub when needed
    import torch
    import transformers
    import lm_eval
    from lm_eval.models.huggingface import HFLM

    torch.set_num_threads(a.threads)
    model = model_dir()
    hf = transformers.AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
    tok = transformers.AutoTokenizer.from_pretrained(model)
    lm = HFLM(pretrained=hf, tokenizer=tok, device="cpu", batch_size=8)

    mmlu = ",".join("mmlu_" + s for s in a.subjects.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        ours = run_sft_eval(a, model, mmlu, a.limit, Path(tmp) / "mmlu", a.num_fewshot)
        tasks = [oracle.make_task(t, a.data_dir, tmp) for t in mmlu.split(",")]
        t0 = time.perf_counter()
        ref = lm_eval.simple_evaluate(model=lm, tasks=tasks, num_fewshot=a.num_fewshot, limit=a.limit,
                                      bootstrap_iters=0)
        ref_s = time.perf_counter() - t0
        n_q = sum(v["effective"] for v in ours["n-samples"].values())
        ours_qps, ref_qps = n_q / ours["sft"]["total_seconds"], n_q / ref_s
        print(f"MMLU {a.num_fewshot}-shot, {n_q} questions ({a.subjects}), {a.threads} threads:")
        print(f"  sft eval   {ours_qps:8.2f} questions/s")
        print(f"  lm-eval HF {ref_qps:8.2f} questions/s")
        print(f"  ratio sft/lm-eval: {ours_qps / ref_qps:.2f}x")
        print("\nAccuracy on the same documents (sft | lm-eval):")
        for t in mmlu.split(","):
            print(f"  {t:32s} acc {ours['results'][t]['acc,none']:.4f} | {ref['results'][t]['acc,none']:.4f}")
        if a.other_tasks:
            ours2 = run_sft_eval(a, model, a.other_tasks, a.other_limit, Path(tmp) / "other")
            tasks2 = [oracle.make_task(t, a.data_dir, tmp) for t in a.other_tasks.split(",")]
            ref2 = lm_eval.simple_evaluate(model=lm, tasks=tasks2, num_fewshot=0, limit=a.other_limit,
                                           bootstrap_iters=0)
            for t in a.other_tasks.split(","):
                for m in ("acc", "acc_norm"):
                    print(f"  {t:32s} {m:8s} {ours2['results'][t][m + ',none']:.4f} | "
                          f"{ref2['results'][t][m + ',none']:.4f}")

    prompt = "The history of the Roman Empire"
    r = subprocess.run([a.sft, "generate", "--model", model, "--prompt", prompt, "--greedy", "--max_new_tokens",
                        str(a.gen_tokens), "--json"], check=True, capture_output=True, text=True)
    g = json.loads(r.stdout)
    ours_tps = len(g["tokens"]) / g["decode_seconds"]
    ids = torch.tensor([tok(prompt)["input_ids"]])
    kw = dict(attention_mask=torch.ones_like(ids), do_sample=False, pad_token_id=tok.pad_token_id)
    with torch.no_grad():
        hf.generate(ids, max_new_tokens=4, **kw)  # warm-up
        t0 = time.perf_counter()
        hf.generate(ids, max_new_tokens=1, **kw)
        t1 = time.perf_counter()
        out = hf.generate(ids, max_new_tokens=a.gen_tokens, min_new_tokens=a.gen_tokens, **kw)
        t2 = time.perf_counter()
    n_new = out.shape[1] - ids.shape[1]
    ref_tps = (n_new - 1) / max(1e-9, (t2 - t1) - (t1 - t0))
    print(f"\nGreedy generation, {a.gen_tokens} new tokens:")
    print(f"  sft generate  {ours_tps:8.1f} tokens/s")
    print(f"  transformers  {ref_tps:8.1f} tokens/s")
    print(f"  ratio sft/transformers: {ours_tps / ref_tps:.2f}x")


if __name__ == "__main__":
    main()
