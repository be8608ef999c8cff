"""`sft eval` command line: a clear error naming the missing data file, and `--compare` writing the comparison table,
report.md + report.html (deltas with 95% intervals, results tables, the tuned model's loss curve from its
trainer_log.jsonl), comparison.svg / delta.svg / loss_curve.svg and both results.json files (same weights as base and
tuned, so every delta is exactly 0)."""
import json
import os
import subprocess
import sys
import xml.dom.minidom
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2]
DATA = SRC / "tests" / "fixtures" / "eval" / "data"
ENV = dict(os.environ, OMP_NUM_THREADS="1")


def sft():
    return os.environ.get("SFT_BIN", str(SRC / "build" / "src" / "cli" / "sft"))


@pytest.fixture(scope="module")
def model_dir():
    r = subprocess.run([sys.executable, str(SRC / "scripts" / "convert_smollm2.py")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


def test_missing_data_names_the_file(model_dir, tmp_path):
    r = subprocess.run([sft(), "eval", "--model", model_dir, "--tasks", "hellaswag", "--data_dir", str(tmp_path)],
                       capture_output=True, text=True, env=ENV)
    assert r.returncode == 1
    assert str(tmp_path / "hellaswag" / "hellaswag_val.jsonl") in r.stderr, r.stderr
    r = subprocess.run([sft(), "eval", "--model", model_dir, "--tasks", "mmlu_nope", "--data_dir", str(DATA)],
                       capture_output=True, text=True, env=ENV)
    assert r.returncode == 1 and "unknown task 'mmlu_nope'" in r.stderr


def test_compare_writes_report(model_dir, tmp_path):
    out = tmp_path / "cmp"
    tuned_dir = tmp_path / "tuned"  # the same weights plus a training log, as `sft train` leaves it
    tuned_dir.mkdir()
    for f in Path(model_dir).iterdir():
        if f.is_file():
            (tuned_dir / f.name).symlink_to(f)
    (tuned_dir / "trainer_log.jsonl").write_text(
        "".join(json.dumps(r) + "\n" for r in [{"step": 2, "epoch": 0.1, "loss": 2.5}, {"step": 4, "epoch": 0.2, "loss": 1.75},
                                              {"step": 4, "epoch": 0.2, "eval_loss": 1.9}, {"step": 6, "epoch": 0.3, "loss": 1.5}]))
    r = subprocess.run([sft(), "eval", "--model", str(tuned_dir), "--compare", model_dir, "--tasks",
                        "arc_easy,mmlu_marketing,mmlu_world_religions", "--arc_split", "dev", "--limit", "2",
                        "--data_dir", str(DATA), "--output_path", str(out), "--quiet"],
                       capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    assert "## Comparison" in r.stdout and "Delta" in r.stdout and "+0.0000" in r.stdout
    base = json.loads((out / "base" / "results.json").read_text())
    tuned = json.loads((out / "tuned" / "results.json").read_text())
    assert base["results"]["arc_easy"] == tuned["results"]["arc_easy"]
    assert "mmlu" in base["groups"]
    report = (out / "report.md").read_text()
    assert "delta.svg" in report and "+0.0000" in report and "loss_curve.svg" in report
    assert "2.5000 at step 2" in report and "1.5000 at step 6" in report
    assert "within noise" in report and "95% CI" in report
    for svg in ("comparison.svg", "delta.svg", "loss_curve.svg"):
        xml.dom.minidom.parseString((out / svg).read_text())  # well-formed SVG
    html = (out / "report.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and html.rstrip().endswith("</html>")
    assert "<svg" in html and "training loss" in html and "+0.0000" in html and "http" not in html.replace(
        "http://www.w3.org/2000/svg", "")  # self-contained: nothing fetched


def test_results_cache_resumes_and_batch_size_does_not_change_results(model_dir, tmp_path):
    tasks = "mmlu_marketing,arc_easy"
    common = [sft(), "eval", "--model", model_dir, "--tasks", tasks, "--arc_split", "dev", "--data_dir", str(DATA),
              "--dtype", "float32", "--log_samples"]
    cache = tmp_path / "cache"
    # An "interrupted" run: the first 2 documents of each task land in the cache.
    r = subprocess.run(common + ["--limit", "2", "--use_cache", str(cache), "--output_path", str(tmp_path / "a"),
                                 "--quiet"], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    assert len(list(cache.glob("*.json"))) == 2
    # The continued run scores only the 3 new documents per task, and prints progress with a rate and an ETA.
    r = subprocess.run(common + ["--limit", "5", "--use_cache", str(cache), "--output_path", str(tmp_path / "b")],
                       capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    assert "docs/s" in r.stderr and "ETA" in r.stderr and "from cache" in r.stderr, r.stderr
    resumed = json.loads((tmp_path / "b" / "results.json").read_text())
    assert resumed["sft"]["resumed_docs"] == 4
    # A fresh run with another batch size gives the same per-document log-likelihoods (to fp32 reassociation).
    r = subprocess.run(common + ["--limit", "5", "--batch_size", "1", "--output_path", str(tmp_path / "c"),
                                 "--quiet"], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    fresh = json.loads((tmp_path / "c" / "results.json").read_text())
    assert fresh["sft"]["resumed_docs"] == 0
    for t in tasks.split(","):
        a = [json.loads(x) for x in (tmp_path / "b" / f"samples_{t}.jsonl").read_text().splitlines()]
        b = [json.loads(x) for x in (tmp_path / "c" / f"samples_{t}.jsonl").read_text().splitlines()]
        assert len(a) == len(b) == 5
        for x, y in zip(a, b):
            assert x["acc"] == y["acc"]
            for p, q in zip(x["resps"], y["resps"]):
                assert abs(p[0] - q[0]) <= 1e-4 + 1e-5 * abs(q[0]), (t, x["doc_id"], p, q)


def test_bad_batch_size_is_a_one_line_error(model_dir):
    r = subprocess.run([sft(), "eval", "--model", model_dir, "--tasks", "arc_easy", "--batch_size", "lots",
                        "--data_dir", str(DATA)], capture_output=True, text=True, env=ENV)
    assert r.returncode == 1 and "--batch_size" in r.stderr, r.stderr


def test_dtype_auto_says_what_it_chose_and_results_record_it(model_dir, tmp_path):
    # --dtype auto is a rule on the device (backend/device.h inference_auto_dtype: bf16 on CUDA and on AMX CPUs only);
    # the choice and its reason are one line on stderr, and results.json records the dtype the run computed in.
    r = subprocess.run([sft(), "eval", "--model", model_dir, "--tasks", "piqa", "--limit", "1", "--data_dir", str(DATA),
                        "--output_path", str(tmp_path)], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    lines = [l for l in r.stderr.splitlines() if l.startswith("--dtype auto: ")]
    assert len(lines) == 1, r.stderr
    chosen = lines[0].split()[2]
    assert chosen in ("float32", "bfloat16"), lines[0]
    config = json.loads((tmp_path / "results.json").read_text())["config"]
    assert config["dtype"] == "auto" and config["compute_dtype"] == chosen
    flags = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    if "amx_bf16" not in flags:  # no AMX: bf16 would be slower than fp32 (or emulated), so auto stays fp32
        assert chosen == "float32", lines[0]
    # An explicit dtype prints nothing about auto.
    r = subprocess.run([sft(), "eval", "--model", model_dir, "--tasks", "piqa", "--limit", "1", "--data_dir", str(DATA),
                        "--dtype", "float32"], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0 and "--dtype auto" not in r.stderr, r.stderr
