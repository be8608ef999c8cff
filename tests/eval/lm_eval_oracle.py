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

The leaderboard tasks (truthfulqa_mc1/mc2, winogrande, gsm8k, piqa, boolq, openbookqa) read the same local files
sft reads, <data_dir>/<task>/<split>.jsonl, already in the HF datasets' schema; their YAMLs are used unchanged (only
the data files are swapped). generate_until tasks run with batch size 1 (no padding) and the generated token ids are
recorded by wrapping HFLM._model_generate.

Usage: python lm_eval_oracle.py --model DIR --data_dir D --tasks t1,t2 --num_fewshot 0,5 --limit L --out out.json
        [--gen_kwargs max_gen_toks=64]
Writes {num_fewshot: {task: {"metrics": {...}, "samples": [{doc_id, arguments, lls, greedy, acc[, acc_norm]}]}}};
generate_until samples are {doc_id, arguments, resps, filtered: {filter: answer}, exact_match: {filter: 0/1}, tokens}.
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


# task -> (YAML under lm_eval/tasks, {HF split name: local file under <data_dir>/<task folder>})
LEADERBOARD_FILES = {
    "truthfulqa_mc1": ("truthfulqa/truthfulqa_mc1.yaml", {"validation": "validation.jsonl"}),
    "truthfulqa_mc2": ("truthfulqa/truthfulqa_mc2.yaml", {"validation": "validation.jsonl"}),
    "winogrande": ("winogrande/default.yaml", {"train": "train.jsonl", "validation": "validation.jsonl"}),
    "gsm8k": ("gsm8k/gsm8k.yaml", {"train": "train.jsonl", "test": "test.jsonl"}),
    "piqa": ("piqa/piqa.yaml", {"train": "train.jsonl", "validation": "validation.jsonl"}),
    "boolq": ("super_glue/boolq/default.yaml", {"train": "train.jsonl", "validation": "validation.jsonl"}),
    "openbookqa": ("openbookqa/openbookqa.yaml", {"train": "train.jsonl", "test": "test.jsonl"}),
}


def record_generations(lm, tok):
    """Wrap HFLM._model_generate to keep every generated id sequence, keyed by its (unpadded) context ids."""
    generated = {}
    original = lm._model_generate

    def wrapped(context, max_length, stop, **kwargs):
        out = original(context, max_length, stop, **kwargs)
        mask = kwargs.get("attention_mask")
        for i in range(out.shape[0]):
            ctx = context[i][mask[i].bool()] if mask is not None else context[i]
            generated[tuple(ctx.tolist())] = out[i, context.shape[1]:].tolist()
        return out

    lm._model_generate = wrapped
    return generated


def generation_samples(samples, generated, tok):
    """One row per document from lm-eval's per-filter samples of a generate_until task."""
    rows = {}
    for s in samples:
        ctx = s["arguments"][0][0]
        r = rows.setdefault(s["doc_id"], {"doc_id": s["doc_id"], "arguments": [[ctx, s["arguments"][0][1]]],
                                          "resps": s["resps"][0][0], "filtered": {}, "exact_match": {},
                                          "tokens": generated.get(tuple(tok(ctx)["input_ids"]))})
        r["filtered"][s["filter"]] = s["filtered_resps"][0]
        r["exact_match"][s["filter"]] = s["exact_match"]
    return [rows[k] for k in sorted(rows)]


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
    elif name in LEADERBOARD_FILES:
        yaml_path, splits = LEADERBOARD_FILES[name]
        cfg = load_yaml(TASKS_DIR / yaml_path)
        files = {}
        for split, fname in splits.items():
            path = data_dir / name.split("_mc")[0] / fname
            if path.exists():
                files[split] = str(path)
        if name == "openbookqa":  # no local validation file; lm-eval evaluates test and draws shots from train
            cfg.update(validation_split=None)
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
    ap.add_argument("--gen_kwargs", default=None)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "0")) or torch.get_num_threads())
    model = transformers.AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32).eval()
    tok = transformers.AutoTokenizer.from_pretrained(a.model)
    generative = "gsm8k" in a.tasks.split(",")
    lm = HFLM(pretrained=model, tokenizer=tok, device="cpu", batch_size=1 if generative else a.batch_size)
    generated = record_generations(lm, tok)
    out = {}
    for shots in [int(x) for x in a.num_fewshot.split(",")]:
        with tempfile.TemporaryDirectory() as tmp:
            tasks = [make_task(t, a.data_dir, tmp) for t in a.tasks.split(",")]
            res = lm_eval.simple_evaluate(model=lm, tasks=tasks, num_fewshot=shots, limit=a.limit, log_samples=True,
                                          fewshot_random_seed=1234, bootstrap_iters=0, gen_kwargs=a.gen_kwargs)
        per_task = {}
        for name, samples in res["samples"].items():
            if "filter" in samples[0] and "filtered_resps" in samples[0] and isinstance(samples[0]["resps"][0][0], str):
                metrics = {k: v for k, v in res["results"][name].items() if "," in k}
                per_task[name] = {"metrics": metrics, "samples": generation_samples(samples, generated, tok),
                                  "n_shot": res["n-shot"][name]}
                continue
            rows = []
            for s in sorted(samples, key=lambda s: s["doc_id"]):
                rows.append({"doc_id": s["doc_id"], "arguments": [list(x) for x in s["arguments"]],
                             "lls": [float(r[0][0]) for r in s["resps"]],
                             "greedy": [bool(r[0][1]) for r in s["resps"]], "acc": s["acc"],
                             **({"acc_norm": s["acc_norm"]} if "acc_norm" in s else {})})
            metrics = {k: v for k, v in res["results"][name].items() if "," in k}
            per_task[name] = {"metrics": metrics, "samples": rows, "n_shot": res["n-shot"][name]}
        out[str(shots)] = per_task
    Path(a.out).write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
