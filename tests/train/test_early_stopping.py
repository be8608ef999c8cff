"""Early stopping and the best checkpoint against transformers 5.24's own code:
  - scripted evaluation sequences: transformers' EarlyStoppingCallback (on_train_begin's checks, on_evaluate) and
    Trainer._determine_best_metric driven in the Trainer's order, against train::EarlyStopping / update_best_metric
    (early_stopping_tool) on the same sequences — every patience counter, the stop, the best metric and its step.
    Values are multiples of 1/8 and thresholds dyadic, so ties and improvements of exactly the threshold are frequent
    and exact (no tolerance: the same double comparisons);
  - `sft train` end to end: the eval_loss sequence a run logged, replayed through the same transformers code, gives the
    run's stop step, trainer_state.json's best_metric / best_global_step / best_model_checkpoint, and with
    --load_best_model_at_end the final weights are the best checkpoint's; a resumed run keeps the patience counter
    (it stops where the uninterrupted run stopped, with the same final weights);
  - bad input: early stopping without evaluation or a metric, negative patience or threshold: one-line errors naming
    the flag, nothing written."""
import filecmp
import json
import os
import random
import shutil
import subprocess
from pathlib import Path
from types import SimpleNamespace

import pytest
from safetensors.torch import load_file

from train_test_util import make_tiny_model, read_log, run_sft, subset_dataset

TOOL = Path(os.environ.get("SFT_BUILD_DIR", "")) / "tests" / "early_stopping_tool"


def transformers_decisions(values, patience, threshold, greater, save_strategy="steps"):
    """transformers' EarlyStoppingCallback + Trainer._determine_best_metric, one evaluation per step."""
    from transformers import Trainer
    from transformers.trainer_callback import EarlyStoppingCallback, TrainerControl, TrainerState
    args = SimpleNamespace(metric_for_best_model="eval_loss", greater_is_better=greater, load_best_model_at_end=True,
                           eval_strategy="steps", save_strategy=save_strategy)
    state, control = TrainerState(), TrainerControl()
    cb = EarlyStoppingCallback(early_stopping_patience=patience, early_stopping_threshold=threshold)
    cb.on_train_begin(args, state, control)
    trainer = SimpleNamespace(args=args, state=state)
    out = {"counters": [], "best": [], "best_at": [], "stop_at": 0}
    for k, v in enumerate(values, start=1):
        state.global_step = k
        metrics = {"eval_loss": v}
        cb.on_evaluate(args, state, control, metrics=metrics)  # inside Trainer._evaluate
        Trainer._determine_best_metric(trainer, metrics=metrics, trial=None)  # then, in _maybe_log_save_evaluate
        out["counters"].append(cb.early_stopping_patience_counter)
        out["best"].append(state.best_metric)
        out["best_at"].append(state.best_global_step or 0)
        if control.should_training_stop and not out["stop_at"]:
            out["stop_at"] = k
    return out


def test_scripted_sequences_match_transformers():
    rng = random.Random(29)
    cases = []
    for _ in range(400):
        n = rng.randint(1, 30)
        start = rng.randint(8, 40)
        drift = rng.choice([-1, 0, 1])
        values, v = [], start
        for _ in range(n):  # a walk on multiples of 1/8: plateaus, ties, small and large moves
            v = max(0, v + drift * rng.randint(0, 1) + rng.choice([-3, -1, 0, 0, 1, 2]))
            values.append(v / 8)
        cases.append({"patience": rng.randint(1, 4), "threshold": rng.choice([0.0, 0.125, 0.25, 0.5, 1.0]),
                      "greater": rng.random() < 0.3, "values": values})
    res = subprocess.run([str(TOOL)], input="".join(json.dumps(c) + "\n" for c in cases), capture_output=True,
                         text=True)
    assert res.returncode == 0, res.stderr
    ours = [json.loads(l) for l in res.stdout.splitlines()]
    stops = 0
    for c, got in zip(cases, ours, strict=True):
        want = transformers_decisions(c["values"], c["patience"], c["threshold"], c["greater"])
        assert got == want, c
        stops += want["stop_at"] > 0
    assert stops > 50 and len(cases) - stops > 20  # both outcomes are represented


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    d = tmp_path_factory.mktemp("early")
    return make_tiny_model(str(d / "base"), seed=5), subset_dataset(str(d / "rows30.json"), 30)


