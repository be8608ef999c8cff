"""`sft eval --tasks leaderboard_v1` end to end on a small local copy of the six datasets (every MMLU subject gets a
few questions; --limit 1 and --num_fewshot 0 keep it cheap; GSM8K generates 8 tokens): the group's row in both tables,
results.json's group = the plain mean of the six members' headline metrics (arc_challenge acc_norm, hellaswag acc_norm,
mmlu acc, truthfulqa_mc2 acc, winogrande acc, gsm8k exact_match strict-match) with stderr sqrt(sum se^2)/6, the notes
about the shots --num_fewshot replaced, and the --compare report (Markdown + HTML) carrying the group and every member
with deltas and intervals. The alias open_llm_leaderboard is the same group."""
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2]
FIX = SRC / "tests" / "fixtures" / "eval" / "data"
ENV = dict(os.environ, OMP_NUM_THREADS="1")
HEADLINE = {"arc_challenge": "acc_norm,none", "hellaswag": "acc_norm,none", "mmlu": "acc,none",
            "truthfulqa_mc2": "acc,none", "winogrande": "acc,none", "gsm8k": "exact_match,strict-match"}


def sft():
    return os.environ.get("SFT_BIN", str(SRC / "build" / "src" / "cli" / "sft"))


@pytest.fixture(scope="module")
def model_dir():
    r = subprocess.run([sys.executable, str(SRC / "scripts" / "convert_smollm2.py")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("leaderboard_data")
    for task in ("truthfulqa", "winogrande", "gsm8k", "hellaswag"):
        shutil.copytree(FIX / task, d / task)
    (d / "arc").mkdir()
    shutil.copy(FIX / "arc" / "ARC-Challenge-Dev.jsonl", d / "arc" / "ARC-Challenge-Test.jsonl")
    # Every MMLU subject: the fixture's abstract_algebra questions stand in (the subject only changes the description).
    rows = (FIX / "mmlu" / "test" / "abstract_algebra_test.csv").read_bytes()
    dev = (FIX / "mmlu" / "dev" / "abstract_algebra_dev.csv").read_bytes()
    import re
    names = re.findall(r'\{"([a-z_]+)", "(?:stem|other|social_sciences|humanities)"\}',
                       (SRC / "src" / "eval" / "mmlu_subjects.cpp").read_text())
    assert len(names) == 57
    for sub in ("test", "dev"):
        (d / "mmlu" / sub).mkdir(parents=True)
    for name in names:
        (d / "mmlu" / "test" / f"{name}_test.csv").write_bytes(rows)
        (d / "mmlu" / "dev" / f"{name}_dev.csv").write_bytes(dev)
    return d


def test_leaderboard_group_and_compare_report(model_dir, data_dir, tmp_path):
    out = tmp_path / "cmp"
    r = subprocess.run([sft(), "eval", "--model", model_dir, "--compare", model_dir, "--tasks", "open_llm_leaderboard",
                        "--num_fewshot", "0", "--limit", "1", "--data_dir", str(data_dir), "--gen_kwargs",
                        "max_gen_toks=8", "--output_path", str(out)], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr[-3000:]
    assert "--num_fewshot 0 replaces the group's 25 shots" in r.stderr  # arc_challenge's leaderboard shots
    assert "leaderboard_v1" in r.stdout and "average" in r.stdout
    assert "model compute:" in r.stdout and "gemm peak" in r.stdout
    res = json.loads((out / "tuned" / "results.json").read_text())
    group = res["groups"]["leaderboard_v1"]
    values, errs = [], []
    for member, key in HEADLINE.items():
        src = res["groups"][member] if member == "mmlu" else res["results"][member]
        values.append(src[key])
        errs.append(src[key.replace(",", "_stderr,", 1)])
    assert group["average,none"] == pytest.approx(sum(values) / 6, abs=1e-12)
    if all(isinstance(e, float) for e in errs):
        assert group["average_stderr,none"] == pytest.approx(math.sqrt(sum(e * e for e in errs)) / 6, abs=1e-12)
    assert res["group_subtasks"]["leaderboard_v1"] == list(HEADLINE)
    assert res["n-shot"]["gsm8k"] == 0 and res["n-shot"]["truthfulqa_mc2"] == 0
    assert "exact_match,flexible-extract" in res["results"]["gsm8k"]
    report = (out / "report.md").read_text()
    for row in ("leaderboard_v1", "average", "winogrande", "truthfulqa_mc2", "exact_match,strict-match", "mmlu"):
        assert row in report, row
    assert "+0.0000" in report  # the same model on both sides
    html = (out / "report.html").read_text()
    assert "leaderboard_v1" in html and "exact_match,strict-match" in html


def test_unknown_group_lists_the_table(model_dir, data_dir):
    r = subprocess.run([sft(), "eval", "--model", model_dir, "--tasks", "open_llm_leaderboard_v9", "--data_dir",
                        str(data_dir)], capture_output=True, text=True, env=ENV)
    assert r.returncode == 1
    assert "unknown task 'open_llm_leaderboard_v9'" in r.stderr and "leaderboard_v1" in r.stderr


def test_gsm8k_generations_resume_from_the_cache(model_dir, tmp_path):
    """generate_until results go to --use_cache like scores: a larger --limit generates only the new documents and the
    resumed ones keep their text; another max_gen_toks never reuses them."""
    cache = tmp_path / "cache"
    common = [sft(), "eval", "--model", model_dir, "--tasks", "gsm8k", "--num_fewshot", "0", "--data_dir", str(FIX),
              "--dtype", "float32", "--use_cache", str(cache), "--log_samples"]

    def run(limit, out, gen="max_gen_toks=8"):
        r = subprocess.run(common + ["--limit", str(limit), "--gen_kwargs", gen, "--output_path", str(tmp_path / out)],
                           capture_output=True, text=True, env=ENV)
        assert r.returncode == 0, r.stderr
        res = json.loads((tmp_path / out / "results.json").read_text())
        lines = [json.loads(l) for l in (tmp_path / out / "samples_gsm8k.jsonl").read_text().splitlines()]
        return r, res, {(x["doc_id"], x["filter"]): x["resps"][0][0] for x in lines}

    _, first, texts1 = run(1, "a")
    assert first["sft"]["resumed_docs"] == 0 and first["sft"]["tokens_generated"] > 0
    r, second, texts2 = run(2, "b")
    assert second["sft"]["resumed_docs"] == 1
    assert "from cache" in r.stderr and "ETA" in r.stderr
    assert texts2[(0, "strict-match")] == texts1[(0, "strict-match")]
    _, third, _ = run(2, "c", "max_gen_toks=6")
    assert third["sft"]["resumed_docs"] == 0
