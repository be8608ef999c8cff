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
  Leaderboard rows (--lb_tasks, default truthfulqa_mc1,truthfulqa_mc2,winogrande,piqa,boolq,openbookqa at --lb_shots
    0,5, --lb_limit docs each) vs lm-eval on the same documents; GSM8K (--gsm8k_limit docs, 5-shot, greedy
    generate_until, --gsm8k_max_gen_toks) vs lm-eval's HF generate_until (batch --lm_eval_batch_size): wall ratio,
    generated texts/answers differing.
  bf16 (--bf16 auto|on|off; auto = only on CPUs with avx512_bf16 / amx_bf16): sft --dtype bfloat16 on MMLU 5-shot and
    the leaderboard rows against lm-eval fp32 from the same run (ratio) and sft fp32 (predictions agreeing).
  Every sft row also prints its model GFLOP/s and share of the gemm peak sft measured in that run ("model compute"),
  the median of --repeat runs, and the peak RSS of the sft processes; the header prints the CPU's ISA flags.

Usage: <venv>/bin/python bench/eval_bench.py [--sft build/src/cli/sft] [--data_dir tests/fixtures/eval/data]
        [--subjects abstract_algebra,marketing,world_religions] [--limit 40] [--shots 0,5]
        [--other_tasks arc_easy,arc_challenge,hellaswag] [--other_limit 20] [--gen_tokens 64] [--threads N]
        [--batch_size auto] [--dtype_check] [--lb_tasks ...] [--lb_limit 10] [--lb_shots 0,5] [--gsm8k_limit 8]
        [--gsm8k_max_gen_toks 128] [--bf16 auto] [--repeat 1]
"""
import argparse
import json
import os
import re
import statistics
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


COMPUTE = re.compile(r"model compute: ([0-9.]+) GFLOP in ([0-9.]+) s .* = ([0-9.]+) GFLOP/s, ([0-9]+)% of this "
                     r"machine's (\w+) gemm peak \(([0-9.]+) GFLOP/s")


def run_sft_eval(a, model, tasks, limit, out, shots=0, dtype="float32", extra=()):
    """Runs sft eval --repeat times; returns the last results (with the median total_seconds), samples, compute line."""
    cmd = [a.sft, "eval", "--model", model, "--tasks", tasks, "--limit", str(limit), "--data_dir", a.data_dir,
           "--num_fewshot", str(shots), "--batch_size", a.batch_size, "--dtype", dtype,
           "--arc_split", "dev", "--output_path", str(out), "--log_samples", "--quiet", *extra]
    times, cpus = [], []
    for _ in range(max(1, a.repeat)):
        r = run_measured(cmd)
        res = json.loads((Path(out) / "results.json").read_text())
        times.append(res["sft"]["total_seconds"])
        cpus.append(res["sft"]["cpu_seconds"])
    res["sft"]["total_seconds"], res["sft"]["cpu_seconds"] = statistics.median(times), statistics.median(cpus)
    m = COMPUTE.search(r.stdout)
    res["compute_line"] = (f"model {m.group(3)} GFLOP/s = {m.group(4)}% of the {m.group(6)} GFLOP/s {m.group(5)} gemm "
                           f"peak measured in the same run") if m else "no compute line"
    samples = {t: [json.loads(l) for l in (Path(out) / f"samples_{t}.jsonl").read_text().splitlines()]
               for t in res["n-samples"]}  # tasks only (results also holds groups)
    return res, samples


SFT_PEAK_RSS_KIB = [0]


def run_measured(cmd):
    """subprocess.run(check=True) that also records the child's own peak RSS (wait4's rusage)."""
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        p = subprocess.Popen(cmd, stdout=out, stderr=err, text=True)
        _, status, usage = os.wait4(p.pid, 0)
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        r = subprocess.CompletedProcess(cmd, p.returncode, out.read(), err.read())
    if r.returncode != 0:
        raise subprocess.CalledProcessError(r.returncode, cmd, r.stdout, r.stderr)
    SFT_PEAK_RSS_KIB[0] = max(SFT_PEAK_RSS_KIB[0], usage.ru_maxrss)
    return r


def peak_rss_mib():
    return SFT_PEAK_RSS_KIB[0] / 1024


def compare_predictions(ours_samples, ref):
    """Number of documents whose acc / acc_norm differ between the engines (mc2: |d mass| > 1e-3), and max |d ll|."""
    diff, worst, n = 0, 0.0, 0
    for task, rows in ours_samples.items():
        theirs = sorted(ref["samples"][task], key=lambda s: s["doc_id"])
        for o, t in zip(rows, theirs):
            n += 1
            for m in ("acc", "acc_norm"):
                if m in t and abs(o[m] - t[m]) > (1e-3 if task == "truthfulqa_mc2" else 0):
                    diff += 1
                    break
            worst = max(worst, max(abs(r[0] - x[0][0]) for r, x in zip(o["resps"], t["resps"])))
    return diff, n, worst


def run_lm_eval(a, lm, oracle, tasks, limit, shots, tmp, gen_kwargs=None):
    """lm-eval's simple_evaluate on a preloaded HFLM, --repeat times: (results of the last, median wall, median CPU)."""
    import lm_eval
    walls, cpus = [], []
    for _ in range(max(1, a.repeat)):
        task_objs = [oracle.make_task(t, a.data_dir, tmp) for t in tasks.split(",")]
        t0, c0 = time.perf_counter(), time.process_time()
        ref = lm_eval.simple_evaluate(model=lm, tasks=task_objs, num_fewshot=shots, limit=limit, bootstrap_iters=0,
                                      log_samples=True, fewshot_random_seed=1234, gen_kwargs=gen_kwargs)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return ref, statistics.median(walls), statistics.median(cpus)


