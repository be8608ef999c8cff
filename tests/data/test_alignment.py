"""The whole data pipeline (C++ reader + templates + our tokenizer, driven by data_tool) against the reference:
HF `tokenizers` on the Qwen3 tokenizer fixture, with the prompt strings written out here from the brief.

Checks, on the 300 bundled demo rows (alpaca, response-only and train_on_inputs) and on chat_sample.jsonl (chatml):
  ids    == tokenizers.encode(prompt) + tokenizers.encode(output) + [eos]    (exact)
  labels == -100 on the prompt (and on token 0), the ids elsewhere          (exact)
and that a packed epoch from the loader keeps every sample intact with positions restarting per document.
No tolerances: token ids are integers and must match exactly.
"""
import json
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from tokenizers import Tokenizer

SRC = Path(os.environ.get("SFT_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BUILD = Path(os.environ.get("SFT_BUILD_DIR", SRC / "build"))
TOOL = BUILD / "tests" / "data_tool"
FIXTURE = SRC / "tests" / "fixtures" / "tokenizers" / "qwen3"
DEMO = SRC / "data" / "alpaca_demo.json"
CHAT = SRC / "tests" / "fixtures" / "data" / "chat_sample.jsonl"

WITH_INPUT = ("Below is an instruction that describes a task, paired with an input that provides further context. "
              "Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n"
              "### Input:\n{input}\n\n### Response:")
NO_INPUT = ("Below is an instruction that describes a task. Write a response that appropriately completes the "
            "request.\n\n### Instruction:\n{instruction}\n\n### Response:")


@pytest.fixture(scope="module")
def tok_dir():
    out = Path(tempfile.mkdtemp(prefix="sft_data_pytest_"))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if (FIXTURE / name).exists():
            shutil.copy(FIXTURE / name, out / name)
            continue
        for ext, cmd in ((".zst", ["zstd", "-dc"]), (".xz", ["xz", "-dc"]), (".gz", ["gzip", "-dc"])):
            packed = FIXTURE / (name + ext)
            if packed.exists():
                with open(out / name, "wb") as f:
                    subprocess.run(cmd + [str(packed)], stdout=f, check=True)
                break
    assert (out / "tokenizer.json").exists(), f"missing tokenizer fixture in {FIXTURE}"
    yield out
    shutil.rmtree(out, ignore_errors=True)


@pytest.fixture(scope="module")
def hf(tok_dir):
    return Tokenizer.from_file(str(tok_dir / "tokenizer.json"))


_tool_cache = {}


def run_tool(*args):
    """Runs data_tool once per distinct argument list (each run loads the tokenizer, the slow part)."""
    key = tuple(map(str, args))
    if key not in _tool_cache:
        _tool_cache[key] = _run_tool(*args)
    return _tool_cache[key]


def _run_tool(*args):
    assert TOOL.exists(), f"{TOOL} not built"
    res = subprocess.run([str(TOOL), *map(str, args)], capture_output=True, text=True, check=True)
    return [json.loads(line) for line in res.stdout.splitlines()]


def enc(hf, text):
    return hf.encode(text, add_special_tokens=False).ids


def eos_id(hf, tok_dir):
    cfg = json.loads((tok_dir / "tokenizer_config.json").read_text())
    eos = cfg["eos_token"]
    eos = eos["content"] if isinstance(eos, dict) else eos
    return hf.token_to_id(eos)


@pytest.mark.parametrize("train_on_inputs", [False, True])
def test_alpaca_demo_matches_hf_tokenizers(tok_dir, hf, train_on_inputs):
    rows = json.loads(DEMO.read_text(encoding="utf-8"))
    got = run_tool(tok_dir, DEMO, "alpaca", *(["--train_on_inputs"] if train_on_inputs else []))
    assert len(got) == len(rows) == 300
    eos = eos_id(hf, tok_dir)
    for row, sample in zip(rows, got):
        prompt = (WITH_INPUT if row["input"] else NO_INPUT).format(**row)
        p, r = enc(hf, prompt), enc(hf, row["output"])
        assert sample["ids"] == p + r + [eos], sample["origin"]
        if train_on_inputs:
            expect = [-100] + (p + r + [eos])[1:]
        else:
            expect = [-100] * len(p) + r + [eos]
        assert sample["labels"] == expect, sample["origin"]


def test_chatml_matches_hf_tokenizers(tok_dir, hf):
    rows = [json.loads(line) for line in CHAT.read_text(encoding="utf-8").splitlines() if line.strip()]
    got = run_tool(tok_dir, CHAT, "chatml")
    assert len(got) == len(rows)
    im_start, im_end = hf.token_to_id("<|im_start|>"), hf.token_to_id("<|im_end|>")
    for row, sample in zip(rows, got):
        ids, labels = [], []
        for m in row["messages"]:
            if m["role"] == "assistant":
                head, body = [im_start] + enc(hf, "assistant\n"), enc(hf, m["content"]) + [im_end]
                ids += head + body + enc(hf, "\n")
                labels += [-100] * len(head) + body + [-100]
            else:
                part = [im_start] + enc(hf, m["role"] + "\n" + m["content"]) + [im_end] + enc(hf, "\n")
                ids += part
                labels += [-100] * len(part)
        assert sample["ids"] == ids, sample["origin"]
        assert sample["labels"] == labels, sample["origin"]
        # The same transcript tokenized whole by HF (special tokens matched in the text) gives the same ids.
        text = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in row["messages"])
        assert hf.encode(text, add_special_tokens=False).ids == ids, sample["origin"]


def test_packed_epoch_keeps_samples_intact(tok_dir, hf):
    samples = run_tool(tok_dir, DEMO, "alpaca")
    by_ids = {}
    for s in samples:
        by_ids.setdefault(tuple(s["ids"]), []).append(s)
    batches = run_tool(tok_dir, DEMO, "alpaca", "--loader", 4, 1024, 1, 7)
    seen = 0
    for b in batches:
        T = b["T"]
        for r in range(b["B"]):
            row = slice(r * T, (r + 1) * T)
            ids, pos, doc, lab = (b[k][row] for k in ("input_ids", "position_ids", "doc_ids", "labels"))
            t = 0
            while t < T and doc[t] != -1:
                d = doc[t]
                end = t
                while end < T and doc[end] == d:
                    end += 1
                assert pos[t:end] == list(range(end - t))          # positions restart per document
                assert lab[t] == -100                              # nothing predicts a document's first token
                key = tuple(ids[t:end])
                assert key in by_ids                               # a whole, unmodified sample
                assert lab[t:end] == by_ids[key][0]["labels"]
                seen += 1
                t = end
            assert all(x == -1 for x in doc[t:])                   # then only padding
    assert seen == len(samples)  # max_seq_length 1024 truncates none of the demo rows


@pytest.mark.parametrize("n,batch,seed,max_len", [(1000, 4, 11, 500), (37, 4, 3, 5), (6, 4, 1, 9), (250, 2, 5, 3)])
def test_length_grouping_matches_transformers(n, batch, seed, max_len):
    """Our group_by_length order equals transformers' get_length_grouped_indices when torch.randperm returns our
    permutation (the only random part); small max_len values force many ties (stable sort, first argmax)."""
    import random

    import torch
    from transformers import trainer_pt_utils

    rnd = random.Random(seed)
    lengths = [rnd.randint(1, max_len) for _ in range(n)]
    got = run_tool("--length-grouped", batch, seed, ",".join(map(str, lengths)))[0]
    perm = got["perm"]
    assert sorted(perm) == list(range(n))
    real_randperm = torch.randperm
    try:
        torch.randperm = lambda size, generator=None: torch.tensor(perm)
        expect = trainer_pt_utils.get_length_grouped_indices(lengths, batch)
    finally:
        torch.randperm = real_randperm
    assert got["order"] == expect


@pytest.mark.parametrize("seed,terminator", [(1, "\r\n"), (2, "\n"), (3, "\r\n")])
def test_csv_records_match_python_csv(tmp_path, seed, terminator):
    """RFC 4180 reader vs Python's csv module on random fields full of commas, quotes, CR/LF, spaces and non-ASCII:
    what csv.writer writes, our parser must read back exactly as csv.reader does (and as the fields were)."""
    import csv
    import random

    rnd = random.Random(seed)
    alphabet = ['a', 'b', ' ', ',', '"', '\n', '\r\n', 'é', '€', '😀', "'", ';', '\t']
    rows = [[''.join(rnd.choice(alphabet) for _ in range(rnd.randint(0, 12))) for _ in range(4)] for _ in range(300)]
    path = tmp_path / "random.csv"
    with open(path, "w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator=terminator).writerows(rows)
    with open(path, newline="", encoding="utf-8") as f:
        expect = list(csv.reader(f))
    assert expect == rows
    got = run_tool("--csv-records", path)[0]
    assert [r["fields"] for r in got] == expect
    assert all(r["error"] == "" for r in got)
