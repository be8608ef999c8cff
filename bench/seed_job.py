"""The seed's recipe end to end, four sides in one run on the same data and machine (driven by bench/seed_job.sh):
  sft            `sft train` as a user runs it (padding-free by default)
  sft_padded     `sft train --padding_free False` (micro-batches right-padded to their longest row)
  hf             transformers' Trainer: torch, bf16 autocast on the CPU (or fp32), its padded collator + attention mask
  trl            TRL's SFTTrainer with padding_free=True (transformers' sdpa attention on packed position_ids on CPU;
                 flash-attention, which TRL documents for it, does not exist on CPU)
The Python sides take sft's row order from its `--debug_dump_batches` (tests/train/hf_peer.py: their own
tokenisation, checked against sft's samples, a fixed sampler, the same samples in every optimizer step).
Recipe: alpaca prompt, response-only loss, max length 1024, bf16, per-device batch 4 x accumulation 8, lr 5e-5 linear,
AdamW eps 1e-8, max_grad_norm 1.0, a log row every step, N optimizer steps.
Prints per model and dtype: real (non-pad) tokens/s of each side (steps 2..N when N >= 2: step 1 creates kernels
and primitives on every side), positions computed and their padding share, peak RSS of the process, the ratios,
the per-step losses side by side (and the largest gap to HF Trainer), and each side's projected wall time for the
seed's whole job (31 M tokens: Qwen2.5-0.5B, alpaca-cleaned, 3 epochs) at that speed on this machine."""
import argparse
import json
import os
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
PEER = os.path.join(ROOT, "tests", "train", "hf_peer.py")
SEED_JOB_TOKENS = 31e6
SIDES = ("sft", "sft_padded", "hf", "trl")
LABEL = {"sft": "sft train (padding-free)", "sft_padded": "sft train --padding_free False",
         "hf": "HF Trainer (padded)", "trl": "TRL SFTTrainer (padding_free)"}