_LM_EVAL_RUNS = {}


def timed_pair(a, lm, oracle, model, tasks, limit, shots, tmp, label, dtype="float32"):
    ours, ours_samples = run_sft_eval(a, model, tasks, limit, Path(tmp) / f"{label}_{shots}_{dtype}", shots, dtype)
    key = (tasks, limit, shots)
    if key not in _LM_EVAL_RUNS:  # the bf16 row compares with the fp32 lm-eval run of the same documents
        _LM_EVAL_RUNS[key] = run_lm_eval(a, lm, oracle, tasks, limit, shots, tmp)
    ref, ref_s, ref_cpu = _LM_EVAL_RUNS[key]
    n_docs = sum(v["effective"] for v in ours["n-samples"].values())
    ours_s, ours_cpu = ours["sft"]["total_seconds"], ours["sft"]["cpu_seconds"]
    diff, n, worst = compare_predictions(ours_samples, ref)
    print(f"{label} {shots}-shot, {n_docs} documents, {a.threads} threads, sft {dtype} vs lm-eval float32:")
    print(f"  sft eval   {n_docs / ours_s:8.2f} docs/s wall ({ours_s:.1f} s), {n_docs / ours_cpu:8.2f} docs/CPU-s; "
          f"{ours['compute_line']}; peak RSS of sft so far {peak_rss_mib():.0f} MiB")
    print(f"  lm-eval HF {n_docs / ref_s:8.2f} docs/s wall ({ref_s:.1f} s), {n_docs / ref_cpu:8.2f} docs/CPU-s")
    print(f"  ratio sft/lm-eval: {ref_s / ours_s:.2f}x wall, {ref_cpu / ours_cpu:.2f}x CPU time; "
          f"predictions differing: {diff}/{n}; max |dll| {worst:.2g}")
    for t in tasks.split(","):
        for m in ("acc", "acc_norm"):
            if f"{m},none" in ref["results"][t]:
                print(f"    {t:32s} {m:8s} {ours['results'][t][m + ',none']:.4f} | {ref['results'][t][m + ',none']:.4f}")
    return ours_samples


