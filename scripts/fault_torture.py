#!/usr/bin/env python3
"""Fault torture for `sft train` checkpoints (issue 17). Python 3 standard library only; run as root for the disk-full
part (it mounts a small tmpfs).

1. kill -9: N times, start a run with --save_steps 1 and rotation (--save_total_limit 2), kill it at a random moment,
   check that every checkpoint-N folder left is complete (never a half-written or half-deleted one under its real
   name), resume with --resume_from_checkpoint last (or start again when no checkpoint exists yet; a resumed run may
   itself be killed again, up to 3 times), and compare the final model.safetensors and the last checkpoint's
   optimizer.safetensors byte for byte with an uninterrupted run. After completion no .tmp-* / .deleting-* is left.
2. disk full: train into a tmpfs too small for a second checkpoint: the run must fail with a clear error naming the
   disk problem, the previous checkpoint must be intact (a resume from it completes once space is back) and no
   .tmp-* folder may be left.

Usage: scripts/fault_torture.py --sft build/src/cli/sft [--runs 50] [--seed 1] [--no-disk-full]
"""
import argparse
import filecmp
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "robustness"))
import run_robustness as rb  # noqa: E402  (the tiny model / dataset writers)

CKPT_FILES = ("config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json", "training_args.json",
              "tokenizer.json")


def train_argv(sft, model, data, out, *extra):
    return [sft, "train", "--model_name_or_path", model, "--dataset_path", data, "--output_dir", out,
            "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "2", "--max_seq_length", "128", "--train_on_inputs", "True",
            "--num_train_epochs", "2", "--learning_rate", "1e-3", "--logging_steps", "1", "--save_steps", "1",
            "--save_total_limit", "2", "--threads", "1", "--seed", "7", *extra]


def env():
    return dict(os.environ, OMP_NUM_THREADS="1")


def check_checkpoints(out):
    """Every checkpoint-N folder is complete; returns a problem text or None."""
    if not os.path.isdir(out):
        return None
    for name in os.listdir(out):
        if name.startswith("checkpoint-"):
            missing = [f for f in CKPT_FILES if not os.path.exists(os.path.join(out, name, f))]
            if missing:
                return f"{name} is incomplete (missing {missing})"
    return None


def leftovers(out):
    return [n for n in os.listdir(out) if n.startswith(".tmp-") or n.startswith(".deleting-")]


def kill_runs(a, model, data, work):
    ref = os.path.join(work, "ref")
    t0 = time.time()
    res = subprocess.run(train_argv(a.sft, model, data, ref), capture_output=True, text=True, env=env())
    t_ref = time.time() - t0
    if res.returncode != 0:
        sys.exit(f"reference run failed:\n{res.stdout}\n{res.stderr}")
    last = sorted((int(n.split("-")[1]) for n in os.listdir(ref) if n.startswith("checkpoint-")))[-1]
    print(f"reference run: {t_ref:.2f}s, {last} steps, checkpoints kept: "
          f"{sorted(n for n in os.listdir(ref) if n.startswith('checkpoint-'))}")
    rnd = random.Random(a.seed)
    ok = kills = resumes = fresh = 0
    for i in range(a.runs):
        out = os.path.join(work, f"run{i}")
        killed_at = []
        resume = False
        for attempt in range(4):
            argv = train_argv(a.sft, model, data, out, *(["--resume_from_checkpoint", "last"] if resume else []))
            p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env())
            if attempt < 3 and (attempt == 0 or rnd.random() < 0.3):
                delay = rnd.uniform(0.02, t_ref * 1.1)
                try:
                    p.wait(timeout=delay)
                except subprocess.TimeoutExpired:
                    p.send_signal(signal.SIGKILL)
                    p.wait()
                    kills += 1
                    killed_at.append(round(delay, 2))
                    problem = check_checkpoints(out)
                    if problem:
                        print(f"run {i}: after kill -9 at {delay:.2f}s: {problem}")
                        break
                    has_ckpt = os.path.isdir(out) and any(n.startswith("checkpoint-") for n in os.listdir(out))
                    resume = has_ckpt
                    if not has_ckpt:  # killed before the first checkpoint: start again
                        fresh += 1
                        shutil.rmtree(out, ignore_errors=True)
                    else:
                        resumes += 1
                    continue
            err = p.stderr.read()
            p.wait()
            if p.returncode != 0:
                print(f"run {i}: exit {p.returncode} after kills at {killed_at}: {err.strip()[:400]}")
                break
            same_model = filecmp.cmp(os.path.join(ref, "model.safetensors"), os.path.join(out, "model.safetensors"),
                                     shallow=False)
            same_opt = filecmp.cmp(os.path.join(ref, f"checkpoint-{last}", "optimizer.safetensors"),
                                   os.path.join(out, f"checkpoint-{last}", "optimizer.safetensors"), shallow=False)
            left = leftovers(out)
            problem = check_checkpoints(out)
            if same_model and same_opt and not left and not problem:
                ok += 1
            else:
                print(f"run {i}: kills at {killed_at}: model identical {same_model}, optimizer identical {same_opt}, "
                      f"leftovers {left}, {problem}")
            break
        shutil.rmtree(out, ignore_errors=True)
    print(f"kill -9 torture: {ok}/{a.runs} runs byte-identical to the uninterrupted run ({kills} kills, "
          f"{resumes} resumes from a checkpoint, {fresh} restarts before the first checkpoint)")
    return ok == a.runs


