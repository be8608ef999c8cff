"""TRL's dataset formats in the data layer (reader + trl_formats.cpp + templates, driven by data_tool) against
trl 1.16.0's own SFTTrainer: for the same rows, our input ids equal the `input_ids` of SFTTrainer's prepared
train_dataset and our labels equal its `labels` (position 0 excepted: nothing predicts the first token, so we always
mask it; TRL leaves it equal to the id when every token trains — the shifted loss never reads it).
Formats and switches:
  - language modelling ("text", and dataset_text_field): tiny BPE, Qwen3, Llama 3 (a BOS-adding post-processor);
  - prompt-completion, completion_only_loss True (TRL's default for it) and False: same tokenizers;
  - conversational "messages": Qwen3's own template (--template model) with assistant_only_loss False (TRL's default:
    every token) and a ChatML template with {% generation %} markers with assistant_only_loss True; our built-in ChatML
    against TRL given the equivalent Jinja ChatML;
  - conversational prompt-completion: the same templates, completion_only_loss True/False, assistant_only_loss.
Rows are random texts and conversations full of boundary cases (tests/template/chat_fixtures.py: leading newlines,
CRLF, combining marks, the eos text inside and at the end of a text, ':' before a completion starting with a letter).
Every file type reads the same rows the same: the JSONL results are compared with the same rows as Parquet (several
row groups) and as a `datasets` save_to_disk Arrow file. No tolerances: token ids are integers."""
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "template"))
from chat_fixtures import FIX, conversations, materialize, random_text  # noqa: E402

BUILD = os.environ.get("SFT_BUILD_DIR")
TOOL = Path(BUILD or ".") / "tests" / "data_tool"

CHATML = ("{%- for m in messages %}{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>' + '\\n' }}"
          "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")
GEN_CHATML = ("{%- for m in messages %}{%- if m['role'] == 'assistant' %}{{- '<|im_start|>assistant\\n' }}"
              "{%- generation %}{{- m['content'] + '<|im_end|>' }}{%- endgeneration %}{{- '\\n' }}"
              "{%- else %}{{- '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>' + '\\n' }}{%- endif %}"
              "{%- endfor %}{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}")


def with_template(folder, name, template):
    out = folder.parent / name
    shutil.copytree(folder, out)
    cfg = json.loads((out / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg["chat_template"] = template
    (out / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False), encoding="utf-8")
    return out


@pytest.fixture(scope="module")
def folders():
    if not BUILD:
        pytest.skip("SFT_BUILD_DIR not set (run through ctest)")
    tmp = Path(tempfile.mkdtemp(prefix="sft_trl_formats_"))
    tiny = tmp / "tiny"
    shutil.copytree(FIX / "train" / "tiny_tokenizer", tiny)
    qwen3 = materialize("qwen3", tmp / "qwen3")
    out = {"tiny": tiny, "qwen3": qwen3, "llama3": materialize("llama3", tmp / "llama3"),
           "chatml": with_template(qwen3, "chatml", CHATML), "gen_chatml": with_template(qwen3, "gen_chatml", GEN_CHATML)}
    yield out
    shutil.rmtree(tmp, ignore_errors=True)


_trl = {}


def trl_dataset(folder, rows, **config):
    """SFTTrainer(...).train_dataset on these rows: [(input_ids, labels)]."""
    import torch
    from datasets import Dataset
    from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM
    from trl import SFTConfig, SFTTrainer
    tok = AutoTokenizer.from_pretrained(str(folder))
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(Qwen2Config(vocab_size=len(tok), hidden_size=8, intermediate_size=16, num_hidden_layers=1,
                                         num_attention_heads=2, num_key_value_heads=1))
    args = SFTConfig(output_dir=tempfile.mkdtemp(prefix="sft_trl_out_"), report_to="none", max_length=None,
                     use_cpu=True, **config)
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tok)
    shutil.rmtree(args.output_dir, ignore_errors=True)
    return [(list(r["input_ids"]), list(r["labels"])) for r in trainer.train_dataset]


