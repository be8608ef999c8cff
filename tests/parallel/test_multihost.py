"""Multi-host data-parallel `sft train`, proven on one machine (labels `multihost`, `root`): three network namespaces
joined by veth links play three hosts (tests/parallel/netns_cluster.py), mpirun starts one rank on each through an rsh
agent that is `ip netns exec`, and the ranks talk TCP over the links. Skipped, saying why, where namespaces cannot be
made (not root, no iproute2/unshare/mpirun).

Checked:
- 3 hosts x per-device batch 2 train as 1 process x batch 6: losses <= 1e-4 relative, weights <= 1e-5 max-abs (the
  reduction-order tolerances of test_data_parallel.py, which justifies them);
- faults mid-training, each ending the job within --ddp_timeout (+ a teardown allowance on this loaded machine) with a
  message naming the lost host or rank: a host's link cut (`ip link set eth0 down`; with Open MPI's out-of-band
  keepalive set as docs/arch/parallel.md advises, and with Open MPI's defaults, where mpirun itself waits on the lost
  daemon but every rank still ends and the watchdog names the host), every process of a host killed (a crashed
  machine), one rank frozen (SIGSTOP);
- after each fault the last checkpoint is complete and resumes at another world size (1 process, or 2 hosts), ending
  where an uninterrupted single-process run to the same step ends: <= 3e-5 max-abs. The two runs differ only in the
  summation order of the gradients of the steps before the checkpoint (3 ranks vs 1: ~1e-7 relative per element);
  AdamW moves a weight by at most ~lr a step, so a perturbation of the update direction stays bounded by steps x lr
  (40 x 2e-3) in the worst case and is far smaller in practice: 4.8e-6 to 1.0e-5 was seen after 56-58 resumed steps
  at 60 steps, hence the run length of 40 and the bound of 3e-5 (weights are O(0.02..1)).

Every namespace is removed on every exit path (the Cluster's close(): fixture finalizer, atexit, SIGTERM/SIGINT).
"""
import glob
import json
import os
import re
import shutil
import subprocess
import sys
import time

import pytest
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "train"))
from netns_cluster import Cluster  # noqa: E402
from train_test_util import SFT, make_tiny_model, read_log, run_sft, subset_dataset  # noqa: E402

REASON = Cluster.available()
pytestmark = pytest.mark.skipif(REASON is not None, reason=f"multi-host tests: {REASON}")

DDP_TIMEOUT = 10  # seconds; a step of the tiny model takes well under one even on the loaded CI machine
# Teardown after the watchdog fires (mpirun killing the other ranks, daemons noticing): generous, the machine is shared.
SLACK = 40
# The faulted runs' length: long enough that the fault lands mid-training, and the resumed and reference runs go to the
# same step (a checkpoint refuses a resume whose settings give another total).
LONG_STEPS = 40


@pytest.fixture(scope="module")
def cluster():
    c = Cluster(3)
    yield c
    c.close()


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("mh")
    return make_tiny_model(str(d / "base"), seed=5), subset_dataset(str(d / "rows36.json"), 36)


def common(base_dir, data, out, per_device, *extra):
    # global micro-batch 6 rows, accumulation 2 -> 12 rows a step, 3 steps an epoch.
    return ["--model_name_or_path", base_dir, "--dataset_path", data, "--output_dir", out,
            "--per_device_train_batch_size", str(per_device), "--gradient_accumulation_steps", "2",
            "--num_train_epochs", "2", "--learning_rate", "2e-3", "--lr_scheduler_type", "constant",
            "--weight_decay", "0.1", "--logging_steps", "1", "--max_seq_length", "64", "--train_on_inputs", "True",
            "--seed", "11", *extra]


def weights(out):
    return load_file(os.path.join(out, "model.safetensors"))


def max_abs_diff(a, b):
    assert sorted(a) == sorted(b)
    return max(float(abs(a[k].astype("float64") - b[k].astype("float64")).max()) for k in a)


def run_cluster(cluster, per_host, args, hosts=None, timeout=600):
    res = subprocess.run(cluster.mpirun_argv(per_host, [SFT, "train", *args], hosts=hosts), capture_output=True,
                         text=True, env=cluster.env(), timeout=timeout)
    assert res.returncode == 0, f"mpirun across hosts failed ({res.returncode}):\n{res.stdout}\n{res.stderr}"
    return res


