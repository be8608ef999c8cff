#!/usr/bin/env python3
"""Benchmark: `sft eval` vs lm-evaluation-harness (HF backend), and `sft generate` vs transformers, same CPU, same
data, same SmolLM2-135M fp32 weights, same thread count. Prints ratios (ours / peer) measured in this one script run.

  Documents/s per task set and shot count (MMLU subjects 0- and 5-shot by default; ARC/HellaSwag 0-shot): both sides
    time only the evaluation (model loading excluded): sft's results.json "sft.total_seconds" vs the wall time of
    lm_eval.simple_evaluate around a preloaded HFLM (batch_size --lm_eval_batch_size). Per-document predictions (acc,
    acc_norm) of the two engines are compared and the number of differences printed (should be 0).
  --dtype_check: sft bfloat16 vs float32 on the same MMLU documents (prediction agreement, max |delta ll|).
  Generation tokens/s (greedy, --gen_tokens N): sft's decode time from `sft generate --json` vs the wall time of
    model.generate minus a 1-token generate (prefill) for transformers.

Usage: <venv>/bin/python bench/eval_bench.py [--sft build/src/cli/sft] [--data_dir tests/fixtures/eval/data]
        [--subjects abstract_algebra,marketing,world_religions] [--limit 40] [--shots 0,5]
        [--other_tasks arc_easy,arc_challenge,hellaswag] [--other_limit 20] [--gen_tokens 64] [--threads N]
        [--batch_size auto] [--dtype_check]
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


def run_sft_eval(a, model, tasks, limit, out, shots=0, dtype="float32"):
    cmd = [a.sft, "eval", "--model", model, "--tasks", tasks, "--limit", str(limit), "--data_dir", a.data_dir,
           "--num_fewshot", str(shots), "--batch_size", a.batch_size, "--dtype", dtype,
           "--arc_split", "dev", "--output_path", str(out), "--log_samples", "--quiet"]
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    res = json.loads((Path(out) / "results.json").read_text())
    samples = {t: [json.loads(l) for l in (Path(out) / f"samples_{t}.jsonl").read_text().splitlines()]
               for t in tasks.split(",")}
    return res, samples


def compare_predictions(ours_samples, ref):
    """Number of documents whose acc / acc_norm differ between the engines, and max |delta ll|."""
    diff, worst, n = 0, 0.0, 0
    for task, rows in ours_samples.items():
        theirs = sorted(ref["samples"][task], key=lambda s: s["doc_id"])
        for o, t in zip(rows, theirs):
            n += 1
            for m in ("acc", "acc_norm"):
                if m in t and o[m] != t[m]:
                    diff += 1
                    break
            worst = max(worst, max(abs(r[0] - x[0][0]) for r, x in zip(o["resps"], t["resps"])))
    return diff, n, worst


def timed_pair(a, lm, oracle, model, tasks, limit, shots, tmp, label):
    import lm_eval
    ours, ours_samples = run_sft_eval(a, model, tasks, limit, Path(tmp) / f"{label}_{shots}", shots)
    task_objs = [oracle.make_task(t, a.data_dir, tmp) for t in tasks.split(",")]
    t0, c0 = time.perf_counter(), time.process_time()
    ref = lm_eval.simple_evaluate(model=lm, tasks=task_objs, num_fewshot=shots, limit=limit, bootstrap_iters=0,
                                  log_samples=True, fewshot_random_seed=1234)
    ref_s, ref_cpu = time.perf_counter() - t0, time.process_time() - c0
    n_docs = sum(v["effective"] for v in ours["n-samples"].values())
    ours_s, ours_cpu = ours["sft"]["total_seconds"], ours["sft"]["cpu_seconds"]
    diff, n, worst = compare_predictions(ours_samples, ref)
    print(f"{label} {shots}-shot, {n_docs} documents, {a.threads} threads:")
    print(f"  sft eval   {n_docs / ours_s:8.2f} docs/s wall ({ours_s:.1f} s), {n_docs / ours_cpu:8.2f} docs/CPU-s")
    print(f"  lm-eval HF {n_docs / ref_s:8.2f} docs/s wall ({ref_s:.1f} s), {n_docs / ref_cpu:8.2f} docs/CPU-s")
    print(f"  ratio sft/lm-eval: {ref_s / ours_s:.2f}x wall, {ref_cpu / ours_cpu:.2f}x CPU time; "
          f"predictions differing: {diff}/{n}; max |dll| {worst:.2g}")
    for t in tasks.split(","):
        for m in ("acc", "acc_norm"):
            if f"{m},none" in ref["results"][t]:
                print(f"    {t:32s} {m:8s} {ours['results'][t][m + ',none']:.4f} | {ref['results'][t][m + ',none']:.4f}")
    return ours_samples


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sft", default=os.environ.get("SFT_BIN", str(SRC / "build" / "src" / "cli" / "sft")))
    ap.add_argument("--data_dir", default=str(SRC / "tests" / "fixtures" / "eval" / "data"))
    ap.add_argument("--subjects", default="abstract_algebra,marketing,world_religions")
    ap.add_argument("--limit", type=int, default=40)
    ap.add_argument("--shots", default="0,5", help="MMLU shot counts to time")
    ap.add_argument("--other_tasks", default="arc_easy,arc_challenge,hellaswag")
    ap.add_argument("--other_limit", type=int, default=20)
    ap.add_argument("--gen_tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=os.cpu_count(),
                    help="threads for both engines (on a loaded machine use 1: OpenMP/torch pools spin)")
    ap.add_argument("--batch_size", default="auto", help="sft eval --batch_size")
    ap.add_argument("--lm_eval_batch_size", type=int, default=8)
    ap.add_argument("--dtype_check", action="store_true")
    a = ap.parse_args()
    os.environ["OMP_NUM_THREADS"] = str(a.threads)

    import lm_eval_oracle as oracle
    import torch
    import transformers
    from lm_eval.models.huggingface import HFLM

    torch.set_num_threads(a.threads)
    model = model_dir()
    hf = transformers.AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32).eval()
    tok = transformers.AutoTokenizer.from_pretrained(model)
    lm = HFLM(pretrained=hf, tokenizer=tok, device="cpu", batch_size=a.lm_eval_batch_size)

    mmlu = ",".join("mmlu_" + s for s in a.subjects.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        for shots in [int(x) for x in a.shots.split(",") if x != ""]:
            fp32 = timed_pair(a, lm, oracle, model, mmlu, a.limit, shots, tmp, "MMLU")
            if a.dtype_check:
                _, bf = run_sft_eval(a, model, mmlu, a.limit, Path(tmp) / f"bf16_{shots}", shots, "bfloat16")
                agree = sum(x["acc"] == y["acc"] for t in fp32 for x, y in zip(fp32[t], bf[t]))
                n = sum(len(fp32[t]) for t in fp32)
                worst = max(abs(r[0] - q[0]) for t in fp32 for x, y in zip(fp32[t], bf[t])
                            for r, q in zip(x["resps"], y["resps"]))
                print(f"  bf16 vs fp32 (sft, same docs): acc agrees on {agree}/{n} documents, max |dll| {worst:.3g}")
        if a.other_tasks:
            timed_pair(a, lm, oracle, model, a.other_tasks, a.other_limit, 0, tmp, "ARC/HellaSwag")

    if a.gen_tokens <= 0:
        return
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
