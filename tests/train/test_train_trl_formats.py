"""TRL's dataset formats through `sft train`'s flags (--dataset_format, --dataset_text_field, --completion_only_loss,
--assistant_only_loss, --template model) on tiny random models: every sample `sft train` trained on
(--debug_dump_batches, batch 1, one epoch) has the input ids and labels of trl 1.16.0's SFTTrainer for the same rows
and the same TRL settings (tests/data/test_trl_formats.py's harness: labels compared from position 1, since nothing
predicts the first token). JSON lines, Parquet and a `datasets` Arrow file; the eval file is read with the same options;
a forced format; bad rows and flags as one-line errors. No tolerances: token ids are integers."""
import json
import os
import random
import shutil
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "data"))
from test_trl_formats import (GEN_CHATML, chat_rows, eos_of, prompt_completions, split_rows, texts, trl_dataset,  # noqa: E402
                              with_template, write_rows)
from chat_fixtures import FIX, materialize  # noqa: E402  (tests/template, put on the path by test_trl_formats)
from train_test_util import make_tiny_model, read_log, run_sft  # noqa: E402


def model_folder(tok_folder, dest):
    """A tiny random Qwen2 whose vocabulary is the tokenizer's, with that folder's tokenizer files."""
    from transformers import AutoTokenizer
    make_tiny_model(str(dest), seed=4, vocab=len(AutoTokenizer.from_pretrained(str(tok_folder))))
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(Path(tok_folder) / f, Path(dest) / f)
    return Path(dest)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """name -> (model folder for sft, tokenizer-only folder for TRL). TRL gets the tokenizer files alone: next to a
    config.json of model_type qwen2, transformers 5's AutoTokenizer builds Qwen2Tokenizer, whose pipeline adds an NFC
    normalizer the tiny fixture's tokenizer.json does not have (real Qwen tokenizer.json files do have it)."""
    tmp = tmp_path_factory.mktemp("trl_train")
    tiny_tok = tmp / "tiny_tok"
    shutil.copytree(FIX / "train" / "tiny_tokenizer", tiny_tok)
    qwen3 = materialize("qwen3", tmp / "qwen3_tok")
    gen = with_template(qwen3, "gen_chatml_tok", GEN_CHATML)
    return {"tiny": (model_folder(tiny_tok, tmp / "tiny"), tiny_tok), "qwen3": (model_folder(qwen3, tmp / "qwen3"), qwen3),
            "gen_chatml": (model_folder(gen, tmp / "gen_chatml"), gen)}


def trained_samples(model, data, out, *flags):
    """(ids, labels) of every sample one epoch of `sft train` trained on, in dataset-independent (sorted) order."""
    dump = Path(out).parent / (Path(out).name + ".jsonl")
    res = run_sft(["--model_name_or_path", str(model), "--dataset_path", str(data), "--output_dir", str(out),
                   "--per_device_train_batch_size", "1", "--num_train_epochs", "1", "--learning_rate", "0",
                   "--save_strategy", "no", "--logging_steps", "1000", "--max_seq_length", "1024", "--threads", "2",
                   "--debug_dump_batches", str(dump), *flags])
    samples = []
    for line in open(dump):
        b = json.loads(line)
        assert b["B"] == 1
        samples.append((b["input_ids"], b["labels"]))
    return sorted(samples), res


def assert_same_as_trl(ours, trl):
    """Our labels mask position 0 always; TRL's may hold the id there (the shifted loss never reads it)."""
    assert len(ours) == len(trl)
    want = sorted((ids, [-100] + labels[1:]) for ids, labels in trl)
    assert ours == want


