"""`sft eval` vs lm-evaluation-harness 0.4.13 (HF backend, CPU, float32) on SmolLM2-135M and the fixture data.

Two fixture folders:
  - data/:       mmlu_abstract_algebra, mmlu_world_religions, arc_easy, arc_challenge, hellaswag, 0- and 5-shot, first 4
                 docs; no train files (few-shot from the evaluated split, the evaluated doc excluded);
  - data_train/: 5-shot mmlu_college_mathematics (dev row 3 has "\r\n" inside a quoted field), arc_easy with a train
                 file (ARC numeric answer keys, 3- and 5-choice rows), arc_challenge without one, hellaswag with a
                 train file (lm-eval draws n+1 and drops the evaluated doc; one evaluated doc is also in the pool).
For every task and document:
  - the (context, continuation) strings of every request are identical (prompt format + few-shot selection),
  - per-choice log-likelihoods agree within 1e-4 + 1e-5*|ll|: both sides are fp32; the model layer matches
    transformers' logits to ~1e-5 relative (tests/model), and a continuation's ll sums ~1-20 token log-probs of
    magnitude 1-30, so a few 1e-4 absolute at |ll| ~ 30 is the expected fp32 reassociation size (observed max 2.0e-4
    at ll = -26.2); a real bug (wrong token, off-by-one position, missing BOS) moves ll by >= 1e-2,
  - is_greedy flags and per-document predictions (acc, acc_norm) are identical (a prediction may only differ when
    lm-eval's own margin between the two best choices is inside that tolerance),
  - task metrics equal the mean of lm-eval's per-document scores and lm-eval's mean_stderr; the MMLU group equals
    lm-eval's aggregate_subtask_metrics / pooled_sample_stderr over the subjects.
"""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1]
FIXTURES = SRC / "tests" / "fixtures" / "eval"
# name -> (tasks, limit, shots)
CASES = {
    "data": ("mmlu_abstract_algebra,mmlu_world_religions,arc_easy,arc_challenge,hellaswag", 4, [0, 5]),
    "data_train": ("mmlu_college_mathematics,arc_easy,arc_challenge,hellaswag", 6, [5]),
}


def tol(ll):
    return 1e-4 + 1e-5 * abs(ll)


@pytest.fixture(scope="module")
def model_dir():
    r = subprocess.run([sys.executable, str(SRC / "scripts" / "convert_smollm2.py")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


# One thread per engine: this test checks numbers, not speed, and OpenMP/torch thread pools spinning against each
# other on a loaded 2-core CI machine make it many times slower.
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


_ORACLES = {}


def oracle(model_dir, case, tmp_path_factory):
    if case not in _ORACLES:
        cached = os.environ.get(f"SFT_EVAL_ORACLE_JSON_{case.upper()}")  # developer shortcut: a previous output
        if cached:
            _ORACLES[case] = json.loads(Path(cached).read_text())
        else:
            tasks, limit, shots = CASES[case]
            out = tmp_path_factory.mktemp("oracle") / "oracle.json"
            subprocess.run([sys.executable, str(HERE / "lm_eval_oracle.py"), "--model", model_dir, "--data_dir",
                            str(FIXTURES / case), "--tasks", tasks, "--num_fewshot", ",".join(map(str, shots)),
                            "--limit", str(limit), "--out", str(out)], check=True, capture_output=True, text=True,
                           env=ENV)
            _ORACLES[case] = json.loads(out.read_text())
    return _ORACLES[case]


def run_sft(model_dir, case, shots, out, extra=()):
    tasks, limit, _ = CASES[case]
    cmd = [os.environ.get("SFT_BIN", str(SRC / "build" / "src" / "cli" / "sft")), "eval", "--model", model_dir,
           "--tasks", tasks, "--num_fewshot", str(shots), "--limit", str(limit), "--data_dir", str(FIXTURES / case),
           "--arc_split", "dev", "--dtype", "float32", "--log_samples", "--output_path", str(out), "--quiet",
           *extra]
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.mark.parametrize("case,shots", [(c, s) for c, (_, _, shots) in CASES.items() for s in shots])
def test_matches_lm_eval(model_dir, case, shots, tmp_path, tmp_path_factory):
    from lm_eval.api.metrics import aggregate_subtask_metrics, mean, mean_stderr, pooled_sample_stderr

    table = run_sft(model_dir, case, shots, tmp_path)
    ours = json.loads((tmp_path / "results.json").read_text())
    ref = oracle(model_dir, case, tmp_path_factory)[str(shots)]
    worst = 0.0
    for task, want in ref.items():
        got = [json.loads(line) for line in (tmp_path / f"samples_{task}.jsonl").read_text().splitlines()]
        assert len(got) == len(want["samples"]) > 0, task
        for g, w in zip(got, want["samples"]):
            assert g["doc_id"] == w["doc_id"]
            assert g["arguments"] == w["arguments"], f"{task} doc {g['doc_id']}: prompt differs"
            lls = [r[0] for r in g["resps"]]
            for i, (a, b) in enumerate(zip(lls, w["lls"])):
                worst = max(worst, abs(a - b))
                assert abs(a - b) <= tol(b), f"{task} doc {g['doc_id']} choice {i}: {a} vs lm-eval {b}"
            assert [r[1] for r in g["resps"]] == w["greedy"], f"{task} doc {g['doc_id']}: is_greedy differs"
            for metric in ("acc", "acc_norm"):
                if metric not in w:
                    continue
                if g[metric] != w[metric]:
                    best = sorted(w["lls"], reverse=True)
                    assert best[0] - best[1] <= 2 * tol(best[0]), f"{task} doc {g['doc_id']}: {metric} differs"
        accs = {m: [s[m] for s in want["samples"]] for m in ("acc", "acc_norm") if m in want["samples"][0]}
        for m, values in accs.items():
            assert ours["results"][task][f"{m},none"] == pytest.approx(mean(values), abs=1e-12), (task, m)
            assert ours["results"][task][f"{m}_stderr,none"] == pytest.approx(mean_stderr(values), abs=1e-12)
        assert ours["n-shot"][task] == shots
    # MMLU group over the subjects, with lm-eval's own aggregation functions.
    subj = [t for t in ref if t.startswith("mmlu_")]
    if len(subj) >= 2:
        vals = [mean([s["acc"] for s in ref[t]["samples"]]) for t in subj]
        errs = [mean_stderr([s["acc"] for s in ref[t]["samples"]]) for t in subj]
        sizes = [len(ref[t]["samples"]) for t in subj]
        assert ours["groups"]["mmlu"]["acc,none"] == pytest.approx(aggregate_subtask_metrics(vals, sizes), abs=1e-12)
        assert ours["groups"]["mmlu"]["acc_stderr,none"] == pytest.approx(pooled_sample_stderr(errs, sizes),
                                                                          abs=1e-12)
    if case == "data_train":  # the divergent paths were really taken
        cm = ref["mmlu_college_mathematics"]["samples"][0]["arguments"][0][0]
        assert "\r\n" in cm, "fixture lost its CRLF-in-quotes row"
    assert "arc_easy" in table and "acc_norm" in table
    print(f"{case} {shots}-shot: max |ll - lm-eval ll| = {worst:.3g}")
