"""The TensorBoard events writer (train/tensorboard.h, driven by tensorboard_tool) read back by tensorboard's own
EventAccumulator (tensorboard 2.21.0, pinned): every tag, step and value, the wall times, text summaries, the tags
transformers' TensorBoardCallback derives from a logged row (rewrite_logs), and resume semantics (a new file whose
SessionLog START makes TensorBoard drop the steps a killed run logged after its checkpoint).
Also, record by record: the CRCs (tensorboard's own masked_crc32c) and the bytes of every Event equal protobuf's own
serialization of the parsed message. And `sft train --report_to tensorboard` end to end: the events equal
trainer_log.jsonl (every tag, step and value), transformers 5's default folder, a resumed run appending without
duplicate steps, --logging_dir / TENSORBOARD_LOGGING_DIR, a logging dir that is a file. No tolerances: values are
float32 in the file, compared after rounding the expected double to float32 (what add_scalar stores); wall times are
doubles, compared exactly."""
import json
import os
import random
import re
import shutil
import socket
import struct
import subprocess
from pathlib import Path

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.proto import event_pb2
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
from transformers.integrations.integration_utils import rewrite_logs

BUILD = os.environ.get("SFT_BUILD_DIR", "")
TOOL = Path(BUILD) / "tests" / "tensorboard_tool"


def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def run(logdir, ops, expect_rc=0):
    script = Path(logdir).parent / (Path(logdir).name + ".script.jsonl")
    script.write_text("".join(json.dumps(op) + "\n" for op in ops), encoding="utf-8")
    res = subprocess.run([str(TOOL), str(logdir), str(script)], capture_output=True, text=True)
    assert res.returncode == expect_rc, res.stderr
    return res