def timed_gsm8k(a, oracle, model, hf, tok, tmp):
    from lm_eval.models.huggingface import HFLM
    lm = HFLM(pretrained=hf, tokenizer=tok, device="cpu", batch_size=a.lm_eval_batch_size)
    gk = f"max_gen_toks={a.gsm8k_max_gen_toks}"
    ours, samples = run_sft_eval(a, model, "gsm8k", a.gsm8k_limit, Path(tmp) / "gsm8k", 5, extra=("--gen_kwargs", gk))
    ref, ref_s, ref_cpu = run_lm_eval(a, lm, oracle, "gsm8k", a.gsm8k_limit, 5, tmp, gen_kwargs=gk)
    theirs = {}
    for s in ref["samples"]["gsm8k"]:
        theirs.setdefault(s["doc_id"], {})[s["filter"]] = (s["resps"][0][0], s["filtered_resps"][0])
    text_diff = answer_diff = 0
    for row in samples["gsm8k"]:
        text, answer = theirs[row["doc_id"]][row["filter"]]
        text_diff += row["resps"][0][0] != text
        answer_diff += row["filtered_resps"][0] != answer
    n = a.gsm8k_limit
    ours_s = ours["sft"]["total_seconds"]
    print(f"GSM8K 5-shot generate_until, {n} documents, max_gen_toks {a.gsm8k_max_gen_toks}, {a.threads} threads "
          f"(lm-eval HF batch {a.lm_eval_batch_size}):")
    print(f"  sft eval   {ours_s:8.1f} s wall, {ours['sft']['tokens_generated']} tokens generated "
          f"({ours['sft']['tokens_generated'] / ours['sft']['engine_seconds']:.1f}/s of engine time, prefill included); "
          f"{ours['compute_line']}; peak RSS of sft so far {peak_rss_mib():.0f} MiB")
    print(f"  lm-eval HF {ref_s:8.1f} s wall, {ref_cpu:.1f} CPU-s")
    print(f"  ratio sft/lm-eval: {ref_s / ours_s:.2f}x wall; generated texts differing: {text_diff}/{2 * n} "
          f"(doc x filter), extracted answers differing: {answer_diff}/{2 * n}")
    for f in ("strict-match", "flexible-extract"):
        k = f"exact_match,{f}"
        print(f"    gsm8k {f:17s} {ours['results']['gsm8k'][k]:.4f} | {ref['results']['gsm8k'][k]:.4f}")


def has_bf16_units():
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    return "avx512_bf16" in flags or "amx_bf16" in flags


def isa_flags():
    flags = set(Path("/proc/cpuinfo").read_text().split()) if Path("/proc/cpuinfo").exists() else set()
    return ",".join(sorted(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile") if f in flags))


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
    ap.add_argument("--lb_tasks", default="truthfulqa_mc1,truthfulqa_mc2,winogrande,piqa,boolq,openbookqa")
    ap.add_argument("--lb_limit", type=int, default=10)
    ap.add_argument("--lb_shots", default="0,5")
    ap.add_argument("--gsm8k_limit", type=int, default=8)
    ap.add_argument("--gsm8k_max_gen_toks", type=int, default=128)
    ap.add_argument("--bf16", default="auto", choices=["auto", "on", "off"])
    ap.add_argument("--repeat", type=int, default=1, help="runs per engine and row; medians are printed")
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

    bf16 = a.bf16 == "on" or (a.bf16 == "auto" and has_bf16_units())
    print(f"CPU ISA flags: {isa_flags() or 'none of avx2/avx512'}; sft bf16 rows: {'yes' if bf16 else 'no'}; "
          f"{a.threads} threads; repeat {a.repeat} (medians)")
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
            if bf16 and shots == 5:
                bf = timed_pair(a, lm, oracle, model, mmlu, a.limit, shots, tmp, "MMLU", "bfloat16")
                agree = sum(x["acc"] == y["acc"] for t in fp32 for x, y in zip(fp32[t], bf[t]))
                print(f"  bf16 vs fp32 (sft): acc agrees on {agree}/{sum(len(fp32[t]) for t in fp32)} documents")
        if a.other_tasks:
            timed_pair(a, lm, oracle, model, a.other_tasks, a.other_limit, 0, tmp, "ARC/HellaSwag")
        if a.lb_tasks and a.lb_limit > 0:
            for shots in [int(x) for x in a.lb_shots.split(",") if x != ""]:
                fp32 = timed_pair(a, lm, oracle, model, a.lb_tasks, a.lb_limit, shots, tmp, "Leaderboard rows")
                if bf16:
                    bf = timed_pair(a, lm, oracle, model, a.lb_tasks, a.lb_limit, shots, tmp, "Leaderboard rows",
                                    "bfloat16")
                    pairs = [(x, y) for t in fp32 if t != "truthfulqa_mc2" for x, y in zip(fp32[t], bf[t])]
                    agree = sum(x["acc"] == y["acc"] for x, y in pairs)
                    print(f"  bf16 vs fp32 (sft): acc agrees on {agree}/{len(pairs)} documents (mc2 excluded)")
        if a.gsm8k_limit > 0:
            timed_gsm8k(a, oracle, model, hf, tok, tmp)

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