def test_three_hosts_equal_one_process(cluster, base, tmp_path):
    base_dir, data = base
    one, three = str(tmp_path / "one"), str(tmp_path / "three")
    run_sft(common(base_dir, data, one, 6, "--threads", "1"))
    res = run_cluster(cluster, 1, common(base_dir, data, three, 2, "--zero_stage", "1"))
    assert "data parallel: 3 ranks" in res.stdout, res.stdout
    la, lb = read_log(one), read_log(three)
    assert [r["step"] for r in la] == [r["step"] for r in lb] and len(la) == 6
    for ra, rb in zip(la, lb):
        for key in ("loss", "grad_norm"):
            assert rb[key] == pytest.approx(ra[key], rel=1e-4), (key, ra, rb)
    d = max_abs_diff(weights(one), weights(three))
    assert d <= 1e-5, f"3 hosts vs 1 process: weights differ by {d:.3g}"
    print(f"3 hosts vs 1 process: max |dw| = {d:.3g}")


# ---------------------------------------------------------------------------------------------------------------
# Faults

def start_long_run(cluster, base, out, keepalive=True):
    base_dir, data = base
    args = common(base_dir, data, out, 2, "--max_steps", str(LONG_STEPS), "--save_steps", "2", "--save_total_limit", "2",
                  "--ddp_timeout", str(DDP_TIMEOUT))
    proc = subprocess.Popen(cluster.mpirun_argv(1, [SFT, "train", *args], keepalive=keepalive), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=cluster.env())
    deadline = time.time() + 240
    while time.time() < deadline:  # training runs and a checkpoint exists
        if glob.glob(os.path.join(out, "checkpoint-*")) and len(read_log_safe(out)) >= 3:
            break
        if proc.poll() is not None:
            raise AssertionError("the job ended early:\n" + "\n".join(proc.communicate()))
        time.sleep(0.2)
    else:
        proc.kill()
        raise AssertionError("training did not start:\n" + "\n".join(proc.communicate()))
    for h in range(3):
        assert len(cluster.pids(h, "sft")) == 1, (h, cluster.pids(h))
    return proc


def read_log_safe(out):
    try:
        return read_log(out)
    except (OSError, ValueError):
        return []


def wait_for_end(cluster, proc, t_fault):
    """The job's end: mpirun's exit and no sft process left on any host. Returns (rc, text, seconds)."""
    try:
        out, err = proc.communicate(timeout=DDP_TIMEOUT + SLACK)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        raise AssertionError(f"mpirun still running {DDP_TIMEOUT + SLACK} s after the fault:\n{out}\n{err}")
    while any(cluster.pids(h, "sft") for h in range(3)) and time.time() - t_fault < DDP_TIMEOUT + SLACK:
        time.sleep(0.2)
    left = {h: cluster.pids(h, "sft") for h in range(3)}
    assert not any(left.values()), f"ranks left running after the job ended: {left}"
    return proc.returncode, out + err, time.time() - t_fault


def last_checkpoint(out):
    steps = sorted(int(m.group(1)) for p in os.listdir(out) if (m := re.fullmatch(r"checkpoint-(\d+)", p)))
    assert steps, os.listdir(out)
    return steps[-1]


def check_resume(cluster, base, out, tmp_path, hosts):
    """The newest checkpoint is complete and resumes at another world size (hosts=None: one process) to the end of
    the run, ending where an uninterrupted single-process run ends."""
    base_dir, data = base
    step = last_checkpoint(out)
    ck = os.path.join(out, f"checkpoint-{step}")
    for f in ("model.safetensors", "optimizer.safetensors", "trainer_state.json", "config.json"):
        assert os.path.isfile(os.path.join(ck, f)), f"{ck} lacks {f}"
    assert json.load(open(os.path.join(ck, "trainer_state.json")))["global_step"] == step
    target = LONG_STEPS
    resumed = str(tmp_path / "resumed")
    os.makedirs(resumed)
    shutil.copytree(ck, os.path.join(resumed, f"checkpoint-{step}"))
    more = ["--max_steps", str(target), "--resume_from_checkpoint", "last", "--save_strategy", "no"]
    if hosts is None:
        res = run_sft(common(base_dir, data, resumed, 6, *more, "--threads", "1"))
    else:  # 2 hosts x 3 rows = the same 6-row global micro-batch
        res = run_cluster(cluster, 1, common(base_dir, data, resumed, 3, *more), hosts=hosts)
    assert "resuming" in res.stdout, res.stdout
    ref = str(tmp_path / "reference")
    run_sft(common(base_dir, data, ref, 6, "--max_steps", str(target), "--save_strategy", "no", "--threads", "1"))
    d = max_abs_diff(weights(ref), weights(resumed))
    assert d <= 3e-5, f"resumed from checkpoint-{step} at another world size: weights differ by {d:.3g}"
    return step, d


