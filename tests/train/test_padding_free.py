"""--padding_free True (each micro-batch's samples end to end in one row) against --padding_free False (right-padded
rows): the same samples per micro-batch and per optimizer step, the same loss normalisation, the same LoRA dropout
masks (keyed by each token's sample and offset), so the same training up to fp32 rounding.

Cases: tiny random Qwen2 (biases, tied head), Llama (no biases) and Qwen3 (q/k norms), full fine-tuning and LoRA with
dropout 0.1 on every linear; 10 optimizer steps of 4 rows x accumulation 2 (the step's rows regrouped by length),
lr 1e-3, with an epoch remainder; plus one run per other path (no accumulation with --group_by_length, gradient
checkpointing, packing bfd, validation loss) and bf16.

Tolerances (fp32): per-step loss and grad norm within 1e-6 relative, final weights within 1e-5 max-abs. Both layouts
run the same kernels on the same values; only the token count of each gemm (the padding rows) differs, which
changes fp32 summation order inside the weight-gradient gemms (K = tokens): step 1's gradient norms differ by ~1e-8
relative. AdamW turns that into update differences of ~lr x 1e-7 for gradients well above eps; a coordinate whose
gradient is a cancellation down to rounding level can flip sign between two summation orders and, with eps 1e-8,
move ~lr the other way (seen: 1.2e-4 on one Qwen3 o_proj weight, losses still 1e-8 apart). So these runs use
adam_epsilon 1e-6: such coordinates then move ~lr x g / eps, and the weights measure the computation (seen <= 2e-6)
while the grad norms check every step's gradient. bf16: 1e-4 relative on losses
(a 1e-7 change of an fp32 activation can move its bf16 rounding by one ulp, 2^-8 relative, on a few elements) and
1e-3 max-abs on the adapter weights (AdamW moves a coordinate by up to ~lr a step whatever its gradient's size, so a
near-zero gradient whose bf16 rounding differs can put it ~lr = 1e-3 apart; seen 2.3e-4)."""
import filecmp
import os
import shutil

import numpy as np
import pytest
from safetensors.numpy import load_file

from train_test_util import DATASET, make_tiny_model, read_log, run_sft

STEPS = 10


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    d = tmp_path_factory.mktemp("pf_bases")
    return {f: make_tiny_model(str(d / f), family=f) for f in ("qwen2", "llama", "qwen3")}


def train(base, out, padding_free, extra=()):
    res = run_sft(["--model_name_or_path", base, "--dataset_path", DATASET, "--output_dir", out,
                   "--max_steps", str(STEPS), "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2",
                   "--learning_rate", "1e-3", "--adam_epsilon", "1e-6", "--lr_scheduler_type", "linear",
                   "--logging_steps", "1",
                   "--save_strategy", "no", "--max_seq_length", "224", "--seed", "11", "--threads", "2",
                   "--padding_free", padding_free, *extra])
    return res.stdout


def weights(out):
    f = "adapter_model.safetensors" if os.path.exists(os.path.join(out, "adapter_model.safetensors")) else \
        "model.safetensors"
    return load_file(os.path.join(out, f))


def padding_share(stdout):
    line = [l for l in stdout.splitlines() if "of the positions computed were padding" in l][-1]
    return float(line.split("%")[0].split()[-1])


def compare(tmp_path, base, extra=(), loss_rel=1e-6, weight_abs=1e-5):
    a, b = str(tmp_path / "pf"), str(tmp_path / "padded")
    out_a, out_b = train(base, a, "True", extra), train(base, b, "False", extra)
    wrapped = "wrapped" in extra  # rows of exactly max_seq_length tokens: nothing to pad in either layout
    assert padding_share(out_a) == 0.0 and (padding_share(out_b) > 0.0 or wrapped)
    assert "padding-free (each micro-batch one row of its samples)" in out_a
    la, lb = read_log(a), read_log(b)
    assert len(la) == len(lb) and len([r for r in la if "loss" in r]) >= STEPS
    for ra, rb in zip(la, lb):
        assert ra["step"] == rb["step"]
        for key in ("loss", "grad_norm", "eval_loss"):
            if key in ra:
                assert ra[key] == pytest.approx(rb[key], rel=loss_rel, abs=0), (key, ra, rb)
    wa, wb = weights(a), weights(b)
    assert wa.keys() == wb.keys()
    worst = max(float(np.max(np.abs(wa[k] - wb[k]))) for k in wa)
    assert worst <= weight_abs, worst
    return la