def timed(cmd, env, log):
    """Runs cmd under GNU time; returns (stdout, peak RSS in MiB)."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as t:
        res = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", t.name, *cmd], capture_output=True, text=True,
                             env=env)
        with open(log, "a") as f:
            f.write(" ".join(cmd) + "\n" + res.stdout + res.stderr + "\n")
        if res.returncode != 0:
            sys.exit(f"seed_job: {cmd[0]} failed ({res.returncode}); see {log}:\n{res.stderr[-3000:]}")
        return res.stdout, int(t.read().split()[-1]) / 1024


def run_sft(a, model, dtype, side, work, env):
    out = os.path.join(work, f"{side}_{dtype}")
    dump = os.path.join(work, f"{side}_{dtype}.batches.jsonl")
    cmd = [a.sft, "train", "--model_name_or_path", model, "--dataset_path", a.dataset, "--output_dir", out,
           "--overwrite_output_dir", "True", "--template", "alpaca", "--max_seq_length", str(a.max_len),
           "--per_device_train_batch_size", str(a.batch), "--gradient_accumulation_steps", str(a.accum),
           "--learning_rate", "5e-5", "--lr_scheduler_type", "linear", "--adam_epsilon", "1e-8",
           "--max_grad_norm", "1.0", "--max_steps", str(a.steps), "--logging_steps", "1", "--save_strategy", "no",
           "--seed", "42", "--threads", str(a.threads), "--disable_tqdm", "True", "--debug_dump_batches", dump,
           "--padding_free", "False" if side == "sft_padded" else "True"]
    if dtype == "bf16":
        cmd += ["--bf16", "True"]
    stdout, rss = timed(cmd, env, os.path.join(work, "log.txt"))
    rows = [json.loads(l) for l in open(os.path.join(out, "trainer_log.jsonl")) if l.strip()]
    pad = [l for l in stdout.splitlines() if "of the positions computed were padding" in l][-1]
    share = float(pad.split("%")[0].split()[-1]) / 100
    steps = [{"step": r["step"], "loss": r["loss"], "grad_norm": r["grad_norm"], "tokens": r["num_tokens"],
              "seconds": r["num_tokens"] / r["tokens_per_second"]} for r in rows if "loss" in r]
    for s in steps:
        s["positions"] = s["tokens"] / (1 - share)
    return {"side": side, "steps": steps, "peak_rss_mib": rss}, dump


def run_peer(a, model, dtype, side, dump, work, env):
    cmd = [a.python, PEER, "--side", side, "--model", model, "--dataset", a.dataset, "--dump", dump,
           "--max_len", str(a.max_len), "--steps", str(a.steps), "--batch", str(a.batch), "--accum", str(a.accum),
           "--lr", "5e-5", "--threads", str(a.threads), "--out_dir", os.path.join(work, f"{side}_{dtype}")]
    if dtype == "bf16":
        cmd.append("--bf16")
    stdout, rss = timed(cmd, env, os.path.join(work, "log.txt"))
    res = json.loads(stdout.strip().splitlines()[-1])
    res["peak_rss_mib"] = rss  # the whole process, as for sft
    return res


def summarise(res):
    steps = res["steps"]
    timed_steps = steps[1:] if len(steps) >= 2 else steps
    tokens = sum(s["tokens"] for s in timed_steps)
    seconds = sum(s["seconds"] for s in timed_steps)
    positions = sum(s["positions"] for s in steps)
    real = sum(s["tokens"] for s in steps)
    return {"tok_s": tokens / seconds, "positions": positions, "padding": 1 - real / positions,
            "rss": res["peak_rss_mib"]}


def hours(seconds):
    return f"{seconds / 3600:.1f} h" if seconds < 48 * 3600 else f"{seconds / 86400:.1f} d"


def report(name, dtype, results, a):
    print(f"\n== {name}, {dtype}: {a.steps} optimizer steps of {a.batch} rows x {a.accum} micro-batches, "
          f"max length {a.max_len}, {os.path.basename(a.dataset)}, {a.threads} threads ==")
    s = {side: summarise(r) for side, r in results.items()}
    hf = s.get("hf")
    print(f"{'side':34} {'real tok/s':>10} {'positions':>10} {'padding':>8} {'peak RSS':>10} {'vs HF':>7} "
          f"{'vs sft padded':>13} {'seed job 31M tok':>16}")
    for side in SIDES:
        if side not in s:
            continue
        x = s[side]
        vs_hf = f"{x['tok_s'] / hf['tok_s']:.2f}x" if hf else "-"
        vs_pad = f"{x['tok_s'] / s['sft_padded']['tok_s']:.2f}x" if "sft_padded" in s else "-"
        print(f"{LABEL[side]:34} {x['tok_s']:10.1f} {x['positions']:10.0f} {100 * x['padding']:7.1f}% "
              f"{x['rss']:7.0f} MiB {vs_hf:>7} {vs_pad:>13} {hours(SEED_JOB_TOKENS / x['tok_s']):>16}")
    print("per-step loss:")
    print("step  " + "  ".join(f"{side:>12}" for side in SIDES if side in results))
    n = min(len(r["steps"]) for r in results.values())
    first = next(iter(results.values()))
    for i in range(n):
        print(f"{first['steps'][i]['step']:<5} " +
              "  ".join(f"{results[side]['steps'][i]['loss']:12.6f}" for side in SIDES if side in results))
    if hf:
        for side in ("sft", "sft_padded", "trl"):
            if side in results:
                gap = max(abs(x["loss"] - y["loss"]) / abs(y["loss"])
                          for x, y in zip(results[side]["steps"], results["hf"]["steps"]))
                print(f"largest per-step loss gap {LABEL[side]} vs HF Trainer: {gap:.2e} relative")
    print("json: " + json.dumps({"model": name, "dtype": dtype, "steps": a.steps, "summary": s}))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--sft", required=True)
    ap.add_argument("--python", required=True)
    ap.add_argument("--models", default="smollm2 qwen")
    ap.add_argument("--dtypes", default="bf16 fp32")
    ap.add_argument("--sides", default=" ".join(SIDES))
    ap.add_argument("--dataset", default=os.path.join(ROOT, "data", "alpaca_demo.json"))
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--accum", type=int, default=8)
    ap.add_argument("--max_len", type=int, default=1024)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--smollm2", default=os.path.expanduser("~/.cache/sft/models/smollm2-135m-instruct"))
    ap.add_argument("--qwen", default=os.path.expanduser("~/.cache/sft/models/qwen2.5-0.5b-random"))
    a = ap.parse_args()
    a.dataset = os.path.abspath(a.dataset)
    sides = a.sides.split()
    env = dict(os.environ, OMP_NUM_THREADS=str(a.threads), TOKENIZERS_PARALLELISM="false", HF_HUB_OFFLINE="1",
               TRANSFORMERS_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    work = tempfile.mkdtemp(prefix="seed_job.")
    print(f"# work folder (logs, outputs): {work}")
    paths = {"smollm2": ("SmolLM2-135M-Instruct (real weights)", a.smollm2),
             "qwen": ("Qwen2.5-0.5B shape (random weights, 24 layers)", a.qwen)}
    for key in a.models.split():
        name, model = paths[key]
        for dtype in a.dtypes.split():
            results = {}
            dump = None
            for side in ("sft", "sft_padded"):
                if side in sides or dump is None:  # the peers follow sft's order: sft runs first
                    results[side], d = run_sft(a, model, dtype, side, work, env)
                    dump = dump or d
            if "sft" not in sides:
                results.pop("sft", None)
            for side in ("hf", "trl"):
                if side in sides:
                    results[side] = run_peer(a, model, dtype, side, dump, work, env)
            if "sft" in results and "sft_padded" in results:  # the same rows in both layouts
                for x, y in zip(results["sft"]["steps"], results["sft_padded"]["steps"]):
                    assert x["tokens"] == y["tokens"], (x, y)
            report(name, dtype, results, a)
            sys.stdout.flush()


if __name__ == "__main__":
    main()