CASES = {
    # name: (model, rows builder, sft flags, TRL SFTConfig settings)
    "language_modeling": ("tiny", lambda eos: [{"content": t, "source": "x"} for t in texts(11, eos, 12) if t.strip()],
                          ["--dataset_text_field", "content"], {"dataset_text_field": "content"}),
    "prompt_completion": ("tiny", lambda eos: [r for r in prompt_completions(12, eos, 12) if r["completion"].strip()],
                          [], {}),
    "prompt_completion_all_tokens": ("tiny", lambda eos: [r for r in prompt_completions(13, eos, 12)
                                                          if r["completion"].strip()],
                                     ["--completion_only_loss", "False"], {"completion_only_loss": False}),
    "conversational_every_token": ("qwen3", lambda eos: chat_rows(14, 8), ["--template", "model",
                                   "--assistant_only_loss", "False"], {"assistant_only_loss": False}),
    "conversational_assistant_only": ("gen_chatml", lambda eos: chat_rows(15, 8), ["--template", "model",
                                      "--assistant_only_loss", "True"], {"assistant_only_loss": True}),
    "conversational_prompt_completion": ("qwen3", lambda eos: split_rows(16, 10), ["--template", "model"], {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_each_format_trains_on_trls_samples(models, case, suffix, tmp_path):
    family, build, flags, trl_settings = CASES[case]
    model, tok = models[family]
    rows = build(eos_of(model))
    data = write_rows(rows, tmp_path / ("rows" + suffix))
    ours, _ = trained_samples(model, data, tmp_path / "out", *flags)
    assert_same_as_trl(ours, trl_dataset(tok, rows, **trl_settings))


def test_arrow_file_and_eval_file_use_the_same_options(models, tmp_path):
    """A `datasets` Arrow file with the text under another field, and an eval file in the same format: both read with
    --dataset_text_field (the eval loss is logged, so the eval file was read and scored)."""
    model, tok = models["tiny"]
    rows = [{"body": t} for t in texts(21, eos_of(model), 12) if t.strip()]
    data = write_rows(rows, tmp_path / "rows.arrow")
    eval_rows = [{"body": t} for t in texts(22, eos_of(model), 4) if t.strip()]
    evalf = write_rows(eval_rows, tmp_path / "eval.jsonl")
    ours, _ = trained_samples(model, data, tmp_path / "out", "--dataset_text_field", "body", "--eval_dataset_path",
                              str(evalf), "--eval_strategy", "epoch")
    assert_same_as_trl(ours, trl_dataset(tok, rows, dataset_text_field="body"))
    assert any("eval_loss" in r for r in read_log(str(tmp_path / "out")))


def test_forced_format(models, tmp_path):
    """A file with "text", "prompt" and "completion": auto detection takes prompt-completion (TRL's rule);
    --dataset_format language_modeling trains on the text field instead, as TRL does on a text-only dataset."""
    model, tok = models["tiny"]
    eos = eos_of(model)
    rng = random.Random(3)
    rows = [{"text": t, "prompt": "p%d" % rng.randint(0, 99), "completion": "c%d" % i}
            for i, t in enumerate(t for t in texts(23, eos, 10) if t.strip())]
    data = write_rows(rows, tmp_path / "rows.jsonl")
    forced, _ = trained_samples(model, data, tmp_path / "forced", "--dataset_format", "language_modeling")
    assert_same_as_trl(forced, trl_dataset(tok, [{"text": r["text"]} for r in rows]))
    auto, _ = trained_samples(model, data, tmp_path / "auto")
    assert_same_as_trl(auto, trl_dataset(tok, [{"prompt": r["prompt"], "completion": r["completion"]} for r in rows]))


@pytest.mark.parametrize("rows,flags,message", [
    ([{"text": "abc"}, {"txt": "x"}], [], "rows.jsonl line 2: missing \"text\""),
    ([{"prompt": "a", "completion": 3}], [], "rows.jsonl line 1: \"completion\" must be a string, got number"),
    ([{"prompt": "a", "completion": "b"}], ["--dataset_format", "sharegpt"],
     "--dataset_format: expected one of auto, alpaca, language_modeling, prompt_completion, conversational, got "
     "'sharegpt'"),
    ([{"text": "abc"}], ["--dataset_text_field", "body"],
     "rows.jsonl line 1: no known fields: expected \"instruction\" and \"output\" (alpaca), \"messages\" "
     "(conversational), \"prompt\" and \"completion\" (prompt-completion) or \"body\" (language modelling)"),
])
def test_bad_rows_and_flags_are_one_line_errors(models, tmp_path, rows, flags, message):
    data = write_rows(rows, tmp_path / "rows.jsonl")
    out = tmp_path / "out"
    res = run_sft(["--model_name_or_path", str(models["tiny"][0]), "--dataset_path", str(data), "--output_dir", str(out),
                   "--max_steps", "1", *flags], check=False)
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("sft: error: ") and message in lines[0], lines
    assert not (out / "model.safetensors").exists()