def write_rows(rows, path):
    path = Path(path)
    if path.suffix == ".jsonl":
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    elif path.suffix == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq
        pq.write_table(pa.Table.from_pylist(rows), str(path), row_group_size=7)
    else:  # .arrow: what `datasets` writes (save_to_disk: an Arrow IPC stream)
        from datasets import Dataset
        tmp = path.parent / (path.stem + "_ds")
        Dataset.from_list(rows).save_to_disk(str(tmp))
        shutil.copy(next(tmp.glob("data-*.arrow")), path)
    return path


def ours(folder, rows, template, tmp_path, suffix=".jsonl", **flags):
    path = write_rows(rows, tmp_path / ("rows" + suffix))
    args = [str(TOOL), str(folder), str(path), template]
    for k, v in flags.items():
        args += ["--" + k, str(int(v)) if isinstance(v, bool) else str(v)]
    res = subprocess.run(args, capture_output=True, text=True, encoding="utf-8")
    assert res.returncode == 0, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines()]


def assert_same(got, want, rows, fmt):
    assert len(got) == len(want) == len(rows)
    for g, (ids, labels), row in zip(got, want, rows):
        assert g["format"] == fmt, (g["origin"], g["format"])
        assert g["ids"] == ids, row
        assert g["labels"][0] == -100
        assert g["labels"][1:] == labels[1:], row


def texts(seed, eos, n=40):
    rng = random.Random(seed)
    out = [random_text(rng) for _ in range(n)]
    # (A row of one token, "" or the eos alone, trains nothing: we refuse it as a row without targets, TRL keeps it.)
    out = [t for t in out if t] + ["ends with the eos" + eos, "eos " + eos + " inside", "  ", "### Response:The car"]
    return out


def prompt_completions(seed, eos, n=40):
    rng = random.Random(seed)
    rows = [{"prompt": random_text(rng), "completion": random_text(rng)} for _ in range(n)]
    rows += [{"prompt": "### Response:", "completion": "The car"}, {"prompt": "Q: 2+2=", "completion": "4" + eos},
             {"prompt": "say", "completion": " hi"}, {"prompt": "", "completion": "x"}, {"prompt": "p\n", "completion": ""}]
    return rows


def eos_of(folder):
    return json.loads((Path(folder) / "tokenizer_config.json").read_text())["eos_token"]


@pytest.mark.parametrize("family", ["tiny", "qwen3", "llama3"])
def test_language_modelling(folders, family, tmp_path):
    rows = [{"text": t} for t in texts(1, eos_of(folders[family]))]
    assert_same(ours(folders[family], rows, "alpaca", tmp_path), trl_dataset(folders[family], rows), rows,
                "language modelling")
    # dataset_text_field, with other string fields around it.
    rows = [{"content": t, "source": "x"} for t in texts(2, eos_of(folders[family]), 10)]
    got = ours(folders[family], rows, "alpaca", tmp_path, dataset_text_field="content")
    assert_same(got, trl_dataset(folders[family], rows, dataset_text_field="content"), rows, "language modelling")


@pytest.mark.parametrize("family", ["tiny", "qwen3", "llama3"])
@pytest.mark.parametrize("completion_only", [True, False])
def test_prompt_completion(folders, family, completion_only, tmp_path):
    rows = prompt_completions(3, eos_of(folders[family]))
    got = ours(folders[family], rows, "alpaca", tmp_path, completion_only_loss=completion_only)
    assert_same(got, trl_dataset(folders[family], rows, completion_only_loss=completion_only), rows,
                "prompt-completion")
    if completion_only:  # the merged boundary token belongs to the completion, as in TRL
        g = next(x for x, r in zip(got, rows) if r["prompt"] == "### Response:")
        assert g["labels"][-3:] != [-100] * 3


def chat_rows(seed, n=30):
    return [{"messages": c} for c in conversations(seed, "qwen3", n) if c[-1]["role"] == "assistant"]


