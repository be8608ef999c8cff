"""Data-parallel `sft train` over MPI (label `parallel`): `mpirun --oversubscribe -np 2` on a tiny random Qwen2
(tests/train/train_test_util.py), so each run takes seconds on the 2-core CI machine.

What is compared and why these tolerances:
- 2 ranks x per-device batch 2 against 1 rank x batch 4 (the same global batch, the same sample order). Each rank
  computes the gradient of its 2 rows; the sum of the two partial gradients equals the 4-row gradient up to fp32
  rounding of a different summation order (relative ~1e-7 per element). Logged losses are sums of the same token
  losses in double: <= 1e-4 relative (the issue's bound; seen ~1e-7).
- Weights after 8 AdamW steps: AdamW divides m by sqrt(v), so an update moves each weight by at most ~lr per step and
  a 1e-7 relative change of a gradient changes the update by about as much relative; only near-zero gradients
  (|g| ~ eps) can amplify it, bounded by lr. 8 steps x lr 2e-3 bound the worst case at 1.6e-2; we require max-abs
  <= 1e-5 (weights are O(0.02..1)), i.e. 100x fp32 eps on the largest weights; seen values are printed on failure.
- ZeRO-1 performs the same floating-point operations as ZeRO-0 on each element (the reduce-scatter sums the same two
  addends), so without clipping its weights must equal ZeRO-0's exactly at 2 ranks. With clipping the global norm's
  double sum runs in another order (per part, then across ranks), which can flip the fp32 rounding of the clip
  coefficient: then <= 1e-6 max-abs.
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest
from safetensors.numpy import load_file

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "train"))
from train_test_util import SFT, make_tiny_model, read_log, run_sft, subset_dataset  # noqa: E402

MPIRUN = shutil.which("mpirun")


@pytest.fixture(autouse=True)
def mpirun_installed():
    # openmpi-bin is a dependency scripts/setup.sh installs: without it this suite fails instead of passing silently.
    if MPIRUN is None:
        pytest.fail("mpirun not found: install openmpi-bin (scripts/setup.sh does)")

# --oversubscribe: 2 ranks may exceed the CI machine's cores; --bind-to none: ranks are not pinned to one core each;
# vader (shared memory) without single-copy (CMA needs ptrace rights that containers often lack).
MPI_ARGS = ["--oversubscribe", "--bind-to", "none", "--mca", "btl", "self,vader",
            "--mca", "btl_vader_single_copy_mechanism", "none"]
MPI_ENV = {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1", "OMPI_MCA_rmaps_base_oversubscribe": "1"}


def mpirun(n, args, timeout=300, check=True, popen=False):
    cmd = [MPIRUN, *MPI_ARGS, "-np", str(n), SFT, "train", *args]
    env = dict(os.environ, **MPI_ENV, OMP_NUM_THREADS="1")
    if popen:  # running in the background: the caller ends it
        return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, env=env)
    if check and res.returncode != 0:
        raise AssertionError(f"mpirun sft train failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")
    return res


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("dp")
    # 22 rows: global micro-batches of 4 -> 6 per epoch, the last holds 2 rows (the step's rows are dealt
    # to the ranks by train/row_balance.h, so a rank may train on rows of several global micro-batches).
    return make_tiny_model(str(d / "base"), seed=3), subset_dataset(str(d / "rows22.json"), 22)


def common(base_dir, data, out, per_device, *extra):
    # 6 micro-batches per epoch, accumulation 4 -> 2 updates per epoch (the 2nd takes the remaining 2); 4 epochs.
    return ["--model_name_or_path", base_dir, "--dataset_path", data, "--output_dir", out,
            "--per_device_train_batch_size", str(per_device), "--gradient_accumulation_steps", "4",
            "--num_train_epochs", "4", "--learning_rate", "2e-3", "--warmup_steps", "2", "--weight_decay", "0.1",
            "--logging_steps", "1", "--save_steps", "2", "--max_seq_length", "64", "--train_on_inputs", "True",
            "--seed", "7", *extra]


def weights(out, name="model.safetensors"):
    return load_file(os.path.join(out, name))


def max_abs_diff(a, b):
    assert sorted(a) == sorted(b)
    return max(float(abs(a[k].astype("float64") - b[k].astype("float64")).max()) for k in a)


def assert_same_losses(one, two, rel=1e-4):
    la, lb = read_log(one), read_log(two)
    assert [r["step"] for r in la] == [r["step"] for r in lb]
    for ra, rb in zip(la, lb):
        for key in ("loss", "eval_loss", "grad_norm"):
            if key in ra:
                assert rb[key] == pytest.approx(ra[key], rel=rel), (key, ra, rb)


@pytest.fixture(scope="module")
def single_run(base, tmp_path_factory):
    base_dir, data = base
    out = str(tmp_path_factory.mktemp("dp1") / "one")
    run_sft(common(base_dir, data, out, 4, "--threads", "2", "--validation_split", "4", "--eval_strategy", "steps",
                   "--eval_steps", "4", "--per_device_eval_batch_size", "1"))
    return out


@pytest.mark.parametrize("zero", ["0", "1"])
def test_two_ranks_equal_one_rank(base, single_run, tmp_path, zero):
    base_dir, data = base
    two = str(tmp_path / "two")
    res = mpirun(2, common(base_dir, data, two, 2, "--zero_stage", zero, "--validation_split", "4",
                           "--eval_strategy", "steps", "--eval_steps", "4", "--per_device_eval_batch_size", "1"))
    assert "data parallel: 2 ranks" in res.stdout
    assert res.stdout.count("Step    Training Loss") == 1  # rank 0 alone prints
    assert_same_losses(single_run, two)
    assert any("eval_loss" in r for r in read_log(two))
    d = max_abs_diff(weights(single_run), weights(two))
    assert d <= 1e-5, f"final weights differ by {d:.3g} (max abs)"
    # The optimizer state file is world-size independent: the same tensors as the single-process run's.
    ck1, ck2 = (os.path.join(o, "checkpoint-8", "optimizer.safetensors") for o in (single_run, two))
    s1, s2 = load_file(ck1), load_file(ck2)
    assert sorted(s1) == sorted(s2)
    for k in s1:
        scale = float(abs(s1[k]).max()) or 1.0
        assert float(abs(s1[k] - s2[k]).max()) <= 1e-4 * scale, k
    state = json.load(open(os.path.join(two, "trainer_state.json")))
    assert state["global_step"] == 8
    print(f"zero {zero}: max |w1 - w2| = {d:.3g}")


@pytest.mark.parametrize("clip,tol", [("0", 0.0), ("1.0", 1e-6)])
def test_zero1_equals_zero0(base, tmp_path, clip, tol):
    base_dir, data = base
    outs = {}
    for zero in ("0", "1"):
        outs[zero] = str(tmp_path / f"z{zero}")
        mpirun(2, common(base_dir, data, outs[zero], 2, "--zero_stage", zero, "--max_steps", "3",
                         "--max_grad_norm", clip,
                         "--ddp_bucket_cap_mb", "0.01"))  # ~2600 values per bucket: many buckets, parts cut params
    assert max_abs_diff(weights(outs["0"]), weights(outs["1"])) <= tol


@pytest.mark.parametrize("first,second", [(2, 1), (1, 2)])
def test_resume_at_another_world_size(base, single_run, tmp_path, first, second):
    """A checkpoint made with `first` ranks resumes with `second` ranks (same global batch) and ends where the
    uninterrupted single-process run ends."""
    base_dir, data = base
    extra = ["--validation_split", "4", "--eval_strategy", "steps", "--eval_steps", "4",
             "--per_device_eval_batch_size", "1"]
    part = str(tmp_path / "part")
    args = lambda n, out, *more: common(base_dir, data, out, 4 // n, "--zero_stage", "1", *extra, *more)
    if first == 1:
        run_sft(args(1, part, "--threads", "2"))
    else:
        mpirun(2, args(2, part))
    resumed = str(tmp_path / "resumed")
    os.makedirs(resumed)
    shutil.copytree(os.path.join(part, "checkpoint-4"), os.path.join(resumed, "checkpoint-4"))
    more = ["--resume_from_checkpoint", "last"]
    res = run_sft(args(1, resumed, *more, "--threads", "2")) if second == 1 else mpirun(2, args(2, resumed, *more))
    assert "resuming" in res.stdout
    assert_same_losses(single_run, resumed)
    d = max_abs_diff(weights(single_run), weights(resumed))
    assert d <= 1e-5, f"resumed weights differ by {d:.3g}"


def test_resume_refuses_another_micro_batch(base, single_run, tmp_path):
    """The loader position counts global micro-batches: resuming needs the same per-device batch x ranks."""
    base_dir, data = base
    out = str(tmp_path / "other")
    os.makedirs(out)
    shutil.copytree(os.path.join(single_run, "checkpoint-4"), os.path.join(out, "checkpoint-4"))
    res = run_sft(common(base_dir, data, out, 2, "--max_steps", "8", "--resume_from_checkpoint", "last",
                         "--validation_split", "4"), check=False)
    assert res.returncode != 0 and "4 rows per micro-batch" in res.stderr and "give 2" in res.stderr, res.stderr


def rank_pids(mpirun_pid):
    """sft processes started by this mpirun, by MPI rank (from their OMPI_COMM_WORLD_RANK)."""
    found = {}
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            env = open(f"/proc/{pid}/environ", "rb").read().split(b"\0")
            stat = open(f"/proc/{pid}/stat").read()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if ppid != mpirun_pid:
            continue
        for kv in env:
            if kv.startswith(b"OMPI_COMM_WORLD_RANK="):
                found[int(kv.split(b"=")[1])] = int(pid)
    return found


def start_long_run(base, tmp_path, *extra):
    base_dir, data = base
    out = str(tmp_path / "long")
    proc = mpirun(2, common(base_dir, data, out, 2, "--max_steps", "100000", "--save_strategy", "no", *extra),
                  popen=True)
    deadline = time.time() + 60
    while time.time() < deadline:  # wait until training runs: the log has rows
        if os.path.exists(os.path.join(out, "trainer_log.jsonl")) and len(read_log(out)) >= 2:
            break
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.2)
    pids = rank_pids(proc.pid)
    assert sorted(pids) == [0, 1], pids
    return proc, pids


def finish(proc, timeout=60):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"the job hung after a rank was lost:\n{out}\n{err}")
    return proc.returncode, out + err


def test_killed_rank_ends_the_job(base, tmp_path):
    proc, pids = start_long_run(base, tmp_path)
    os.kill(pids[1], signal.SIGKILL)
    code, text = finish(proc)
    assert code != 0
    assert "rank 1" in text and "signal 9" in text, text  # mpirun names the dead rank


def test_stuck_rank_times_out(base, tmp_path):
    proc, pids = start_long_run(base, tmp_path, "--ddp_timeout", "3")
    os.kill(pids[1], signal.SIGSTOP)  # alive but not answering: only the timeout can end the job
    try:
        code, text = finish(proc)
    finally:
        try:
            os.kill(pids[1], signal.SIGKILL)
        except ProcessLookupError:
            pass
    assert code != 0
    assert "rank 0: " in text and "--ddp_timeout 3" in text, text


def test_tensorboard_events_from_rank_zero_only(base, tmp_path):
    """--report_to tensorboard with 2 ranks: one events file (rank 0's), holding the rows of trainer_log.jsonl."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    base_dir, data = base
    out, logdir = str(tmp_path / "two"), tmp_path / "tb"
    mpirun(2, common(base_dir, data, out, 2, "--max_steps", "3", "--save_strategy", "no", "--report_to",
                     "tensorboard", "--logging_dir", str(logdir)))
    files = list(logdir.iterdir())
    assert len(files) == 1 and files[0].name.startswith("events.out.tfevents.")
    acc = EventAccumulator(str(logdir))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("train/loss")] == [
        (r["step"], pytest.approx(r["loss"], rel=1e-7)) for r in read_log(out)]
