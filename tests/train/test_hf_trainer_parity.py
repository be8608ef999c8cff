"""The whole `sft train` pipeline against the seed's own stack: transformers' `Trainer` (tests/train/hf_peer.py) on the
same alpaca rows in sft's order. The peer tokenises the rows itself (alpaca prompt, response-only loss, truncation)
and checks sft's samples against its own ids and masks; it then trains with HF's padded collator + attention mask,
its linear schedule, torch AdamW (eps 1e-8), clipping at 1.0 and gradient accumulation normalised by the step's
target tokens. sft trains padding-free (its default), regrouping each step's rows by length.

Tiny random Llama (SmolLM2's family) with the tiny BPE tokenizer, fp32, 26 optimizer steps of 2 rows x accumulation 2
(the first epoch's 24th step takes its last, single micro-batch; steps 25-26 follow epoch 1's order), lr 1e-3.

Tolerance: per-step loss within 1e-4 relative (the issue's bound), per-step gradient norm within 1e-3 relative. Both
sides compute in fp32 with different kernels and summation orders (oneDNN vs torch, padding-free vs padded rows,
sft's regrouped micro-batches): the first step's losses agree to ~1e-7 and the gap grows only as far as AdamW lets
rounding-level gradient differences move the weights (a coordinate with a near-zero gradient can move ~lr = 1e-3
apart), which the loss feels far below 1e-4 and a gradient norm somewhat more."""
import pytest

from hf_peer import alpaca_samples, check_samples, read_dump, train
from train_test_util import DATASET, make_tiny_model, read_log, run_sft

STEPS, BATCH, ACCUM, LR, MAX_LEN = 26, 2, 2, 1e-3, 224


def test_sft_train_follows_hf_trainer(tmp_path):
    from transformers import AutoTokenizer
    base = make_tiny_model(str(tmp_path / "base"), family="llama")
    out, dump = str(tmp_path / "out"), str(tmp_path / "batches.jsonl")
    run_sft(["--model_name_or_path", base, "--dataset_path", DATASET, "--output_dir", out, "--max_steps", str(STEPS),
             "--per_device_train_batch_size", str(BATCH), "--gradient_accumulation_steps", str(ACCUM),
             "--learning_rate", str(LR), "--lr_scheduler_type", "linear", "--adam_epsilon", "1e-8",
             "--max_grad_norm", "1.0", "--logging_steps", "1", "--save_strategy", "no",
             "--max_seq_length", str(MAX_LEN), "--seed", "3", "--threads", "2", "--debug_dump_batches", dump])
    samples = alpaca_samples(DATASET, AutoTokenizer.from_pretrained(base), MAX_LEN)
    epochs, steps, dumped = read_dump(dump)
    check_samples(samples, dumped)  # template, tokenisation and loss mask equal the HF tokenizer's
    assert len(dumped) == len(samples) and sorted(epochs) == [0, 1]
    hf = train("hf", base, samples, epochs, steps, STEPS, BATCH, ACCUM, LR, bf16=False, threads=2,
               out_dir=str(tmp_path / "hf"))
    ours = [r for r in read_log(out) if "loss" in r]
    assert [r["step"] for r in ours] == [r["step"] for r in hf["steps"]] == list(range(1, STEPS + 1))
    worst = 0.0
    for a, b in zip(ours, hf["steps"]):
        assert a["loss"] == pytest.approx(b["loss"], rel=1e-4), (a, b)
        assert a["grad_norm"] == pytest.approx(b["grad_norm"], rel=1e-3), (a, b)
        worst = max(worst, abs(a["loss"] - b["loss"]) / b["loss"])
        assert a["num_tokens"] == b["tokens"]  # the same real tokens each step
    print(f"worst per-step loss gap vs HF Trainer: {worst:.2e} relative")
    assert ours[-1]["loss"] < ours[0]["loss"]  # it trained
