"""Reference run of lm-evaluation-harness (the venv's lm-eval 0.4.13, HF backend, CPU, float32) on LOCAL data.

lm-eval's own task YAMLs are loaded (tasks/mmlu/default/mmlu_<subject>.yaml, tasks/arc/arc_*.yaml,
tasks/hellaswag/hellaswag.yaml with its utils.process_docs), and only the dataset source is swapped: the local files
are converted to the schema of the HF datasets lm-eval normally downloads (cais/mmlu, allenai/ai2_arc,
Rowan/hellaswag, the same conversion their loading scripts do) and served through `dataset_path: json`.
Prompt formatting, few-shot sampling, tokenisation, scoring and metrics are lm-eval's.

Split mapping, as `sft eval` documents it: MMLU test + dev (first_n few-shot); ARC Dev file as the evaluated split;
HellaSwag val. With a local train file (ARC-*-Train.jsonl, hellaswag_train.jsonl) the YAML's own splits are kept
(train = few-shot pool; hellaswag has test_split null, so lm-eval passes the evaluated doc to the sampler: n+1 drawn,
the doc dropped). Without one, the few-shot pool is the evaluated split itself (fewshot_split == test_split: lm-eval
samples n+1 and drops the evaluated doc).

Usage: python lm_eval_oracle.py --model DIR --data_dir D --tasks t1,t2 --num_fewshot 0,5 --limit L --out out.json
Writes {num_fewshot: {task: {"metrics": {...}, "samples": [{doc_id, arguments, lls, greedy, acc[, acc_norm]}]}}}.
"""
import argparse
import csv
import json
import os
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


import torch  # noqa: E402
import transformers  # noqa: E402
import lm_eval  # noqa: E402
from lm_eval.api.task import ConfigurableTask  # noqa: E402
from lm_eval.models.huggingface import HFLM  # noqa: E402
from lm_eval.tasks._yaml_loader import load_yaml  # noqa: E402

TASKS_DIR = Path(lm_eval.__file__).parent / "tasks"


def write_jsonl(path, rows):
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


def mmlu_rows(csv_path, subject):
    # As the hendrycks_test loading script behind cais/mmlu: the file iterated as BINARY lines, each decoded and fed
    # to csv.reader, so a "\r\n" inside a quoted field stays "\r\n" (college_mathematics_dev.csv row 3).
    with open(csv_path, "rb") as f:
        return [{"question": r[0], "subject": subject, "choices": r[1:5], "answer": "ABCD".index(r[5])}
                for r in csv.reader(line.decode("utf-8") for line in f)]


def arc_rows(jsonl_path):  # allenai/ai2_arc schema
    out = []
    for line in Path(jsonl_path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        out.append({"id": d["id"], "question": d["question"]["stem"],
                    "choices": {"text": [c["text"] for c in d["question"]["choices"]],
                                "label": [c["label"] for c in d["question"]["choices"]]},
                    "answerKey": d["answerKey"]})
    return out


def hellaswag_rows(jsonl_path):  # Rowan/hellaswag schema (label is a string there)
    out = []
    for line in Path(jsonl_path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        d = json.loads(line)
        out.append({"ind": d["ind"], "activity_label": d["activity_label"], "ctx_a": d["ctx_a"], "ctx_b": d["ctx_b"],
                    "ctx": d["ctx"], "endings": d["endings"], "source_id": d["source_id"], "split": d["split"],
                    "split_type": d["split_type"], "label": str(d["label"])})
    return out


def make_task(name, data_dir, tmp):
    data_dir = Path(data_dir)
    if name.startswith("mmlu_"):
        subject = name[len("mmlu_"):]
        cfg = load_yaml(TASKS_DIR / "mmlu" / "default" / f"{name}.yaml")
        files = {}
        for split in ("test", "dev"):
            p = Path(tmp) / f"{name}_{split}.jsonl"
            write_jsonl(p, mmlu_rows(data_dir / "mmlu" / split / f"{subject}_{split}.csv", subject))
            files[split] = str(p)
    elif name in ("arc_easy", "arc_challenge"):
        cfg = load_yaml(TASKS_DIR / "arc" / f"{name}.yaml")
        base = "ARC-Easy" if name == "arc_easy" else "ARC-Challenge"
        p = Path(tmp) / f"{name}.jsonl"
        write_jsonl(p, arc_rows(data_dir / "arc" / f"{base}-Dev.jsonl"))
        files = {"test": str(p)}
        train = data_dir / "arc" / f"{base}-Train.jsonl"
        if train.exists():  # the YAML's own splits: train is the few-shot pool, no fewshot_split (eval_doc not passed)
            pt = Path(tmp) / f"{name}_train.jsonl"
            write_jsonl(pt, arc_rows(train))
            files["train"] = str(pt)
            cfg.update(validation_split=None)
        else:
            cfg.update(training_split=None, validation_split=None, test_split="test", fewshot_split="test")
    elif name == "hellaswag":
        cfg = load_yaml(TASKS_DIR / "hellaswag" / "hellaswag.yaml")
        p = Path(tmp) / "hellaswag.jsonl"
        write_jsonl(p, hellaswag_rows(data_dir / "hellaswag" / "hellaswag_val.jsonl"))
        train = data_dir / "hellaswag" / "hellaswag_train.jsonl"
        if train.exists():  # the YAML unchanged: train + validation, test_split null (so eval_doc IS passed)
            pt = Path(tmp) / "hellaswag_train.jsonl"
            write_jsonl(pt, hellaswag_rows(train))
            files = {"train": str(pt), "validation": str(p)}
        else:
            files = {"test": str(p)}
            cfg.update(training_split=None, validation_split=None, test_split="test", fewshot_split="test")
    else:
        raise SystemExit(f"unknown task {name}")
    cfg.pop("tag", None)
    cfg.update(dataset_path="json", dataset_name=None, dataset_kwargs={"data_files": files})
    return ConfigurableTask(config=cfg)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--data_dir", required=True)
    ap.add_argument("--tasks", required=True)
    ap.add_argument("--num_fewshot", default="0", help="comma list, e.g. 0,5")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--batch_size", type=int, default=8)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "0")) or torch.get_num_threads())
    model = transformers.AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32).eval()
    tok = transformers.AutoTokenizer.from_pretrained(a.model)
    lm = HFLM(pretrained=model, tokenizer=tok, device="cpu", batch_size=a.batch_size)
    out = {}
    for shots in [int(x) for x in a.num_fewshot.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            tasks = [make_task(t, a.data_dir, tmp) for t in a.tasks.split(",")]
            res = lm_eval.simple_evaluate(model=lm, tasks=tasks, num_fewshot=shots, limit=a.limit, log_samples=True,
                                          fewshot_random_seed=1234, bootstrap_iters=0)
        per_task = {}
        for name, samples in res["samples"].items():
            rows = []
            for s in sorted(samples, key=lambda s: s["doc_id"]):
                rows.append({"doc_id": s["doc_id"], "arguments": [list(x) for x in s["arguments"]],
                             "lls": [float(r[0][0]) for r in s["resps"]],
                             "greedy": [bool(r[0][1]) for r in s["resps"]], "acc": s["acc"],
                             **({"acc_norm": s["acc_norm"]} if "acc_norm" in s else {})})
            metrics = {k: v for k, v in res["results"][name].items() if "," in k}
            per_task[name] = {"metrics": metrics, "samples": rows}
        out[str(shots)] = per_task
    Path(a.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