def args_for(base_dir, data, out, *extra):
    return ["--model_name_or_path", base_dir, "--dataset_path", data, "--output_dir", out,
            "--per_device_train_batch_size", "2", "--max_steps", "12", "--learning_rate", "3e-2",
            "--logging_steps", "1", "--max_seq_length", "64", "--train_on_inputs", "True", "--validation_split", "6",
            "--eval_strategy", "steps", "--threads", "2", "--seed", "3", *extra]


def check_against_transformers(out, stdout, patience, threshold, eval_steps, max_steps):
    """The run's own eval_loss sequence through transformers' code: the same stop and the same best checkpoint."""
    state = json.load(open(os.path.join(out, "trainer_state.json")))
    evals = [r for r in read_log(out) if "eval_loss" in r]
    want = transformers_decisions([r["eval_loss"] for r in evals], patience, threshold, False)
    stopped = want["stop_at"]
    if stopped:
        stop_step = evals[stopped - 1]["step"]
        assert len(evals) == stopped and state["global_step"] == stop_step < max_steps
        assert f"early stopping at step {stop_step}: loss has not improved" in stdout
    else:
        assert state["global_step"] == max_steps
    assert state["best_metric"] == want["best"][-1]
    best_step = evals[want["best_at"][-1] - 1]["step"]
    assert state["best_global_step"] == best_step
    # Saved at every evaluation (save_steps = eval_steps): the best step's checkpoint is best_model_checkpoint.
    assert state["best_model_checkpoint"] == os.path.join(out, f"checkpoint-{best_step}")
    if stopped:
        assert f"best loss {want['best'][-1]:.6g} at step {best_step} ({state['best_model_checkpoint']})" in stdout
    cb = state["stateful_callbacks"]["EarlyStoppingCallback"]
    assert cb["args"] == {"early_stopping_patience": patience, "early_stopping_threshold": threshold}
    assert cb["attributes"]["early_stopping_patience_counter"] == want["counters"][-1]
    # --load_best_model_at_end: the output holds the best checkpoint's weights.
    final = load_file(os.path.join(out, "model.safetensors"))
    best = load_file(os.path.join(state["best_model_checkpoint"], "model.safetensors"))
    assert all((final[k] == best[k]).all() for k in best)
    return stopped, state


# A threshold nothing can beat (a stop after patience + 1 evaluations), and learning rates high enough for the eval loss
# to go up and down (where the run stops, or not, is whatever transformers decides on the logged sequence).
@pytest.mark.parametrize("patience,threshold,eval_steps,lr", [(2, 1e9, 1, 3e-2), (1, 0.0, 2, 3e-2), (1, 0.0, 1, 0.1),
                                                              (2, 0.01, 1, 0.1)])
def test_training_run_stops_as_transformers_decides(base, tmp_path, patience, threshold, eval_steps, lr):
    base_dir, data = base
    out = str(tmp_path / "out")
    res = run_sft(args_for(base_dir, data, out, "--learning_rate", str(lr), "--eval_steps", str(eval_steps),
                           "--save_steps", str(eval_steps), "--load_best_model_at_end", "True",
                           "--early_stopping_patience", str(patience), "--early_stopping_threshold", repr(threshold)))
    stopped, state = check_against_transformers(out, res.stdout, patience, threshold, eval_steps, 12)
    print(f"patience {patience} threshold {threshold}: stopped at evaluation {stopped}, step {state['global_step']}")
    if threshold == 1e9:  # nothing ever improves by that much: the first evaluation, then `patience` more
        assert stopped == patience + 1