def test_link_cut_ends_the_job_and_the_checkpoint_resumes(cluster, base, tmp_path):
    out = str(tmp_path / "cut")
    proc = start_long_run(cluster, base, out)
    t = time.time()
    cluster.cut_link(2)
    try:
        rc, text, secs = wait_for_end(cluster, proc, t)
    finally:
        cluster.restore_link(2)
    assert rc != 0
    # mpirun's out-of-band keepalive notices the silent daemon, or the watchdog of a waiting rank names the lost one.
    assert "node2" in text or "rank 2 (host node2)" in text, text
    print(f"link cut: job ended {secs:.1f} s after the fault:\n{text[-1500:]}")
    step, d = check_resume(cluster, base, out, tmp_path, hosts=None)
    print(f"resumed checkpoint-{step} on 1 process: max |dw| vs uninterrupted = {d:.3g}")


def test_link_cut_with_open_mpi_defaults_ranks_end_and_name_the_lost_host(cluster, base, tmp_path):
    """Without the out-of-band keepalive (Open MPI's defaults), mpirun cannot tell the cut host's daemon is gone and
    waits on it (until TCP gives up, minutes or more: why docs/arch/parallel.md says to set the keepalive). The ranks
    on both sides of the cut still end within --ddp_timeout, and the watchdog's heartbeats name the host."""
    out = str(tmp_path / "cut_default")
    proc = start_long_run(cluster, base, out, keepalive=False)
    t = time.time()
    cluster.cut_link(2)
    try:
        while any(cluster.pids(h, "sft") for h in range(3)) and time.time() - t < DDP_TIMEOUT + SLACK:
            time.sleep(0.2)
        secs = time.time() - t
        left = {h: cluster.pids(h, "sft") for h in range(3)}
    finally:
        proc.kill()  # mpirun, left waiting for node2's daemon
        _, err = proc.communicate()
        cluster.kill_host(2)  # node2's daemon, left waiting for mpirun
        cluster.restore_link(2)
    assert not any(left.values()), f"ranks still running {secs:.0f} s after the cut: {left}\n{err}"
    assert "lost: rank 2 (host node2) silent for" in err, err
    print(f"link cut, Open MPI defaults: every rank ended {secs:.1f} s after the cut:\n{err[-800:]}")


def test_killed_host_ends_the_job_and_the_checkpoint_resumes(cluster, base, tmp_path):
    out = str(tmp_path / "killed")
    proc = start_long_run(cluster, base, out)
    t = time.time()
    cluster.kill_host(1)
    rc, text, secs = wait_for_end(cluster, proc, t)
    assert rc != 0
    assert "node1" in text, text  # mpirun: lost communication with the daemon on node1 / rank 1 on node1 killed
    print(f"host killed: job ended {secs:.1f} s after the fault:\n{text[-1500:]}")
    step, d = check_resume(cluster, base, out, tmp_path, hosts=[0, 2])
    print(f"resumed checkpoint-{step} on 2 hosts: max |dw| vs uninterrupted = {d:.3g}")


def test_frozen_rank_ends_the_job_within_ddp_timeout(cluster, base, tmp_path):
    out = str(tmp_path / "frozen")
    proc = start_long_run(cluster, base, out)
    (pid,) = cluster.pids(1, "sft")
    t = time.time()
    os.kill(pid, 19)  # SIGSTOP: alive, connected, silent; only the watchdog can tell
    rc, text, secs = wait_for_end(cluster, proc, t)
    assert rc != 0
    assert f"--ddp_timeout {DDP_TIMEOUT}" in text and "rank 1 (host node1) silent for" in text, text
    assert secs <= DDP_TIMEOUT + SLACK
    print(f"frozen rank: job ended {secs:.1f} s after the fault:\n{text[-1500:]}")
    step, d = check_resume(cluster, base, out, tmp_path, hosts=None)
    print(f"resumed checkpoint-{step} on 1 process: max |dw| vs uninterrupted = {d:.3g}")