def split_rows(seed, n=40):
    rows = []
    for c in conversations(seed, "qwen3", n):
        if c[-1]["role"] == "assistant":
            rows.append({"prompt": c[:-1], "completion": c[-1:]})
    return rows


def chatml_exact(rows):
    """Rows on which our built-in ChatML equals whole-text encoding: it encodes an assistant reply apart from its
    "<|im_start|>assistant\n" header (so the mask boundary is exact and the header ends as at inference), which
    differs from encoding the rendered transcript whole only when the reply starts with whitespace holding a newline
    (the header's "\n" then merges with it). docs/arch/data.md states this; --template model is exact for all."""
    def reply_ok(m):
        return m["role"] != "assistant" or not re.match(r"\s*[\r\n]", m["content"])
    keep = [r for r in rows if all(reply_ok(m) for m in r.get("messages", []) + r.get("prompt", []) + r.get("completion", []))]
    assert len(keep) >= len(rows) // 2
    return keep


@pytest.mark.parametrize("folder,template,assistant_only", [
    ("qwen3", "model", False), ("gen_chatml", "model", True), ("chatml", "chatml", False),
    ("gen_chatml", "chatml", True)])
def test_conversational(folders, folder, template, assistant_only, tmp_path):
    rows = chat_rows(4) if template == "model" else chatml_exact(chat_rows(4))
    got = ours(folders[folder], rows, template, tmp_path, assistant_only_loss=assistant_only)
    assert_same(got, trl_dataset(folders[folder], rows, assistant_only_loss=assistant_only), rows, "conversational")


@pytest.mark.parametrize("folder,template,completion_only,assistant_only", [
    ("qwen3", "model", True, False), ("qwen3", "model", False, False), ("gen_chatml", "model", True, True),
    ("gen_chatml", "model", False, True), ("chatml", "chatml", True, False), ("gen_chatml", "chatml", False, True)])
def test_conversational_prompt_completion(folders, folder, template, completion_only, assistant_only, tmp_path):
    rows = split_rows(5) if template == "model" else chatml_exact(split_rows(5))
    got = ours(folders[folder], rows, template, tmp_path, completion_only_loss=completion_only,
               assistant_only_loss=assistant_only)
    want = trl_dataset(folders[folder], rows, completion_only_loss=completion_only, assistant_only_loss=assistant_only)
    assert_same(got, want, rows, "conversational prompt-completion")


@pytest.mark.parametrize("suffix", [".parquet", ".arrow"])
def test_parquet_and_arrow_read_as_jsonl(folders, suffix, tmp_path):
    cases = [
        ([{"text": t} for t in texts(6, eos_of(folders["tiny"]), 30)], "tiny", "alpaca"),
        (prompt_completions(7, eos_of(folders["tiny"]), 30), "tiny", "alpaca"),
        (chat_rows(8, 30), "qwen3", "model"),
        (split_rows(9, 30), "qwen3", "model"),
        ([{"instruction": random_text(random.Random(i)), "input": "" if i % 2 else "in", "output": "out %d" % i}
          for i in range(20)], "qwen3", "alpaca"),
    ]
    for rows, family, template in cases:
        (tmp_path / "j").mkdir(exist_ok=True)
        (tmp_path / "p").mkdir(exist_ok=True)
        want = ours(folders[family], rows, template, tmp_path / "j")
        got = ours(folders[family], rows, template, tmp_path / "p", suffix=suffix)
        assert [(g["format"], g["ids"], g["labels"]) for g in got] == [(w["format"], w["ids"], w["labels"]) for w in want]
        if suffix == ".parquet":  # 7 rows per row group: row 10 is the third row of the second group
            assert got[9]["origin"].endswith("rows.parquet row group 2 row 3 (row 10)"), got[9]["origin"]
        else:
            assert got[9]["origin"].endswith(" row 10 (row 10)") and "record batch 1" in got[9]["origin"]