def accumulate(logdir):
    acc = EventAccumulator(str(logdir), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def records(path):
    """Every TFRecord of a file, CRCs checked with tensorboard's masked_crc32c."""
    data = Path(path).read_bytes()
    out, i = [], 0
    while i < len(data):
        header = data[i:i + 8]
        (n,) = struct.unpack("<Q", header)
        assert struct.unpack("<I", data[i + 8:i + 12])[0] == masked_crc32c(header)
        payload = data[i + 12:i + 12 + n]
        assert struct.unpack("<I", data[i + 12 + n:i + 16 + n])[0] == masked_crc32c(payload)
        out.append(payload)
        i += 16 + n
    assert i == len(data)
    return out


def test_scalars_and_text_read_back_exactly(tmp_path):
    rnd = random.Random(3)
    logdir = tmp_path / "runs"
    ops, want = [{"op": "open"}], {}
    for step in range(1, 60):
        for tag in ("a/loss", "b", "unicode/é✓"):
            v = rnd.uniform(-1e3, 1e3) * (10 ** rnd.randint(-8, 8))
            wall = 1.7e9 + step + rnd.random()
            ops.append({"op": "scalar", "tag": tag, "step": step, "value": v, "wall": wall})
            want.setdefault(tag, []).append((step, f32(v), wall))
        if step % 7 == 0:
            ops.append({"op": "flush"})
    ops.append({"op": "scalar", "tag": "zero", "step": 0, "value": 0.0, "wall": 1.7e9})
    want["zero"] = [(0, 0.0, 1.7e9)]
    ops.append({"op": "text", "tag": "args", "step": 0, "text": '{"lr": 5e-05, "é": "✓"}', "wall": 1.7e9})
    run(logdir, ops)
    files = list(logdir.iterdir())
    assert len(files) == 1 and files[0].name.startswith("events.out.tfevents.")
    acc = accumulate(logdir)
    assert sorted(acc.Tags()["scalars"]) == sorted(want)
    for tag, rows in want.items():
        got = [(e.step, e.value, e.wall_time) for e in acc.Scalars(tag)]
        assert got == rows, tag
    (text,) = acc.Tensors("args/text_summary")
    assert text.step == 0 and text.tensor_proto.string_val == ['{"lr": 5e-05, "é": "✓"}'.encode()]
    # Byte-level: each record equals protobuf's serialization of the message it parses to.
    recs = records(files[0])
    assert len(recs) == 1 + sum(len(v) for v in want.values()) + 1
    first = event_pb2.Event.FromString(recs[0])
    assert first.file_version == "brain.Event:2" and first.step == 0
    for r in recs:
        assert event_pb2.Event.FromString(r).SerializeToString() == r


def test_log_rows_use_transformers_tags(tmp_path):
    """Rows as trainer_log.jsonl holds them -> the tags HF's TensorBoardCallback writes for the same log dict."""
    logdir = tmp_path / "runs"
    rows = []
    for step in range(1, 21):
        rows.append({"step": step, "epoch": step / 20, "loss": 2.0 / step, "learning_rate": 5e-5 * (1 - step / 20),
                     "grad_norm": 0.5 + step, "tokens_per_second": 1000.0 + step, "model_flops_per_second": 1e9 * step,
                     "num_tokens": 100 * step})
        if step % 5 == 0:
            rows.append({"step": step, "epoch": step / 20, "eval_loss": 1.5 / step})
    run(logdir, [{"op": "open"}] + [{"op": "row", "row": r, "wall": 1.7e9 + i} for i, r in enumerate(rows)])
    acc = accumulate(logdir)
    want = {}
    for r in rows:
        logs = {k: v for k, v in r.items() if k != "step"}  # HF logs the dict without the step (state.global_step)
        for tag, v in rewrite_logs(logs).items():
            want.setdefault(tag, []).append((r["step"], f32(v)))
    assert {"train/loss", "train/learning_rate", "train/grad_norm", "train/epoch", "eval/loss"} <= set(want)
    assert sorted(acc.Tags()["scalars"]) == sorted(want)
    for tag, pts in want.items():
        assert [(e.step, e.value) for e in acc.Scalars(tag)] == pts, tag


def test_resume_drops_the_killed_runs_tail_and_never_duplicates(tmp_path):
    """Run 1 logs steps 1..13 and is killed (its last checkpoint: step 10); run 2 resumes from step 10 and logs
    11..20 into a new file of the same folder. TensorBoard shows every step once, run 2's values from 11 on."""
    logdir = tmp_path / "runs"
    first = [{"op": "open"}] + [{"op": "scalar", "tag": "train/loss", "step": s, "value": 10.0 + s, "wall": 1.7e9 + s}
                                for s in range(1, 14)] + [{"op": "crash"}]
    run(logdir, first)
    second = [{"op": "open", "resumed_from_step": 10}] + [
        {"op": "scalar", "tag": "train/loss", "step": s, "value": 100.0 + s, "wall": 1.8e9 + s} for s in range(11, 21)]
    run(logdir, second)
    files = sorted(p.name for p in logdir.iterdir())
    assert len(files) == 2
    acc = accumulate(logdir)
    got = [(e.step, e.value) for e in acc.Scalars("train/loss")]
    assert got == [(s, 10.0 + s) for s in range(1, 11)] + [(s, 100.0 + s) for s in range(11, 21)]
    # The second file starts as torch's SummaryWriter(purge_step=11) starts one.
    recs = [event_pb2.Event.FromString(r) for r in records(logdir / files[1])]
    assert recs[0].file_version == "brain.Event:2" and recs[0].step == 11
    assert recs[1].session_log.status == event_pb2.SessionLog.START and recs[1].step == 11


def test_a_new_file_sorts_after_existing_ones(tmp_path):
    """TensorBoard reads a folder's files in name order: a file named by a later clock must still come first if the
    folder already holds one from the 'future' (same second, another host, clock skew)."""
    logdir = tmp_path / "runs"
    logdir.mkdir()
    future = logdir / "events.out.tfevents.9000000000.otherhost.1.0"
    future.write_bytes(b"")
    out = run(logdir, [{"op": "open"}]).stdout.strip()
    assert Path(out).name > future.name and Path(out).name.startswith("events.out.tfevents.9000000001.")


def test_logging_dir_that_is_a_file(tmp_path):
    f = tmp_path / "logs"
    f.write_text("x")
    res = run(f, [{"op": "open"}], expect_rc=1)
    assert str(f) in res.stderr and "not a folder" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert f.read_text() == "x"


# ---- `sft train --report_to tensorboard`, end to end (tiny random Qwen2, train_test_util.py) ----

def train_args(base_dir, data, out, *extra):
    return ["--model_name_or_path", base_dir, "--dataset_path", data, "--output_dir", out,
            "--per_device_train_batch_size", "2", "--max_steps", "8", "--learning_rate", "1e-3", "--logging_steps", "2",
            "--logging_first_step", "True", "--max_seq_length", "64", "--train_on_inputs", "True",
            "--validation_split", "4", "--eval_strategy", "steps", "--eval_steps", "3", "--save_steps", "4",
            "--report_to", "tensorboard", "--threads", "2", *extra]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    from train_test_util import make_tiny_model, subset_dataset
    d = tmp_path_factory.mktemp("tb_train")
    return make_tiny_model(str(d / "base"), seed=2), subset_dataset(str(d / "rows20.json"), 20)


def expected_scalars(log_rows):
    """What transformers' TensorBoardCallback.on_log writes for the same rows: rewrite_logs(logs) at the row's step."""
    want = {}
    for r in log_rows:
        for tag, v in rewrite_logs({k: v for k, v in r.items() if k != "step"}).items():
            want.setdefault(tag, []).append((r["step"], f32(v)))
    return want


def assert_events_equal_log(logdir, out):
    from train_test_util import read_log
    rows = read_log(out)
    want = expected_scalars(rows)
    assert {"train/loss", "train/learning_rate", "train/grad_norm", "train/epoch", "eval/loss"} <= set(want)
    acc = accumulate(logdir)
    assert sorted(acc.Tags()["scalars"]) == sorted(want)
    for tag, pts in want.items():
        assert [(e.step, e.value) for e in acc.Scalars(tag)] == pts, tag
    return acc, rows


def test_train_writes_every_logged_row(tiny, tmp_path):
    from train_test_util import run_sft
    base_dir, data = tiny
    out = tmp_path / "out"
    res = run_sft(train_args(base_dir, data, str(out)))
    # transformers 5's default folder: <output_dir>/runs/<Mon DD_HH-MM-SS>_<host>
    (logdir,) = list((out / "runs").iterdir())
    assert re.fullmatch(r"[A-Z][a-z]{2}\d{2}_\d{2}-\d{2}-\d{2}_" + re.escape(socket.gethostname()), logdir.name)
    assert f"tensorboard: {logdir}" in res.stdout
    acc, rows = assert_events_equal_log(logdir, str(out))
    assert [r["step"] for r in rows if "loss" in r] == [1, 2, 4, 6, 8]
    assert [r["step"] for r in rows if "eval_loss" in r] == [3, 6]
    # TensorBoardCallback.on_train_begin's texts: the arguments (training_args.json) and the model config.
    (args,) = acc.Tensors("args/text_summary")
    assert json.loads(args.tensor_proto.string_val[0]) == json.load(open(out / "training_args.json"))
    assert json.loads(args.tensor_proto.string_val[0])["logging_dir"] == str(logdir)
    (cfg,) = acc.Tensors("model_config/text_summary")
    assert json.loads(cfg.tensor_proto.string_val[0])["hidden_size"] == 64
    state = json.load(open(out / "trainer_state.json"))
    assert state["sft_resume"]["logging_dir"] == str(logdir)


def test_resumed_run_appends_each_step_once(tiny, tmp_path):
    """A run killed after logging step 8 (its last checkpoint: 4) and resumed in place: the resumed run writes a new
    file into the same folder, and TensorBoard shows every step once — steps <= 4 as first logged, later ones with the
    resumed run's values (equal to its trainer_log.jsonl, including its own tokens/s)."""
    from train_test_util import read_log, run_sft
    base_dir, data = tiny
    out = tmp_path / "out"
    run_sft(train_args(base_dir, data, str(out)))
    (logdir,) = list((out / "runs").iterdir())
    first_log = read_log(str(out))
    for p in out.iterdir():  # the kill: only checkpoint-4 and the events survive
        if p.name not in ("checkpoint-4", "runs"):
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    res = run_sft(train_args(base_dir, data, str(out), "--resume_from_checkpoint", "last"))
    assert f"tensorboard: {logdir}" in res.stdout
    assert len(list(logdir.iterdir())) == 2
    acc, rows = assert_events_equal_log(logdir, str(out))
    assert rows[:3] == first_log[:3]  # steps 1, 2, 3 (eval) come from the checkpoint
    assert rows[3]["step"] == 4
    (args,) = acc.Tensors("args/text_summary")  # written once, by the run that started it


def test_logging_dir_flag_env_and_notes(tiny, tmp_path):
    from train_test_util import run_sft
    base_dir, data = tiny
    out = tmp_path / "out"
    res = run_sft(train_args(base_dir, data, str(out), "--logging_dir", str(tmp_path / "tb"), "--report_to",
                             "tensorboard", "wandb", "--max_steps", "3", "--save_strategy", "no"))
    assert_events_equal_log(tmp_path / "tb", str(out))
    assert res.stdout.count("note: --report_to wandb ignored: no network here, nothing is sent (trainer_log.jsonl and "
                            "TensorBoard events are written)") == 1
    env = dict(os.environ, TENSORBOARD_LOGGING_DIR=str(tmp_path / "env_tb"))
    out2 = tmp_path / "out2"
    subprocess.run([os.environ["SFT_BIN"], "train", *train_args(base_dir, data, str(out2), "--max_steps", "3",
                    "--save_strategy", "no")], check=True, capture_output=True, env=env)
    assert_events_equal_log(tmp_path / "env_tb", str(out2))
    assert not (out2 / "runs").exists()
    # transformers expands "~" in the variable (os.path.expanduser)
    env = dict(os.environ, TENSORBOARD_LOGGING_DIR="~/home_tb", HOME=str(tmp_path / "home"))
    out4 = tmp_path / "out4"
    subprocess.run([os.environ["SFT_BIN"], "train", *train_args(base_dir, data, str(out4), "--max_steps", "3",
                    "--save_strategy", "no")], check=True, capture_output=True, env=env)
    assert_events_equal_log(tmp_path / "home" / "home_tb", str(out4))
    out3 = tmp_path / "out3"
    res = run_sft(train_args(base_dir, data, str(out3), "--report_to", "none", "--logging_dir", str(tmp_path / "x"),
                             "--max_steps", "1", "--save_strategy", "no"))
    assert "note: --logging_dir ignored: only --report_to tensorboard writes there" in res.stdout
    assert not (tmp_path / "x").exists() and not (out3 / "runs").exists()


def test_train_with_a_logging_dir_that_is_a_file(tiny, tmp_path):
    from train_test_util import run_sft
    base_dir, data = tiny
    f = tmp_path / "logs"
    f.write_text("x")
    out = tmp_path / "out"
    res = run_sft(train_args(base_dir, data, str(out), "--logging_dir", str(f)), check=False)
    assert res.returncode == 1
    assert res.stderr.strip().splitlines() == [
        f"sft: error: --logging_dir {f}: exists and is not a folder (TensorBoard writes events files into a folder)"]
    assert f.read_text() == "x" and not out.exists()  # nothing written, before the data or the model were loaded
    res = run_sft(train_args(base_dir, data, str(out), "--logging_dir", str(f / "sub")), check=False)
    assert res.returncode == 1 and len(res.stderr.strip().splitlines()) == 1
    assert res.stderr.startswith(f"sft: error: --logging_dir: {f / 'sub'}: cannot create the TensorBoard logging dir")
    assert not (out / "trainer_log.jsonl").exists()
