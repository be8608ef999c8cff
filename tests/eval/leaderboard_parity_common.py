"""Shared by test_leaderboard_parity.py and test_gsm8k_parity.py: runs lm_eval_oracle.py and `sft eval` on the same
fixture documents and compares them (see those files for what is checked)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1]
DATA = SRC / "tests" / "fixtures" / "eval" / "data"
MC_TASKS = "truthfulqa_mc1,truthfulqa_mc2,winogrande,piqa,boolq,openbookqa"
# name -> (tasks, limit, shots, gen_kwargs)
CASES = {
    "mc": (MC_TASKS, 4, [0, 5], None),
    "gsm8k": ("gsm8k", 3, [5], "max_gen_toks=96"),
}
ENV = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1")


def tol(ll):
    return 1e-4 + 1e-5 * abs(ll)


@pytest.fixture(scope="module")
def model_dir():  # noqa: D103 (imported by the test modules as a fixture)
    r = subprocess.run([sys.executable, str(SRC / "scripts" / "convert_smollm2.py")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


_ORACLES = {}


def oracle(model_dir, case, tmp_path_factory):
    if case not in _ORACLES:
        cached = os.environ.get(f"SFT_LEADERBOARD_ORACLE_JSON_{case.upper()}")  # developer shortcut
        if cached:
            _ORACLES[case] = json.loads(Path(cached).read_text())
        else:
            tasks, limit, shots, gen_kwargs = CASES[case]
            out = tmp_path_factory.mktemp("oracle") / "oracle.json"
            cmd = [sys.executable, str(HERE / "lm_eval_oracle.py"), "--model", model_dir, "--data_dir", str(DATA),
                   "--tasks", tasks, "--num_fewshot", ",".join(map(str, shots)), "--limit", str(limit), "--out",
                   str(out)] + (["--gen_kwargs", gen_kwargs] if gen_kwargs else [])
            r = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
            assert r.returncode == 0, r.stderr[-3000:]
            _ORACLES[case] = json.loads(out.read_text())
    return _ORACLES[case]


def run_sft(model_dir, case, shots, out):
    tasks, limit, _, gen_kwargs = CASES[case]
    cmd = [os.environ.get("SFT_BIN", str(SRC / "build" / "src" / "cli" / "sft")), "eval", "--model", model_dir,
           "--tasks", tasks, "--num_fewshot", str(shots), "--limit", str(limit), "--data_dir", str(DATA),
           "--dtype", "float32", "--log_samples", "--output_path", str(out), "--quiet"]
    if gen_kwargs:
        cmd += ["--gen_kwargs", gen_kwargs]
    r = subprocess.run(cmd, capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    return json.loads((out / "results.json").read_text())


def check_loglikelihood_task(task, got, want, ours):
    worst = 0.0
    assert len(got) == len(want["samples"]) > 0, task
    for g, w in zip(got, want["samples"]):
        assert g["doc_id"] == w["doc_id"]
        assert g["arguments"] == w["arguments"], f"{task} doc {g['doc_id']}: requests differ"
        lls = [r[0] for r in g["resps"]]
        for i, (a, b) in enumerate(zip(lls, w["lls"])):
            worst = max(worst, abs(a - b))
            assert abs(a - b) <= tol(b), f"{task} doc {g['doc_id']} request {i}: {a} vs lm-eval {b}"
        assert [r[1] for r in g["resps"]] == w["greedy"], f"{task} doc {g['doc_id']}: is_greedy differs"
        if task == "truthfulqa_mc2":
            assert g["acc"] == pytest.approx(w["acc"], abs=1e-3), f"{task} doc {g['doc_id']}"
            continue
        for metric in ("acc", "acc_norm"):
            if metric in w and g[metric] != w[metric]:
                best = sorted(w["lls"], reverse=True)
                assert best[0] - best[1] <= 2 * tol(best[0]), f"{task} doc {g['doc_id']}: {metric} differs"
    for key, value in want["metrics"].items():
        if "stderr" in key:
            continue
        assert ours["results"][task][key] == pytest.approx(value, abs=1e-3 if task == "truthfulqa_mc2" else 1e-12), \
            (task, key)
    return worst


def check_generation_task(task, lines, want, ours):
    by_doc = {}
    for line in lines:
        by_doc.setdefault(line["doc_id"], []).append(line)
    assert len(by_doc) == len(want["samples"]) > 0
    for w in want["samples"]:
        rows = by_doc[w["doc_id"]]
        assert rows[0]["arguments"][0][0] == w["arguments"][0][0], f"{task} doc {w['doc_id']}: prompt differs"
        ours_tokens, theirs = rows[0]["generated_tokens"], w["tokens"]
        assert theirs is not None, "the oracle did not record this document's tokens"
        n = min(len(ours_tokens), len(theirs))
        assert n > 0 and ours_tokens[:n] == theirs[:n], f"{task} doc {w['doc_id']}: generated tokens differ"
        assert rows[0]["resps"][0][0] == w["resps"], f"{task} doc {w['doc_id']}: generated text differs"
        for r in rows:
            assert r["filtered_resps"][0] == w["filtered"][r["filter"]], (task, w["doc_id"], r["filter"])
            assert r["exact_match"] == w["exact_match"][r["filter"]], (task, w["doc_id"], r["filter"])
        assert {r["filter"] for r in rows} == set(w["filtered"]), (task, w["doc_id"])
    for key, value in want["metrics"].items():
        if "stderr" not in key:
            assert ours["results"][task][key] == pytest.approx(value, abs=1e-12), (task, key)


def check_case(model_dir, case, shots, tmp_path, tmp_path_factory):
    ours = run_sft(model_dir, case, shots, tmp_path)
    ref = oracle(model_dir, case, tmp_path_factory)[str(shots)]
    worst = 0.0
    for task, want in ref.items():
        lines = [json.loads(l) for l in (tmp_path / f"samples_{task}.jsonl").read_text().splitlines()]
        assert ours["n-shot"][task] == want["n_shot"], task  # truthfulqa keeps its pinned 0 shots on both sides
        if "tokens" in want["samples"][0]:
            check_generation_task(task, lines, want, ours)
        else:
            worst = max(worst, check_loglikelihood_task(task, lines, want, ours))
    print(f"{case} {shots}-shot: max |ll - lm-eval ll| = {worst:.3g}")
