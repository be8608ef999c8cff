"""`sft train` checkpoints, exact resume, evaluation/best model, output-folder rules and flag errors, on a tiny random
Qwen2 (see train_test_util.py). Every run takes a second or two."""
import filecmp
import json
import os
import shutil

import pytest
from safetensors.torch import load_file

from train_test_util import make_tiny_model, read_log, run_sft, subset_dataset


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("ckpt")
    return make_tiny_model(str(d / "base"), seed=1), subset_dataset(str(d / "rows20.json"), 20)


def common(base_dir, data, out, *extra):
    # 20 rows, batch 2 -> 10 micro-batches per epoch; accumulation 3 -> ceil(10/3) = 4 updates per epoch (the 4th
    # takes the one remaining micro-batch, as transformers 5.x); 2 epochs -> 8 steps. Checkpoints every 2 steps.
    return ["--model_name_or_path", base_dir, "--dataset_path", data, "--output_dir", out,
            "--per_device_train_batch_size", "2", "--gradient_accumulation_steps", "3", "--num_train_epochs", "2",
            "--learning_rate", "2e-3", "--warmup_ratio", "0.2", "--lr_scheduler_type", "cosine",
            "--weight_decay", "0.1", "--logging_steps", "1", "--save_steps", "2", "--max_seq_length", "64", "--train_on_inputs", "True",
            "--threads", "2", *extra]  # train_on_inputs: short rows keep targets when cut at 64


@pytest.mark.parametrize("precision", [[], ["--bf16"]])
def test_resume_is_bit_identical(base, tmp_path, precision):
    base_dir, data = base
    full = str(tmp_path / "full")
    dump = str(tmp_path / "full.jsonl")
    run_sft(common(base_dir, data, full, "--debug_dump_batches", dump, *precision))
    steps = sorted({json.loads(l)["step"] for l in open(dump)})
    assert steps == list(range(1, 9))
    micro = [json.loads(l)["step"] for l in open(dump)]
    assert [micro.count(s) for s in steps] == [3, 3, 3, 1, 3, 3, 3, 1]  # epoch remainder step, as transformers 5.x
    for n in (2, 4, 6, 8):
        ck = os.path.join(full, f"checkpoint-{n}")
        for f in ("config.json", "model.safetensors", "optimizer.safetensors", "trainer_state.json",
                  "tokenizer.json", "tokenizer_config.json"):
            assert os.path.exists(os.path.join(ck, f)), (ck, f)
    # "Interrupt" after step 2 (mid epoch 0): a fresh output folder holding only checkpoint-2, resumed with 'last'.
    resumed = str(tmp_path / "resumed")
    os.makedirs(resumed)
    shutil.copytree(os.path.join(full, "checkpoint-2"), os.path.join(resumed, "checkpoint-2"))
    res = run_sft(common(base_dir, data, resumed, "--resume_from_checkpoint", "last", *precision))
    assert "resuming" in res.stdout
    assert filecmp.cmp(os.path.join(full, "model.safetensors"), os.path.join(resumed, "model.safetensors"),
                       shallow=False), "final weights differ after resume"
    assert filecmp.cmp(os.path.join(full, "checkpoint-8", "optimizer.safetensors"),
                       os.path.join(resumed, "checkpoint-8", "optimizer.safetensors"), shallow=False)
    strip = lambda rows: [{k: v for k, v in r.items() if k not in ("tokens_per_second", "model_flops_per_second")} for r in rows]
    assert strip(read_log(full)) == strip(read_log(resumed))


def test_save_total_limit_eval_and_best_model(base, tmp_path):
    base_dir, data = base
    out = str(tmp_path / "out")
    run_sft(common(base_dir, data, out, "--save_total_limit", "1", "--validation_split", "4",
                   "--eval_strategy", "steps", "--eval_steps", "2", "--load_best_model_at_end", "True",
                   "--metric_for_best_model", "eval_loss", "--greater_is_better", "False"))
    state = json.load(open(os.path.join(out, "trainer_state.json")))
    evals = [r for r in state["log_history"] if "eval_loss" in r]
    assert [r["step"] for r in evals] == [2, 4, 6]  # 16 training rows -> 8 batches, 3 updates/epoch, 6 steps
    best = min(evals, key=lambda r: r["eval_loss"])
    assert state["best_metric"] == pytest.approx(best["eval_loss"], rel=0, abs=0)
    assert state["best_model_checkpoint"].endswith(f"checkpoint-{best['step']}")
    kept = sorted(d for d in os.listdir(out) if d.startswith("checkpoint-"))
    # limit 1, but the best checkpoint is never deleted
    assert f"checkpoint-{best['step']}" in kept and len(kept) <= 2
    final = load_file(os.path.join(out, "model.safetensors"))
    best_w = load_file(os.path.join(state["best_model_checkpoint"], "model.safetensors"))
    assert all((final[k] == best_w[k]).all() for k in best_w)


def test_output_dir_rules_and_flag_errors(base, tmp_path):
    base_dir, data = base
    out = str(tmp_path / "out")
    os.makedirs(out)
    open(os.path.join(out, "old.txt"), "w").write("x")
    args = common(base_dir, data, out, "--max_steps", "1", "--save_strategy", "no")
    res = run_sft(args, check=False)
    assert res.returncode != 0 and "overwrite_output_dir" in res.stderr
    run_sft(args + ["--overwrite_output_dir", "True"])
    assert os.path.exists(os.path.join(out, "model.safetensors"))
    res = run_sft(args + ["--overwrite_output_dir", "--learnig_rate", "1"], check=False)
    assert res.returncode != 0 and "did you mean --learning_rate" in res.stderr
    res = run_sft(args + ["--overwrite_output_dir", "--device", "cuda"], check=False)
    assert res.returncode != 0 and "CUDA" in res.stderr
    # The seed report's flag list runs as is (meaningless flags noted, not fatal).
    res = run_sft(["--model_name_or_path", base_dir, "--dataset_path", data, "--output_dir", str(tmp_path / "seed"),
                   "--logging_dir", str(tmp_path / "seed/logs"), "--logging_steps", "40", "--logging_strategy",
                   "steps", "--save_steps", "4000", "--save_total_limit", "1", "--report_to", "none",
                   "--torch_dtype", "bfloat16", "--remove_unused_columns", "False",
                   "--per_device_train_batch_size", "4", "--per_device_eval_batch_size", "4",
                   "--gradient_accumulation_steps", "8", "--lr_scheduler_type", "linear", "--learning_rate", "5e-5",
                   "--num_train_epochs", "3", "--adam_epsilon", "1e-8", "--evaluation_strategy", "no",
                   "--load_best_model_at_end", "True", "--eval_steps", "4000", "--greater_is_better", "False",
                   "--data_loader_drop_last", "True", "--metric_for_best_model", "eval_loss", "--max_seq_length",
                   "64", "--train_on_inputs", "True"])
    assert "note: --logging_dir ignored: only --report_to tensorboard writes there" in res.stdout  # --report_to none
    assert "Step    Training Loss" in res.stdout
    state = json.load(open(os.path.join(tmp_path / "seed", "trainer_state.json")))
    # 20 rows / 4 = 5 micro-batches < 8 accumulation: ceil(5 / 8) = 1 update per epoch, 3 epochs
    assert state["global_step"] == 3
    cfg = json.load(open(os.path.join(tmp_path / "seed", "config.json")))
    st = load_file(os.path.join(tmp_path / "seed", "model.safetensors"))
    assert all(str(v.dtype) == "torch.bfloat16" for v in st.values())  # --torch_dtype bfloat16 output