LORA = ("--use_peft", "True", "--lora_r", "4", "--lora_alpha", "8", "--lora_dropout", "0.1",
        "--lora_target_modules", "all-linear")


@pytest.mark.parametrize("family", ["qwen2", "llama", "qwen3"])
@pytest.mark.parametrize("lora", [False, True], ids=["full", "lora"])
def test_padding_free_equals_padded(tmp_path, bases, family, lora):
    compare(tmp_path, bases[family], LORA if lora else ())


@pytest.mark.parametrize("extra", [
    ("--gradient_accumulation_steps", "1", "--group_by_length", "True"),  # the loader's micro-batches as they are
    ("--gradient_checkpointing", "True", *LORA),
    ("--packing", "True", "--packing_strategy", "bfd", "--max_seq_length", "512"),
    ("--packing", "True", "--packing_strategy", "wrapped", "--max_seq_length", "200"),
    ("--validation_split", "0.2", "--eval_strategy", "steps", "--eval_steps", "5", "--per_device_eval_batch_size", "3"),
], ids=["no_accumulation_group_by_length", "checkpointing_lora", "packing_bfd", "packing_wrapped", "eval"])
def test_padding_free_equals_padded_paths(tmp_path, bases, extra):
    log = compare(tmp_path, bases["qwen2"], extra)
    if "--eval_strategy" in extra:
        assert [r["step"] for r in log if "eval_loss" in r] == [5, 10]


def test_padding_free_equals_padded_bf16(tmp_path, bases):
    compare(tmp_path, bases["llama"], ("--bf16", "True", *LORA), loss_rel=1e-4, weight_abs=1e-3)


@pytest.mark.parametrize("extra", [LORA, ("--packing", "True", "--packing_strategy", "wrapped", "--max_seq_length", "200")],
                         ids=["lora_dropout", "packing_wrapped"])
def test_padding_free_resume_is_bit_identical(tmp_path, bases, extra):
    """Padding-free, interrupted after step 4 (mid epoch, regrouped accumulation steps) and resumed from the checkpoint:
    the same bytes as the uninterrupted run (the workspace is re-reserved for the rest of the run's largest
    micro-batch; LoRA dropout masks follow each token, so they do not depend on where the run restarted)."""
    def run(out, *more):
        return run_sft(["--model_name_or_path", bases["qwen2"], "--dataset_path", DATASET, "--output_dir", out,
                        "--max_steps", "8", "--per_device_train_batch_size", "4", "--gradient_accumulation_steps", "2",
                        "--learning_rate", "1e-3", "--logging_steps", "1", "--save_strategy", "steps",
                        "--save_steps", "4", "--seed", "11", "--threads", "2", "--padding_free", "True",
                        *(extra if "--max_seq_length" in extra else ("--max_seq_length", "224", *extra)), *more])
    full, resumed = str(tmp_path / "full"), str(tmp_path / "resumed")
    run(full)
    os.makedirs(resumed)
    shutil.copytree(os.path.join(full, "checkpoint-4"), os.path.join(resumed, "checkpoint-4"))
    res = run(resumed, "--resume_from_checkpoint", "last")
    assert "resuming" in res.stdout and padding_share(res.stdout) == 0.0
    f = os.path.basename(next(p for p in (os.path.join(full, "adapter_model.safetensors"),
                                          os.path.join(full, "model.safetensors")) if os.path.exists(p)))
    assert filecmp.cmp(os.path.join(full, f), os.path.join(resumed, f), shallow=False), "weights differ after resume"
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("tokens_per_second", "model_flops_per_second")}
                          for r in rows]
    assert strip(read_log(full)) == strip(read_log(resumed))