def test_resume_keeps_the_patience_counter(base, tmp_path):
    base_dir, data = base
    full, resumed = str(tmp_path / "full"), str(tmp_path / "resumed")
    extra = ["--eval_steps", "1", "--save_steps", "1", "--load_best_model_at_end", "True",
             "--early_stopping_patience", "3", "--early_stopping_threshold", "1e9"]
    run_sft(args_for(base_dir, data, full, *extra))
    assert json.load(open(os.path.join(full, "trainer_state.json")))["global_step"] == 4
    os.makedirs(resumed)  # killed after checkpoint-2 (counter 1): the resumed run must stop at 4, not 5
    shutil.copytree(os.path.join(full, "checkpoint-2"), os.path.join(resumed, "checkpoint-2"))
    res = run_sft(args_for(base_dir, data, resumed, "--resume_from_checkpoint", "last", *extra))
    assert "early stopping at step 4" in res.stdout
    state = json.load(open(os.path.join(resumed, "trainer_state.json")))
    want = json.load(open(os.path.join(full, "trainer_state.json")))
    assert state["global_step"] == 4
    for key in ("best_metric", "best_global_step", "stateful_callbacks"):
        assert state[key] == want[key], key
    assert filecmp.cmp(os.path.join(full, "model.safetensors"), os.path.join(resumed, "model.safetensors"),
                       shallow=False)


def test_without_load_best_model_at_end_the_last_weights_are_kept(base, tmp_path):
    """transformers warns that EarlyStoppingCallback without load_best_model_at_end leaves the last model: noted once;
    the stop and the best metric are decided as with it, and a best step that was never saved is no checkpoint."""
    base_dir, data = base
    out = str(tmp_path / "out")
    res = run_sft(args_for(base_dir, data, out, "--eval_steps", "1", "--metric_for_best_model", "eval_loss",
                           "--early_stopping_patience", "1", "--early_stopping_threshold", "1e9"))
    assert res.stdout.count("note: --early_stopping_patience without --load_best_model_at_end True: the final model "
                            "is the last step's weights, not the best checkpoint's") == 1
    assert "early stopping at step 2: eval_loss has not improved by more than 1e+09" in res.stdout
    state = json.load(open(os.path.join(out, "trainer_state.json")))
    evals = [r["eval_loss"] for r in read_log(out) if "eval_loss" in r]
    assert state["global_step"] == 2 and len(evals) == 2
    assert state["best_metric"] == transformers_decisions(evals, 1, 1e9, False)["best"][-1]
    assert state["best_global_step"] == (1 if evals[1] >= evals[0] else 2)
    assert state["best_model_checkpoint"] is None  # save_steps 500: no checkpoint was written


def test_without_a_metric_nothing_is_tracked(base, tmp_path):
    """transformers' default metric_for_best_model is None: evaluations are logged, no best checkpoint recorded."""
    base_dir, data = base
    out = str(tmp_path / "out")
    run_sft(args_for(base_dir, data, out, "--eval_steps", "2", "--save_steps", "2", "--max_steps", "4"))
    state = json.load(open(os.path.join(out, "trainer_state.json")))
    assert [r["step"] for r in state["log_history"] if "eval_loss" in r] == [2, 4]
    assert state["best_metric"] is None and state["best_global_step"] is None and state["best_model_checkpoint"] is None
    assert "stateful_callbacks" not in state


@pytest.mark.parametrize("extra,message", [
    (["--early_stopping_patience", "2", "--eval_strategy", "no"],
     "--early_stopping_patience needs evaluation: --eval_strategy steps or epoch"),
    (["--early_stopping_patience", "2"],
     "--early_stopping_patience needs --metric_for_best_model eval_loss (or --load_best_model_at_end True, which "
     "implies it), as transformers' EarlyStoppingCallback"),
    (["--early_stopping_patience", "-1"], "--early_stopping_patience: expected an integer in [0, 1073741824], got -1"),
    (["--early_stopping_patience", "1", "--metric_for_best_model", "eval_loss", "--early_stopping_threshold", "-1"],
     "--early_stopping_threshold: expected a finite number in [0, 1e+30], got -1"),
    (["--load_best_model_at_end", "True", "--eval_steps", "2", "--save_steps", "3"],
     "--load_best_model_at_end needs --save_steps (3) to be a multiple of --eval_steps (2) (as transformers)"),
])
def test_bad_settings_are_one_line_errors(base, tmp_path, extra, message):
    base_dir, data = base
    out = tmp_path / "out"
    res = run_sft(args_for(base_dir, data, str(out), *extra), check=False)
    assert res.returncode != 0
    assert res.stderr.strip().splitlines() == ["sft: error: " + message]
    assert not out.exists()
