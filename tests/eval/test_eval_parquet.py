"""`sft eval` on the Hugging Face datasets' Parquet splits (task_data.h locate_split_files, data/parquet_rows.h).

The Parquet files are written here with pyarrow from the same rows as the JSONL/CSV fixtures, in the schemas the hub
datasets have (cais/mmlu: choices list + int answer; allenai/ai2_arc: choices struct of text/label lists;
truthfulqa: mc1_targets/mc2_targets structs of choices + int32 labels; Rowan/hellaswag: endings list, label as a
string; winogrande: answer dictionary-encoded), in the layouts the hub uses (`<split>.parquet`, the shards
`<split>-0000i-of-0000N.parquet`, MMLU's `<subject>/<split>-00000-of-00001.parquet`), with small row groups. Then:
- the same evaluation from the fixtures and from the Parquet folder gives byte-identical samples_<task>.jsonl (every
  request string, log-likelihood and prediction) and identical results, few-shot pools included;
- bad input in a Parquet row (a null or absent field, a struct without a field the row reads, a column of a type with
  no JSON form) is the same one-line error, naming file, row and field, as the same row in JSON lines;
- the JSONL file wins when both exist; a missing shard and a missing split are errors naming the files.
Row numbers: a Parquet file's row n is its n-th row (1-based over all row groups), as JSON lines count from 1."""
import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

SRC = Path(__file__).resolve().parents[2]
FIX = SRC / "tests" / "fixtures" / "eval" / "data"
ENV = dict(os.environ, OMP_NUM_THREADS="1")
TASKS = "mmlu_abstract_algebra,arc_easy,hellaswag,truthfulqa_mc1,truthfulqa_mc2,winogrande,piqa"


def sft():
    return os.environ.get("SFT_BIN", str(SRC / "build" / "src" / "cli" / "sft"))


def jsonl(path):
    return [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]


def write(table, path, row_group_size=3):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path, row_group_size=row_group_size)


def mmlu_rows(path, subject):
    # The cais/mmlu loading script: binary lines decoded as UTF-8, then csv.reader; answer = index of A-D.
    with open(path, "rb") as f:
        recs = list(csv.reader(line.decode("utf-8") for line in f))
    return [{"question": r[0], "subject": subject, "choices": r[1:5], "answer": "ABCD".index(r[5])} for r in recs]


MMLU_SCHEMA = pa.schema([("question", pa.string()), ("subject", pa.string()), ("choices", pa.list_(pa.string())),
                         ("answer", pa.int64())])
TARGETS = pa.struct([("choices", pa.list_(pa.string())), ("labels", pa.list_(pa.int32()))])


