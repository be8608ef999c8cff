"""`sft train` HF flags that change what users get: --logging_strategy steps|epoch|no (with --logging_first_step),
--save_strategy epoch, progress output (plain periodic lines when stdout is not a terminal, a live line on a
terminal, none with --disable_tqdm), --fp16 mapped to bf16 compute, --optim spellings, --gradient_checkpointing
(the same losses and weights as without it), and --template model (a folder chat template) training on assistant
turns only."""
import json
import os
import pty
import subprocess

import pytest

from train_test_util import FIX, SFT, make_tiny_model, read_log, run_sft, subset_dataset


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    assert os.path.exists(SFT), f"{SFT}: the sft binary is not built (cmake --build <build>)"
    return make_tiny_model(str(tmp_path_factory.mktemp("base") / "tiny"))


def args(base_dir, data, out, *extra):
    # 16 rows, batch 4 -> 4 micro-batches = 4 optimizer steps per epoch; 2 epochs -> 8 steps.
    return ["--model_name_or_path", base_dir, "--dataset_path", data, "--output_dir", out,
            "--per_device_train_batch_size", "4", "--num_train_epochs", "2", "--learning_rate", "1e-3",
            "--max_seq_length", "64", "--train_on_inputs", "True", "--threads", "2", "--save_strategy", "no", *extra]


def test_logging_strategy_epoch_and_no(base, tmp_path):
    data = subset_dataset(str(tmp_path / "d.json"), 16)
    out = str(tmp_path / "epoch")
    res = run_sft(args(base, data, out, "--logging_strategy", "epoch", "--logging_steps", "1"))
    rows = read_log(out)
    assert [r["step"] for r in rows] == [4, 8] and [r["epoch"] for r in rows] == [1.0, 2.0]
    assert "note: --logging_strategy" not in res.stdout
    out = str(tmp_path / "no")
    run_sft(args(base, data, out, "--logging_strategy", "no", "--logging_steps", "1"))
    assert read_log(out) == []
    out = str(tmp_path / "no_first")
    run_sft(args(base, data, out, "--logging_strategy", "no", "--logging_first_step", "True"))
    assert [r["step"] for r in read_log(out)] == [1]
    res = run_sft(args(base, data, str(tmp_path / "bad"), "--logging_strategy", "sometimes"), check=False)
    assert res.returncode != 0 and "--logging_strategy" in res.stderr


def test_save_strategy_epoch(base, tmp_path):
    data = subset_dataset(str(tmp_path / "d.json"), 16)
    out = tmp_path / "save"
    run_sft(args(base, data, str(out), "--save_strategy", "epoch", "--save_steps", "1"))
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("checkpoint-")) == ["checkpoint-4", "checkpoint-8"]
    state = json.loads((out / "checkpoint-4" / "trainer_state.json").read_text())
    assert state["global_step"] == 4


def test_progress_lines_when_not_a_terminal(base, tmp_path):
    data = subset_dataset(str(tmp_path / "d.json"), 16)
    res = run_sft(args(base, data, str(tmp_path / "p"), "--logging_steps", "4"))
    lines = [l for l in res.stdout.splitlines() if l.startswith("progress: ")]
    assert len(lines) == 8 and lines[-1].startswith("progress: step 8/8 (100%)"), res.stdout
    for field in ("elapsed", "ETA", "tokens/s", "loss", "epoch"):
        assert field in lines[0]
    assert "\r" not in res.stdout and "\033[" not in res.stdout
    res = run_sft(args(base, data, str(tmp_path / "q"), "--logging_steps", "4", "--disable_tqdm", "True"))
    assert "progress:" not in res.stdout and "Training Loss" in res.stdout


def test_live_progress_line_on_a_terminal(base, tmp_path):
    data = subset_dataset(str(tmp_path / "d.json"), 16)
    master, slave = pty.openpty()
    proc = subprocess.Popen([SFT, "train", *args(base, data, str(tmp_path / "tty"), "--logging_steps", "4")],
                            stdout=slave, stderr=subprocess.PIPE, env=dict(os.environ, OMP_NUM_THREADS="2"))
    os.close(slave)
    chunks = []
    while True:
        try:
            b = os.read(master, 65536)
        except OSError:
            break
        if not b:
            break
        chunks.append(b)
    assert proc.wait(timeout=600) == 0
    out = b"".join(chunks).decode("utf-8", "replace")
    assert "\r\033[K[" in out and "8/8 100%" in out and "tok/s" in out and "loss" in out, out
    assert "progress: " not in out  # the plain lines are for non-terminals


