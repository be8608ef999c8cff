"""--padding_free at 2 ranks (`mpirun --oversubscribe -np 2`, label `parallel`): padding-free against padded on the
same global batches, tiny random Qwen2 / Llama / Qwen3, full fine-tuning and LoRA with dropout 0.1 on every linear.

With padding-free micro-batches the ranks' shares are balanced by real tokens (train/row_balance.h), so a rank's
micro-batches may hold other rows than in the padded run: the step's gradient is the same token-normalised sum, in
another fp32 order, and the LoRA dropout masks follow each token (its sample and offset), not the rank or micro-batch
that trains it. Tolerances as in tests/train/test_padding_free.py (and why adam_epsilon is 1e-6 there): per-step loss
and grad norm <= 1e-6 relative, final weights <= 1e-5 max-abs (fp32). Last, 2 ranks padding-free with LoRA dropout against 1 rank padding-free: the
same masks at any world size (the existing 2-rank vs 1-rank tolerance, test_data_parallel.py: 1e-4 relative)."""
import os
import sys

import numpy as np
import pytest
from safetensors.numpy import load_file

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "train"))
from test_data_parallel import MPIRUN, mpirun  # noqa: E402
from train_test_util import make_tiny_model, read_log, run_sft, subset_dataset  # noqa: E402

LORA = ("--use_peft", "True", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0.1",
        "--lora_target_modules", "all-linear")


@pytest.fixture(autouse=True)
def mpirun_installed():
    if MPIRUN is None:
        pytest.fail("mpirun not found: install openmpi-bin (scripts/setup.sh does)")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("pfr")
    return {"rows": subset_dataset(str(d / "rows30.json"), 30),
            **{f: make_tiny_model(str(d / f), seed=5, family=f) for f in ("qwen2", "llama", "qwen3")}}


def args(base, rows, out, per_device, padding_free, extra):
    # 30 rows (those with targets left at 160 tokens), global micro-batches of 4 rows, accumulation 3: 2 updates an
    # epoch, the second taking the remainder; 3 epochs.
    return ["--model_name_or_path", base, "--dataset_path", rows, "--output_dir", out,
            "--per_device_train_batch_size", str(per_device), "--gradient_accumulation_steps", "3",
            "--num_train_epochs", "3", "--learning_rate", "2e-3", "--adam_epsilon", "1e-6", "--logging_steps", "1",
            "--save_strategy", "no",
            "--max_seq_length", "160", "--seed", "9", "--padding_free", padding_free, *extra]


def weights(out):
    f = "adapter_model.safetensors" if os.path.exists(os.path.join(out, "adapter_model.safetensors")) else \
        "model.safetensors"
    return load_file(os.path.join(out, f))


def assert_same(a, b, rel, weight_abs):
    la, lb = read_log(a), read_log(b)
    assert [r["step"] for r in la] == [r["step"] for r in lb] and len(la) >= 6
    for ra, rb in zip(la, lb):
        for key in ("loss", "grad_norm"):
            assert ra[key] == pytest.approx(rb[key], rel=rel, abs=0), (key, ra, rb)
    wa, wb = weights(a), weights(b)
    worst = max(float(np.max(np.abs(wa[k].astype(np.float64) - wb[k]))) for k in wa)
    assert worst <= weight_abs, worst


@pytest.mark.parametrize("family", ["qwen2", "llama", "qwen3"])
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_two_ranks_padding_free_equals_padded(tmp_path, data, family, lora):
    extra = LORA if lora else ()
    pf, padded = str(tmp_path / "pf"), str(tmp_path / "padded")
    res = mpirun(2, args(data[family], data["rows"], pf, 2, "True", extra))
    assert "0.0% of the positions computed were padding" in res.stdout
    res = mpirun(2, args(data[family], data["rows"], padded, 2, "False", extra))
    assert "0.0% of the positions computed were padding" not in res.stdout
    assert_same(pf, padded, 1e-6, 1e-5)


def test_lora_dropout_masks_do_not_depend_on_the_world_size(tmp_path, data):
    two, one = str(tmp_path / "two"), str(tmp_path / "one")
    mpirun(2, args(data["qwen2"], data["rows"], two, 2, "True", LORA))
    run_sft(args(data["qwen2"], data["rows"], one, 4, "True", (*LORA, "--threads", "2")))
    assert_same(two, one, 1e-4, 1e-5)