@pytest.fixture(scope="module")
def model_dir():
    r = subprocess.run([sys.executable, str(SRC / "scripts" / "convert_smollm2.py")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def parquet_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("parquet_data")
    for split in ("test", "dev"):
        rows = mmlu_rows(FIX / "mmlu" / split / f"abstract_algebra_{split}.csv", "abstract_algebra")
        write(pa.Table.from_pylist(rows, schema=MMLU_SCHEMA),
              d / "mmlu" / "abstract_algebra" / f"{split}-00000-of-00001.parquet")
    arc = [{"id": r["id"], "question": r["question"]["stem"],
            "choices": {"text": [c["text"] for c in r["question"]["choices"]],
                        "label": [c["label"] for c in r["question"]["choices"]]},
            "answerKey": r["answerKey"]} for r in jsonl(FIX / "arc" / "ARC-Easy-Dev.jsonl")]
    write(pa.Table.from_pylist(arc), d / "arc" / "ARC-Easy" / "validation.parquet", row_group_size=64)
    hs = jsonl(FIX / "hellaswag" / "hellaswag_val.jsonl")
    for r in hs:
        r["label"] = str(r["label"])  # Rowan/hellaswag stores the label as a string
    write(pa.Table.from_pylist(hs), d / "hellaswag" / "validation.parquet", row_group_size=7)
    tq = jsonl(FIX / "truthfulqa" / "validation.jsonl")
    schema = pa.schema([("question", pa.string()), ("mc1_targets", TARGETS), ("mc2_targets", TARGETS)])
    for i, part in enumerate((tq[:10], tq[10:])):  # two hub shards, read in order
        write(pa.Table.from_pylist(part, schema=schema), d / "truthfulqa" / f"validation-0000{i}-of-00002.parquet")
    for split in ("validation", "train"):
        rows = jsonl(FIX / "winogrande" / f"{split}.jsonl")
        t = pa.Table.from_pylist(rows)
        t = t.set_column(t.schema.get_field_index("answer"), "answer", pa.array([r["answer"] for r in rows]).dictionary_encode())
        write(t, d / "winogrande" / f"{split}.parquet")
        write(pa.Table.from_pylist(jsonl(FIX / "piqa" / f"{split}.jsonl")), d / "piqa" / f"{split}.parquet")
    return d


def evaluate(model_dir, data_dir, out):
    r = subprocess.run([sft(), "eval", "--model", model_dir, "--tasks", TASKS, "--num_fewshot", "2", "--limit", "3",
                        "--arc_split", "dev", "--dtype", "float32", "--data_dir", str(data_dir), "--output_path",
                        str(out), "--log_samples", "--quiet"], capture_output=True, text=True, env=ENV)
    assert r.returncode == 0, r.stderr
    return json.loads((out / "results.json").read_text())


def test_parquet_splits_give_byte_identical_results(model_dir, parquet_dir, tmp_path):
    assert not (parquet_dir / "piqa" / "validation.jsonl").exists()
    from_jsonl = evaluate(model_dir, FIX, tmp_path / "jsonl")
    from_parquet = evaluate(model_dir, parquet_dir, tmp_path / "parquet")
    for key in ("results", "n-samples", "n-shot", "versions"):
        assert from_parquet[key] == from_jsonl[key], key
    for task in TASKS.split(","):
        a = (tmp_path / "jsonl" / f"samples_{task}.jsonl").read_bytes()
        b = (tmp_path / "parquet" / f"samples_{task}.jsonl").read_bytes()
        assert a == b, task
        assert len(a.splitlines()) == 3, task
    # results.json names the files read (shards as a pattern).
    files = {t: v["eval_file"] for t, v in from_parquet["sft"]["tasks"].items()}
    assert files["truthfulqa_mc1"] == str(parquet_dir / "truthfulqa" / "validation-*-of-00002.parquet"), files
    assert files["mmlu_abstract_algebra"] == str(parquet_dir / "mmlu" / "abstract_algebra" / "test-00000-of-00001.parquet")
    assert from_parquet["sft"]["tasks"]["piqa"]["fewshot_file"] == str(parquet_dir / "piqa" / "train.parquet")


def run_eval(model_dir, data_dir, task):
    return subprocess.run([sft(), "eval", "--model", model_dir, "--tasks", task, "--data_dir", str(data_dir), "--quiet"],
                          capture_output=True, text=True, env=ENV)


def one_error(r):
    lines = [l for l in r.stderr.splitlines() if l.startswith("sft: error:")]
    assert r.returncode == 1 and len(lines) == 1, (r.returncode, r.stderr)
    return lines[0]


PIQA = {"goal": "g", "sol1": "a", "sol2": "b", "label": 0}


@pytest.mark.parametrize("rows,column_types,want", [
    # A null where the row needs a string: the same error as the JSON line {"sol2": null}.
    ([PIQA, dict(PIQA, sol2=None)], None, "row 2: field 'sol2' must be a string, got null"),
    # A column the file lacks: every row misses the field.
    ([{k: v for k, v in PIQA.items() if k != "sol2"}], None, "row 1: field 'sol2' is missing"),
    # A label outside the choices.
    ([PIQA, PIQA, dict(PIQA, label=7)], None, "row 3: doc_to_target (label) gives label 7, outside the 2 choices"),
])
def test_bad_parquet_rows_are_the_jsonl_errors(model_dir, tmp_path, rows, column_types, want):
    pq_dir, js_dir = tmp_path / "pq", tmp_path / "js"
    write(pa.Table.from_pylist(rows), pq_dir / "piqa" / "validation.parquet", row_group_size=1)
    (js_dir / "piqa").mkdir(parents=True)
    (js_dir / "piqa" / "validation.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    e_pq = one_error(run_eval(model_dir, pq_dir, "piqa"))
    e_js = one_error(run_eval(model_dir, js_dir, "piqa"))
    assert f"{pq_dir / 'piqa' / 'validation.parquet'} {want}" in e_pq, e_pq
    assert e_pq.replace(str(pq_dir / "piqa" / "validation.parquet"), "F") == \
        e_js.replace(str(js_dir / "piqa" / "validation.jsonl"), "F")


def test_struct_without_a_field_and_unreadable_columns(model_dir, tmp_path):
    tq = jsonl(FIX / "truthfulqa" / "validation.jsonl")[:2]
    no_labels = pa.struct([("choices", pa.list_(pa.string()))])
    rows = [{"question": r["question"], "mc1_targets": {"choices": r["mc1_targets"]["choices"]},
             "mc2_targets": r["mc2_targets"]} for r in tq]
    t = pa.Table.from_pylist(rows, schema=pa.schema([("question", pa.string()), ("mc1_targets", no_labels),
                                                     ("mc2_targets", TARGETS)]))
    write(t, tmp_path / "a" / "truthfulqa" / "validation.parquet")
    e = one_error(run_eval(model_dir, tmp_path / "a", "truthfulqa_mc1"))
    assert "truthfulqa/validation.parquet row 1: field 'mc1_targets.labels' is missing" in e, e
    # A column the task reads whose type has no JSON form: named with its type; other such columns are ignored.
    t = pa.table({"goal": pa.array([b"g"], pa.binary()), "sol1": ["a"], "sol2": ["b"], "label": [0]})
    write(t, tmp_path / "b" / "piqa" / "validation.parquet")
    e = one_error(run_eval(model_dir, tmp_path / "b", "piqa"))
    assert "piqa/validation.parquet: column \"goal\" (field 'goal') cannot be read: Arrow type binary" in e, e
    t = pa.table({"goal": ["g"], "sol1": ["a"], "sol2": ["b"], "label": [9], "image": pa.array([b"\x00"], pa.binary())})
    write(t, tmp_path / "c" / "piqa" / "validation.parquet")
    e = one_error(run_eval(model_dir, tmp_path / "c", "piqa"))
    assert "piqa/validation.parquet row 1: doc_to_target (label) gives label 9" in e, e  # read past the binary column


def test_file_choice_and_missing_files(model_dir, tmp_path):
    # Both present: the JSONL file is read (its bad row is the error; the Parquet file is never opened).
    d = tmp_path / "both"
    (d / "piqa").mkdir(parents=True)
    (d / "piqa" / "validation.jsonl").write_text(json.dumps(dict(PIQA, label=5)) + "\n")
    (d / "piqa" / "validation.parquet").write_bytes(b"not parquet")
    e = one_error(run_eval(model_dir, d, "piqa"))
    assert "piqa/validation.jsonl row 1" in e, e
    # Without the JSONL file the Parquet one is read (and its damage named).
    (d / "piqa" / "validation.jsonl").unlink()
    e = one_error(run_eval(model_dir, d, "piqa"))
    assert "piqa/validation.parquet: not a readable Parquet file" in e, e
    # Shards: all of them or an error naming the missing one.
    d = tmp_path / "shards"
    write(pa.Table.from_pylist([PIQA]), d / "piqa" / "validation-00000-of-00002.parquet")
    e = one_error(run_eval(model_dir, d, "piqa"))
    assert str(d / "piqa" / "validation-00001-of-00002.parquet") + " is missing" in e, e
    # Nothing there: the JSONL path and the Parquet alternatives are named.
    e = one_error(run_eval(model_dir, tmp_path / "empty", "piqa"))
    assert str(tmp_path / "empty" / "piqa" / "validation.jsonl") + " not found" in e, e
    assert "validation.parquet" in e and "validation-00000-of-0000N.parquet" in e, e