def test_fp16_runs_bf16_and_optim_spellings(base, tmp_path):
    data = subset_dataset(str(tmp_path / "d.json"), 8)
    out = tmp_path / "fp16"
    res = run_sft(args(base, data, str(out), "--fp16", "True", "--optim", "adamw_torch_fused", "--max_steps", "1",
                       "--gradient_checkpointing", "True"))
    assert "--fp16 True" in res.stdout and "bf16" in res.stdout
    assert "gradient checkpointing:" in res.stdout
    assert json.loads((out / "training_args.json").read_text())["bf16"] is True
    res = run_sft(args(base, data, str(tmp_path / "x"), "--optim", "sgd"), check=False)
    assert res.returncode != 0 and "adamw_torch, adamw_torch_fused, adamw_hf" in res.stderr


def test_gradient_checkpointing_trains_identically(base, tmp_path):
    # The backward re-runs each layer's forward with the same kernels on the same inputs: every logged loss and
    # gradient norm, and the saved weights, are the same bits as without checkpointing (full and LoRA).
    data = subset_dataset(str(tmp_path / "d.json"), 16)
    for extra in ((), ("--use_peft", "True", "--lora_target_modules", "all-linear", "--lora_dropout", "0.1")):
        logs, weights = [], []
        for gc in ("False", "True"):
            out = tmp_path / ("gc" + gc + str(len(extra)))
            res = run_sft(args(base, data, str(out), "--logging_steps", "1", "--gradient_checkpointing", gc, *extra))
            assert ("gradient checkpointing:" in res.stdout) == (gc == "True")
            assert json.loads((out / "training_args.json").read_text())["gradient_checkpointing"] is (gc == "True")
            logs.append([(r["loss"], r["grad_norm"]) for r in read_log(str(out))])
            name = "adapter_model.safetensors" if extra else "model.safetensors"
            weights.append((out / name).read_bytes())
        assert len(logs[0]) == 8 and logs[0] == logs[1]
        assert weights[0] == weights[1]


def test_template_model_trains_on_assistant_turns(base, tmp_path):
    """A folder chat template (role: content<eos> lines) on chat rows: the dumped labels' targets are exactly each
    assistant reply followed by the end-of-turn token."""
    from tokenizers import Tokenizer

    folder = tmp_path / "chatmodel"
    folder.mkdir()
    for f in os.listdir(base):
        os.symlink(os.path.join(base, f), folder / f)
    os.remove(folder / "tokenizer_config.json")
    cfg = json.load(open(os.path.join(FIX, "tiny_tokenizer", "tokenizer_config.json")))
    cfg["chat_template"] = ("{% for m in messages %}{{ m.role + ': ' + m.content + eos_token + '\\n' }}{% endfor %}"
                            "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}")
    (folder / "tokenizer_config.json").write_text(json.dumps(cfg))
    chat = os.path.join(os.path.dirname(FIX), "data", "chat_sample.jsonl")
    dump = tmp_path / "batches.jsonl"
    res = run_sft(["--model_name_or_path", str(folder), "--dataset_path", chat, "--output_dir", str(tmp_path / "o"),
                   "--template", "model", "--per_device_train_batch_size", "1", "--max_steps", "4",
                   "--max_seq_length", "512", "--threads", "2", "--save_strategy", "no",
                   "--debug_dump_batches", str(dump)])
    assert "template: the model's chat template" in res.stdout
    tok = Tokenizer.from_file(str(folder / "tokenizer.json"))
    rows = [json.loads(l)["messages"] for l in open(chat)]
    want = {"".join(m["content"] + "<|endoftext|>" for m in r if m["role"] == "assistant") for r in rows}
    for line in open(dump):
        b = json.loads(line)
        targets = [t for t, lab in zip(b["input_ids"], b["labels"]) if lab != -100]
        assert tok.decode(targets, skip_special_tokens=False) in want