def disk_full(a, model, data, work):
    # Size the tmpfs from one real checkpoint: room for the first checkpoint and a half, not for a second one.
    probe = os.path.join(work, "probe")
    subprocess.run(train_argv(a.sft, model, data, probe, "--max_steps", "1"), capture_output=True, env=env(), check=True)
    ck = os.path.join(probe, "checkpoint-1")
    ck_bytes = sum(os.path.getsize(os.path.join(ck, f)) for f in os.listdir(ck))
    size_kb = int(ck_bytes * 1.5 / 1024) + 64
    mnt = os.path.join(work, "tmpfs")
    os.makedirs(mnt)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", mnt], capture_output=True, text=True)
    if r.returncode != 0:
        print(f"disk full: SKIPPED (cannot mount a tmpfs: {r.stderr.strip()}; run as root)")
        return True
    try:
        out = os.path.join(mnt, "out")
        res = subprocess.run(train_argv(a.sft, model, data, out, "--save_total_limit", "1"), capture_output=True,
                             text=True, env=env())
        problems = []
        if res.returncode != 1:
            problems.append(f"exit {res.returncode}, expected 1")
        if "No space left on device" not in res.stderr or "sft: error:" not in res.stderr:
            problems.append(f"stderr does not say the disk is full: {res.stderr.strip()[:300]}")
        left = leftovers(out)
        if left:
            problems.append(f"leftovers {left}")
        ckpts = sorted(n for n in os.listdir(out) if n.startswith("checkpoint-"))
        if ckpts != ["checkpoint-1"]:
            problems.append(f"checkpoints {ckpts}, expected [checkpoint-1]")
        problem = check_checkpoints(out)
        if problem:
            problems.append(problem)
        if os.path.exists(os.path.join(out, "trainer_state.json")):
            problems.append("a final model was marked done")
        # The surviving checkpoint is usable: with space back (copied out of the tmpfs) the run resumes to the end.
        back = os.path.join(work, "disk_full_resumed")
        shutil.copytree(out, back)
        res2 = subprocess.run(train_argv(a.sft, model, data, back, "--save_total_limit", "1",
                                         "--resume_from_checkpoint", "last"), capture_output=True, text=True, env=env())
        if res2.returncode != 0:
            problems.append(f"resume from the surviving checkpoint failed: {res2.stderr.strip()[:300]}")
        msg = [l for l in res.stderr.splitlines() if l.startswith("sft: error:")]
        print(f"disk full (tmpfs {size_kb} KiB, checkpoint {ck_bytes // 1024} KiB): "
              f"{'OK' if not problems else 'FAILED: ' + '; '.join(problems)}\n  {msg[0] if msg else ''}")
        return not problems
    finally:
        subprocess.run(["umount", mnt])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sft", required=True)
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--no-disk-full", action="store_true")
    a = ap.parse_args()
    a.sft = os.path.abspath(a.sft)
    work = tempfile.mkdtemp(prefix="sft-torture-")
    try:
        model = rb.write_model(os.path.join(work, "model"))
        data = rb.write(os.path.join(work, "rows.json"), __import__("json").dumps(rb.ROWS[:12]))
        ok = kill_runs(a, model, data, work)
        if not a.no_disk_full:
            ok = disk_full(a, model, data, work) and ok
        return 0 if ok else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
