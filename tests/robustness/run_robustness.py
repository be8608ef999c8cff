#!/usr/bin/env python3
"""The bad-input catalogue of `sft` (issue 17): every case runs the real binary on one broken model folder, config,
tokenizer, dataset, checkpoint or flag, and checks the exit code and that the one-line error names the culprit
(file / row / tensor / flag). A handful of cases check the good outcome of an input that used to be mishandled
(an empty response, an empty text, resuming a finished run).

Python 3 standard library only (no venv): it runs in every build, the ASan+UBSan one included. The model is a tiny
random Qwen2 written here (safetensors by hand), the tokenizer the tiny byte-level BPE of tests/fixtures/train.

Usage: run_robustness.py --sft build/src/cli/sft [--jobs 2] [-k substring] [--list]
The cases are the table CASES below: (name, area, setup, argv, expected exit code, substrings the stderr must hold).
"""
import argparse
import array
import concurrent.futures
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import tempfile
import time

SRC = os.environ.get("SFT_SOURCE_DIR", os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..")))
TOK = os.path.join(SRC, "tests", "fixtures", "train", "tiny_tokenizer")
ROWS = json.load(open(os.path.join(SRC, "tests", "fixtures", "train", "alpaca_tiny.json")))[:12]

# ---------------------------------------------------------------------------------------------------------------
# Fixtures: a tiny Qwen2 folder, datasets, a checkpoint.

CFG = {"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": 320, "hidden_size": 32,
       "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
       "max_position_embeddings": 256, "rope_theta": 10000.0, "rms_norm_eps": 1e-6, "tie_word_embeddings": True,
       "hidden_act": "silu", "eos_token_id": 0, "bos_token_id": None, "torch_dtype": "float32"}


def weight_specs(cfg):
    H, I, V = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]
    d = H // cfg["num_attention_heads"]
    kv = cfg["num_key_value_heads"] * d
    specs = [("model.embed_tokens.weight", [V, H]), ("model.norm.weight", [H])]
    for l in range(cfg["num_hidden_layers"]):
        p = f"model.layers.{l}."
        specs += [(p + "input_layernorm.weight", [H]), (p + "post_attention_layernorm.weight", [H]),
                  (p + "self_attn.q_proj.weight", [H, H]), (p + "self_attn.q_proj.bias", [H]),
                  (p + "self_attn.k_proj.weight", [kv, H]), (p + "self_attn.k_proj.bias", [kv]),
                  (p + "self_attn.v_proj.weight", [kv, H]), (p + "self_attn.v_proj.bias", [kv]),
                  (p + "self_attn.o_proj.weight", [H, H]), (p + "mlp.gate_proj.weight", [I, H]),
                  (p + "mlp.up_proj.weight", [I, H]), (p + "mlp.down_proj.weight", [H, I])]
    return specs


def safetensors_bytes(tensors, dtype_override=None):
    """tensors: list of (name, shape, list-of-floats); written as F32 (or dtype_override[name] with raw bytes)."""
    header, blobs, off = {}, [], 0
    for name, shape, values in sorted(tensors, key=lambda t: t[0]):
        if dtype_override and name in dtype_override:
            dt, raw = dtype_override[name]
        else:
            dt, raw = "F32", array.array("f", values).tobytes()
        header[name] = {"dtype": dt, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    header["__metadata__"] = {"format": "pt"}
    h = json.dumps(header).encode()
    h += b" " * ((8 - len(h) % 8) % 8)
    return struct.pack("<Q", len(h)) + h + b"".join(blobs)


def random_tensors(cfg, seed=1):
    rnd = random.Random(seed)
    out = []
    for name, shape in weight_specs(cfg):
        n = 1
        for s in shape:
            n *= s
        if name.endswith("norm.weight"):
            vals = [1.0 + rnd.uniform(-0.1, 0.1) for _ in range(n)]
        else:
            vals = [rnd.gauss(0.0, 0.05) for _ in range(n)]
        out.append((name, shape, vals))
    return out


def write_model(d, cfg=CFG, tensors=None):
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.json"), "w") as f:
        json.dump(cfg, f, indent=1)
    with open(os.path.join(d, "model.safetensors"), "wb") as f:
        f.write(safetensors_bytes(tensors if tensors is not None else random_tensors(cfg)))
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(os.path.join(TOK, name), os.path.join(d, name))
    return d


def write(path, text, mode="w"):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, mode) as f:
        f.write(text)
    return path


class Env:
    """Shared read-only fixtures (made once) + a private folder per case."""

    def __init__(self, root, sft):
        self.root, self.sft = root, sft
        with open(sft, "rb") as f:  # a build with Apache Arrow links libparquet (cmake/SftArrow.cmake)
            self.has_arrow = b"libparquet.so" in f.read()
        self.model = write_model(os.path.join(root, "model"))
        self.data = write(os.path.join(root, "data", "rows.json"), json.dumps(ROWS))
        # A finished 2-step run with checkpoints 1 and 2 (the checkpoint cases copy it).
        self.run_dir = os.path.join(root, "run")
        res = run([sft, "train", *self.train_args(self.data, self.run_dir), "--max_steps", "2", "--save_steps", "1"], 600)
        if res.returncode != 0:
            raise SystemExit(f"fixture run failed ({res.returncode}):\n{res.stdout}\n{res.stderr}")

    def train_args(self, data, out, model=None):
        return ["--model_name_or_path", model or self.model, "--dataset_path", data, "--output_dir", out,
                "--per_device_train_batch_size", "2", "--max_seq_length", "128", "--train_on_inputs", "True", "--logging_steps", "1",
                "--learning_rate", "1e-3", "--threads", "1"]

    def model_copy(self, d):
        shutil.copytree(self.model, d)
        return d


def run(argv, timeout):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, env=env, errors="replace")


# ---------------------------------------------------------------------------------------------------------------
# Case helpers. A setup gets (env, case_dir) and returns the argv after `sft`.

def edit_json(path, fn):
    with open(path) as f:
        j = json.load(f)
    j = fn(j) or j
    with open(path, "w") as f:
        json.dump(j, f)


def model_with(cfg_edit=None, files=None, tensors=None, remove=()):
    """A copy of the tiny model with config edits / files replaced / tensors replaced / files removed."""
    def make(env, d):
        m = env.model_copy(os.path.join(d, "m"))
        if cfg_edit:
            edit_json(os.path.join(m, "config.json"), cfg_edit)
        if tensors is not None:
            with open(os.path.join(m, "model.safetensors"), "wb") as f:
                f.write(tensors())
        for name in remove:
            p = os.path.join(m, name)
            shutil.rmtree(p) if os.path.isdir(p) else os.remove(p)
        for name, content in (files or {}).items():
            write(os.path.join(m, name), content, "wb" if isinstance(content, bytes) else "w")
        return m
    return make


def set_key(k, v):
    def f(j):
        j[k] = v
    return f


def info(model_setup, *extra):
    return lambda env, d: ["info", "--model", model_setup(env, d), *extra]


def tokenize(model_setup, *extra):
    return lambda env, d: ["tokenize", "--model", model_setup(env, d), "--text", "hello", *extra]


def generate(model_setup, *extra):
    return lambda env, d: ["generate", "--model", model_setup(env, d), "--prompt", "hi", "--max_new_tokens", "2", *extra]


def train_data(name, text, *extra, mode="w"):
    def make(env, d):
        p = write(os.path.join(d, name), text, mode)
        return ["train", *env.train_args(p, os.path.join(d, "out")), "--max_steps", "1", *extra]
    return make


def train_flags(*extra):
    return lambda env, d: ["train", *env.train_args(env.data, os.path.join(d, "out")), "--max_steps", "1", *extra]


def rows_csv(rows):
    def q(s):
        return '"' + s.replace('"', '""') + '"'
    return "instruction,input,output\n" + "".join(f"{q(a)},{q(b)},{q(c)}\n" for a, b, c in rows)


def model_ident(env, d):
    return env.model


def read_fixture(*parts):
    with open(os.path.join(SRC, "tests", "fixtures", *parts), "rb") as f:
        return f.read()


def with_arrow(must):
    """Expected text of a Parquet case: `must` in a build with Apache Arrow, the error naming the file and saying
    Arrow is missing in a build without it (the first item names the file)."""
    return lambda env: must if env.has_arrow else [*must[:1], "built without Apache Arrow"]


def checkpoint_with(edit):
    """A copy of the fixture run's output folder, edited, resumed with --resume_from_checkpoint last."""
    def make(env, d):
        out = os.path.join(d, "out")
        shutil.copytree(env.run_dir, out)
        edit(out)
        return ["train", *env.train_args(env.data, out), "--max_steps", "2", "--save_steps", "1",
                "--resume_from_checkpoint", "last"]
    return make


def fifo_model(env, d):
    m = env.model_copy(os.path.join(d, "m"))
    os.remove(os.path.join(m, "model.safetensors"))
    os.mkfifo(os.path.join(m, "model.safetensors"))
    return m


def hellaswag(label):
    def make(env, d):
        row = {"ind": 1, "activity_label": "Cooking", "ctx_a": "A man", "ctx_b": "cuts", "ctx": "A man cuts",
               "endings": ["a", "b", "c", "d"], "source_id": "x", "split": "val", "split_type": "indomain",
               "label": label}
        write(os.path.join(d, "tasks", "hellaswag", "hellaswag_val.jsonl"), json.dumps(row) + "\n")
        return ["eval", "--model", env.model, "--tasks", "hellaswag", "--data_dir", os.path.join(d, "tasks"), "--quiet"]
    return make


def mmlu_invalid_utf8(env, d):
    write(os.path.join(d, "t", "mmlu", "test", "abstract_algebra_test.csv"), b"What?,a\xff,b,c,d,A\n", "wb")
    write(os.path.join(d, "t", "mmlu", "dev", "abstract_algebra_dev.csv"), "Q,a,b,c,d,B\n")
    return ["eval", "--model", env.model, "--tasks", "mmlu_abstract_algebra", "--quiet", "--data_dir",
            os.path.join(d, "t")]


def task_rows(task, split, rows, *extra, files=None):
    """An eval task folder with the given rows (JSON lines) at <task dir>/<split>.jsonl, plus other files."""
    def make(env, d):
        folder = task.split("_mc")[0]
        write(os.path.join(d, "t", folder, split + ".jsonl"), "".join(json.dumps(r) + "\n" for r in rows))
        for rel, text in (files or {}).items():
            write(os.path.join(d, "t", rel), text)
        return ["eval", "--model", env.model, "--tasks", task, "--quiet", "--data_dir", os.path.join(d, "t"), *extra]
    return make


PIQA_ROW = {"goal": "g", "sol1": "a", "sol2": "b", "label": 0}
WINO_ROW = {"sentence": "A _ b.", "option1": "x", "option2": "y", "answer": "1"}


def arc_duplicate_labels(env, d):
    row = {"id": "x", "question": {"stem": "s", "choices": [{"text": "a", "label": "A"}, {"text": "b", "label": "A"}]},
           "answerKey": "A"}
    write(os.path.join(d, "t", "arc", "ARC-Easy-Test.jsonl"), json.dumps(row) + "\n")
    return ["eval", "--model", env.model, "--tasks", "arc_easy", "--quiet", "--data_dir", os.path.join(d, "t")]


def eval_flags(*flags):
    return lambda env, d: ["eval", "--model", env.model, "--quiet", "--data_dir", os.path.join(d, "none"), *flags]


def gen_flags(command, *flags):
    """sft generate / chat with only the given flags (numeric flags are checked before the model is loaded)."""
    prompt = ["--prompt", "hi"] if command == "generate" else []
    return lambda env, d: [command, "--model", env.model, *prompt, *flags]


# Numeric flags of eval / generate / chat: (flag, bad value, substring of what the message says was expected).
NUMERIC_FLAG_CASES = [
    ("eval", "--max_length", "0", "from 2 to 16777216"), ("eval", "--max_length", "1", "from 2"),
    ("eval", "--max_length", "-4", "from 2"), ("eval", "--max_length", "1e3", "from 2"),
    ("eval", "--max_length", "99999999999999999999", "from 2"), ("eval", "--max_length", "16777217", "16777216"),
    ("eval", "--batch_size", "0", "from 1 to 65536"), ("eval", "--batch_size", "-2", "from 1 to 65536"),
    ("eval", "--batch_size", "1000000", "from 1 to 65536"), ("eval", "--batch_size", "auto:0", "auto:N"),
    ("eval", "--batch_size", "auto:x", "auto:N"), ("eval", "--batch_size", "8.5", "from 1 to 65536"),
    ("eval", "--num_fewshot", "-1", "from 0 to 1000000"), ("eval", "--num_fewshot", "five", "from 0"),
    ("eval", "--num_fewshot", "2147483648", "from 0 to 1000000"), ("eval", "--num_fewshot", "1.5", "from 0"),
    ("eval", "--limit", "1.5", "positive number"), ("eval", "--limit", "99999999999999999999", "positive number"),
    ("eval", "--seed", "x", "an integer"), ("eval", "--seed", "1,2", "3 or 4"), ("eval", "--seed", "1,2,3,4,5", "3 or 4"),
    ("eval", "--seed", "99999999999999999999", "2^64"), ("eval", "--seed", "1,2,3,None", "None"),
    ("generate", "--max_new_tokens", "0", "from 1 to 1073741824"), ("generate", "--max_new_tokens", "-1", "from 1"),
    ("generate", "--max_new_tokens", "many", "from 1"), ("generate", "--max_new_tokens", "2147483648", "1073741824"),
    ("generate", "--temperature", "nan", "finite number >= 0"), ("generate", "--temperature", "warm", ">= 0"),
    ("generate", "--temperature", "1e39", "finite"), ("generate", "--top_k", "-3", "from 0 to 2147483647"),
    ("generate", "--top_k", "1e3", "from 0"), ("generate", "--top_p", "1.5", "[0, 1]"),
    ("generate", "--repetition_penalty", "inf", "> 0"), ("generate", "--repetition_penalty", "-1", "> 0"),
    ("generate", "--seed", "-1", "from 0 to 18446744073709551615"), ("generate", "--seed", "1.5", "from 0"),
    ("chat", "--max_new_tokens", "0", "from 1"), ("chat", "--top_k", "-1", "from 0"), ("chat", "--seed", "x", "from 0"),
]


def numeric_flag_case(command, flag, value, expected):
    setup = eval_flags("--tasks", "piqa", flag, value) if command == "eval" else gen_flags(command, flag, value)
    return (f"flags/{command}_{flag[2:]}_{value}", A_FLAG, setup, 1, [f"{flag}: expected", expected, f"'{value}'"])


def truncated_weights(env, d):
    m = env.model_copy(os.path.join(d, "m"))
    p = os.path.join(m, "model.safetensors")
    data = open(p, "rb").read()
    open(p, "wb").write(data[:-100])
    return m


def bad_header_len(n):
    def make(env, d):
        m = env.model_copy(os.path.join(d, "m"))
        p = os.path.join(m, "model.safetensors")
        data = open(p, "rb").read()
        open(p, "wb").write(struct.pack("<Q", n) + data[8:])
        return m
    return make


def sharded(index):
    def make(env, d):
        m = env.model_copy(os.path.join(d, "m"))
        os.rename(os.path.join(m, "model.safetensors"), os.path.join(m, "model-00001-of-00001.safetensors"))
        write(os.path.join(m, "model.safetensors.index.json"), index if isinstance(index, str) else json.dumps(index))
        return m
    return make


def drop_tensor(name):
    return lambda: safetensors_bytes([t for t in random_tensors(CFG) if t[0] != name])


def reshape_tensor(name, shape):
    def make():
        ts = []
        for n, s, v in random_tensors(CFG):
            if n == name:
                s = shape
                v = [0.0] * (s[0] * s[1])
            ts.append((n, s, v))
        return safetensors_bytes(ts)
    return make


def extra_layer_tensors():
    cfg3 = dict(CFG, num_hidden_layers=3)
    return safetensors_bytes(random_tensors(cfg3))


def i64_tensor():
    return safetensors_bytes(random_tensors(CFG), {"model.norm.weight": ("I64", b"\0" * 8 * CFG["hidden_size"])})


def edit_file(rel, fn):
    def edit(out):
        p = os.path.join(out, rel)
        with open(p) as f:
            text = f.read()
        with open(p, "w") as f:
            f.write(fn(text))
    return edit


def edit_state(fn):
    def edit(out):
        edit_json(os.path.join(out, "checkpoint-2", "trainer_state.json"), fn)
    return edit


def optimizer_step_meta(value):
    def edit(out):
        p = os.path.join(out, "checkpoint-2", "optimizer.safetensors")
        data = bytearray(open(p, "rb").read())
        n = struct.unpack("<Q", data[:8])[0]
        hdr = json.loads(data[8:8 + n])
        hdr["__metadata__"]["step"] = value
        h = json.dumps(hdr).encode()
        h += b" " * ((8 - len(h) % 8) % 8)
        open(p, "wb").write(struct.pack("<Q", len(h)) + h + bytes(data[8 + n:]))
    return edit


def huge_checkpoint_folder(out):
    shutil.copytree(os.path.join(out, "checkpoint-2"), os.path.join(out, "checkpoint-99999999999999999999"))


def output_under_file(env, d):
    blocker = write(os.path.join(d, "file"), "x")
    return ["train", *env.train_args(env.data, os.path.join(blocker, "out")), "--max_steps", "1"]


def nonfinite(*extra):
    # A finite model whose forward overflows: the final norm's weight 3e38 scales the normalised hidden state past
    # float's range, so the logits (and the loss) are inf/NaN at step 1, as they are in transformers. (A huge learning
    # rate is no reliable trigger: whether --learning_rate 1e6 reaches inf/NaN within a few steps depends on rounding;
    # transformers and sft's current Release build saturate to a finite, constant loss after one such step.)
    def make(env, d):
        tensors = [(n, s, [3e38] * len(v) if n == "model.norm.weight" else v) for n, s, v in random_tensors(CFG)]
        model = write_model(os.path.join(d, "model"), CFG, tensors)
        return ["train", *env.train_args(env.data, os.path.join(d, "out"), model), "--max_steps", "3",
                "--max_grad_norm", "0", *extra]
    return make


def no_final_model(d, res):
    out = os.path.join(d, "out")
    return None if not os.path.exists(os.path.join(out, "trainer_state.json")) else "a final model was saved"


def final_model_saved(d, res):
    return None if os.path.exists(os.path.join(d, "out", "model.safetensors")) else "no final model"


def resume_finished(env, d):
    out = os.path.join(d, "out")
    shutil.copytree(env.run_dir, out)
    return ["train", *env.train_args(env.data, out), "--max_steps", "2", "--save_steps", "1",
            "--resume_from_checkpoint", "last"]


def stdout_has(*subs):
    def check(d, res):
        missing = [s for s in subs if s not in res.stdout]
        return f"stdout lacks {missing}" if missing else None
    return check


def stdout_lacks(*subs):
    def check(d, res):
        found = [s for s in subs if s in res.stdout]
        return f"stdout has {found}" if found else None
    return check


def no_leftovers(d, res):
    out = os.path.join(d, "out")
    left = [n for n in os.listdir(out) if n.startswith(".tmp-") or n.startswith(".deleting-")] if os.path.isdir(out) else []
    return f"leftovers {left}" if left else None


# ---------------------------------------------------------------------------------------------------------------
# The catalogue. rc: expected exit code (1 = sft's one-line error; 0 = the input is valid and must work;
# "cli" = CLI11's own validation error, 100-120). `must`: substrings of stderr (stdout for rc 0).

A_MODEL, A_CONFIG, A_TOK, A_DATA, A_CKPT, A_FLAG = "model folder", "config", "tokenizer", "dataset", "checkpoint", "flag"
BAD_CONFIG = model_with(files={"config.json": "{ not json"})
CASES = [
    # ---- model folders --------------------------------------------------------------------------------------
    ("model/folder_missing", A_MODEL, lambda env, d: ["info", "--model", os.path.join(d, "nope")], 1, ["nope"]),
    ("model/no_config", A_MODEL, info(model_with(remove=["config.json"])), 1, ["config.json"]),
    ("model/no_weights", A_MODEL, info(model_with(remove=["model.safetensors"])), 1,
     ["no model.safetensors or model.safetensors.index.json"]),
    ("model/pickle_only", A_MODEL, info(model_with(remove=["model.safetensors"], files={"pytorch_model.bin": b"PK"})), 1,
     ["pytorch_model.bin", "convert"]),
    ("model/weights_truncated", A_MODEL, info(truncated_weights), 1, ["model.safetensors"]),
    ("model/weights_empty_file", A_MODEL, info(model_with(files={"model.safetensors": b""})), 1,
     ["model.safetensors", "not a safetensors file"]),
    ("model/header_len_huge", A_MODEL, info(bad_header_len(1 << 40)), 1, ["model.safetensors", "100 MB"]),
    ("model/header_len_past_end", A_MODEL, info(bad_header_len(1 << 20)), 1, ["model.safetensors", "past the end"]),
    ("model/header_not_json", A_MODEL, info(model_with(files={"model.safetensors": struct.pack("<Q", 8) + b"{nojson}"})),
     1, ["model.safetensors", "JSON"]),
    ("model/weights_fifo", A_MODEL, info(fifo_model), 1, ["model.safetensors", "not a regular file"]),
    ("model/weights_folder", A_MODEL, info(model_with(remove=["model.safetensors"], files={"model.safetensors/x": "x"})),
     1, ["model.safetensors", "folder"]),
    ("model/tensor_missing", A_MODEL, info(model_with(tensors=drop_tensor("model.norm.weight"))), 1,
     ["model.norm.weight"]),
    ("model/tensor_wrong_shape", A_MODEL,
     info(model_with(tensors=reshape_tensor("model.layers.0.mlp.up_proj.weight", [63, 32]))), 1,
     ["model.layers.0.mlp.up_proj.weight", "shape"]),
    ("model/tensor_int_dtype", A_MODEL, info(model_with(tensors=i64_tensor)), 1, ["model.norm.weight", "I64"]),
    ("model/index_shard_missing", A_MODEL,
     info(sharded({"weight_map": {"model.norm.weight": "model-00002-of-00002.safetensors"}})), 1,
     ["model.safetensors.index.json", "model-00002-of-00002.safetensors"]),
    ("model/index_path_escape", A_MODEL, info(sharded({"weight_map": {"model.norm.weight": "../x.safetensors"}})), 1,
     ["model.safetensors.index.json", "../x.safetensors"]),
    ("model/index_not_json", A_MODEL, info(sharded("{weight_map:")), 1, ["model.safetensors.index.json"]),
    ("model/index_no_weight_map", A_MODEL, info(sharded({"metadata": {}})), 1, ["weight_map"]),
    ("model/generate_fewer_layers_than_file", A_MODEL, generate(model_with(set_key("num_hidden_layers", 1))), 1,
     ["config.json", "num_hidden_layers", "model.layers.1"]),
    ("model/train_fewer_layers_than_file", A_MODEL,
     lambda env, d: ["train", *env.train_args(env.data, os.path.join(d, "out"),
                                              model_with(set_key("num_hidden_layers", 1))(env, d)), "--max_steps", "1"],
     1, ["num_hidden_layers", "model.layers.1"]),
    ("model/more_layers_than_file", A_MODEL, info(model_with(set_key("num_hidden_layers", 3))), 1,
     ["model.layers.2"]),
    ("model/extra_layer_tensors_generate", A_MODEL, generate(model_with(tensors=extra_layer_tensors)), 1,
     ["num_hidden_layers", "model.layers.2"]),
    # ---- config.json ----------------------------------------------------------------------------------------
    ("config/not_json", A_CONFIG, info(BAD_CONFIG), 1, ["config.json"]),
    ("config/not_object", A_CONFIG, info(model_with(files={"config.json": "[1, 2]"})), 1, ["config.json"]),
    ("config/missing_hidden_size", A_CONFIG, info(model_with(lambda j: j.pop("hidden_size"))), 1,
     ["config.json", "hidden_size"]),
    ("config/hidden_size_string", A_CONFIG, info(model_with(set_key("hidden_size", "32"))), 1,
     ["config.json", "hidden_size"]),
    ("config/layers_2_62_info", A_CONFIG, info(model_with(set_key("num_hidden_layers", 1 << 62))), 1,
     ["num_hidden_layers"]),
    ("config/layers_2_62_generate", A_CONFIG, generate(model_with(set_key("num_hidden_layers", 1 << 62))), 1,
     ["num_hidden_layers"]),
    ("config/hidden_size_2_40", A_CONFIG, info(model_with(set_key("hidden_size", 1 << 40))), 1,
     ["config.json", "hidden_size"]),
    ("config/vocab_negative", A_CONFIG, info(model_with(set_key("vocab_size", -5))), 1, ["config.json"]),
    ("config/intermediate_2_62", A_CONFIG, info(model_with(set_key("intermediate_size", 1 << 62))), 1,
     ["config.json", "intermediate_size"]),
    ("config/heads_not_dividing", A_CONFIG, info(model_with(set_key("num_key_value_heads", 3))), 1,
     ["config.json", "num_key_value_heads"]),
    ("config/rope_theta_string", A_CONFIG, info(model_with(set_key("rope_theta", "1e4"))), 1,
     ["config.json", "rope_theta"]),
    ("config/unknown_model_type", A_CONFIG, info(model_with(set_key("model_type", "gpt2"))), 1,
     ["config.json", "gpt2"]),
    ("config/generation_config_top_k_string", A_CONFIG,
     generate(model_with(files={"generation_config.json": '{"top_k": "50"}'})), 1, ["generation_config.json", "top_k"]),
    ("config/generation_config_do_sample_string", A_CONFIG,
     generate(model_with(files={"generation_config.json": '{"do_sample": "yes"}'})), 1,
     ["generation_config.json", "do_sample"]),
    ("config/generation_config_eos_string", A_CONFIG,
     generate(model_with(files={"generation_config.json": '{"eos_token_id": "0"}'})), 1,
     ["generation_config.json", "eos_token_id"]),
    ("config/generation_config_top_p_2", A_CONFIG,
     generate(model_with(files={"generation_config.json": '{"top_p": 2}'})), 1, ["generation_config.json", "top_p"]),
    # ---- tokenizers -----------------------------------------------------------------------------------------
    ("tokenizer/missing_tokenize", A_TOK, tokenize(model_with(remove=["tokenizer.json"])), 1, ["tokenizer.json"]),
    ("tokenizer/malformed_tokenize", A_TOK, tokenize(model_with(files={"tokenizer.json": '{"model": '})), 1,
     ["tokenizer.json", "invalid JSON"]),
    ("tokenizer/array", A_TOK, tokenize(model_with(files={"tokenizer.json": "[]"})), 1, ["tokenizer.json"]),
    ("tokenizer/folder", A_TOK, tokenize(model_with(remove=["tokenizer.json"], files={"tokenizer.json/x": "x"})), 1,
     ["tokenizer.json", "folder"]),
    ("tokenizer/unigram", A_TOK, tokenize(model_with(files={"tokenizer.json": '{"model": {"type": "Unigram"}}'})), 1,
     ["tokenizer.json"]),
    ("tokenizer/config_eos_unknown", A_TOK,
     tokenize(model_with(files={"tokenizer_config.json": '{"eos_token": "<nope>"}'})), 1,
     ["tokenizer_config.json", "<nope>"]),
    ("tokenizer/config_eos_number", A_TOK, tokenize(model_with(files={"tokenizer_config.json": '{"eos_token": 5}'})),
     1, ["tokenizer_config.json", "eos_token"]),
    ("tokenizer/config_not_json", A_TOK, tokenize(model_with(files={"tokenizer_config.json": "{"})), 1,
     ["tokenizer_config.json"]),
    ("tokenizer/info_missing", A_TOK, info(model_with(remove=["tokenizer.json"])), 1, ["tokenizer.json"]),
    ("tokenizer/info_malformed", A_TOK, info(model_with(files={"tokenizer.json": "{"})), 1, ["tokenizer.json"]),
    ("tokenizer/train_missing", A_TOK,
     lambda env, d: ["train", *env.train_args(env.data, os.path.join(d, "out"),
                                              model_with(remove=["tokenizer.json"])(env, d)), "--max_steps", "1"],
     1, ["tokenizer.json"]),
    ("tokenizer/empty_text_is_valid", A_TOK,
     lambda env, d: ["tokenize", "--model", env.model, "--text", "", "--ids_only"], 0, []),
    # ---- datasets -------------------------------------------------------------------------------------------
    ("data/missing_file", A_DATA, lambda env, d: ["train", *env.train_args(os.path.join(d, "no.json"),
                                                                          os.path.join(d, "out"))], 1, ["no.json"]),
    ("data/unknown_extension", A_DATA, train_data("d.txt", "x"), 1, ["d.txt", "extension"]),
    ("data/folder_named_json", A_DATA, train_data("x.json/inner", "x"), 1, ["x.json", "folder"]),
    ("data/array_unterminated", A_DATA, train_data("d.json", '[{"instruction": "a", "output": "b"'), 1,
     ["d.json", "not closed"]),
    ("data/array_missing_comma_skip", A_DATA,
     train_data("d.json", '[\n{"instruction": "a", "output": "b"}\n{"instruction": "c", "output": "d"},\n'
                          '{"instruction": "e", "output": "f"}]', "--skip_bad_rows", "True"), 1,
     ["d.json element 1 (line 2)", "missing ','"]),
    ("data/pretty_printed_object", A_DATA, train_data("d.json", '{\n  "instruction": "a",\n  "output": "b"\n}\n'), 1,
     ["d.json", "single JSON value"]),
    ("data/jsonl_bad_line3", A_DATA,
     train_data("d.jsonl", '{"instruction":"a","output":"b"}\n{"instruction":"c","output":"d"}\n{oops\n'), 1,
     ["d.jsonl line 3", "malformed JSON"]),
    ("data/jsonl_missing_output", A_DATA, train_data("d.jsonl", '{"instruction":"a"}\n'), 1,
     ["d.jsonl line 1", "output"]),
    ("data/jsonl_output_number", A_DATA, train_data("d.jsonl", '{"instruction":"a","output":5}\n'), 1,
     ["d.jsonl line 1", "output"]),
    ("data/csv_no_header_columns", A_DATA, train_data("d.csv", "question,answer\nq,a\n"), 1,
     ["d.csv header (line 1)"]),
    ("data/csv_unterminated_quote", A_DATA, train_data("d.csv", 'instruction,output\nq,"a\n'), 1,
     ["d.csv record", "unterminated quoted field opened on line 2"]),
    ("data/csv_field_count", A_DATA, train_data("d.csv", "instruction,input,output\nq,a\n"), 1,
     ["d.csv record 1 (line 2)", "fields"]),
    ("data/csv_invalid_utf8", A_DATA, train_data("d.csv", b"instruction,output\nq,a\xc3(\n", mode="wb"), 1,
     ["d.csv record 1 (line 2)", "UTF-8"]),
    ("data/chat_no_assistant", A_DATA,
     train_data("c.jsonl", '{"messages":[{"role":"user","content":"hi"}]}\n', "--template", "chatml"), 1,
     ["c.jsonl line 1", "assistant"]),
    ("data/chat_bad_role", A_DATA,
     train_data("c.jsonl", '{"messages":[{"role":"robot","content":"hi"}]}\n', "--template", "chatml"), 1,
     ["c.jsonl line 1", "role"]),
    ("data/empty_array", A_DATA, train_data("d.json", "[]"), 1, ["d.json", "no usable rows"]),
    ("data/all_responses_empty", A_DATA, train_data("d.csv", rows_csv([("a", "", ""), ("b", "", "")])), 1,
     ["d.csv", "no usable rows", "empty response", "--keep_empty_responses"]),
    ("data/seed_csv_with_empty_outputs_trains", A_DATA,
     train_data("train.csv", rows_csv([(r["instruction"], r.get("input", ""), r["output"]) for r in ROWS[:6]] +
                                      [("Say nothing.", "", ""), ("Nothing either.", "x", "")])), 0,
     ["empty responses: 2 of 8 rows", "train.csv record 7 (line", "train.csv record 8 (line"]),
    ("data/json_empty_output_excluded_alike", A_DATA,
     train_data("d.json", json.dumps(ROWS[:6] + [{"instruction": "Say nothing.", "input": "", "output": ""}])), 0,
     ["empty responses: 1 of 7 rows", "d.json element 7"]),
    ("data/keep_empty_responses", A_DATA,
     train_data("d.csv", rows_csv([("a", "", "b"), ("c", "", "")]), "--keep_empty_responses", "True"), 0, []),
    # ---- TRL's dataset formats, Parquet ---------------------------------------------------------------------
    ("data/trl_missing_text_field", A_DATA, train_data("d.jsonl", '{"text":"a b"}\n{"txt":"c"}\n'), 1,
     ["d.jsonl line 2", 'missing "text"']),
    ("data/trl_completion_not_a_string", A_DATA,
     train_data("d.jsonl", '{"prompt":"p","completion":"c"}\n{"prompt":"q","completion":7}\n'), 1,
     ["d.jsonl line 2", '"completion" must be a string, got number']),
    ("data/trl_mixed_formats", A_DATA, train_data("d.jsonl", '{"prompt":"p","completion":"c"}\n{"text":"t"}\n'), 1,
     ["d.jsonl line 2", "mixed formats", '"text"', "d.jsonl line 1"]),
    ("data/trl_text_rows_train", A_DATA,
     train_data("d.jsonl", "".join(json.dumps({"text": r["instruction"] + "\n" + r["output"]}) + "\n" for r in ROWS)),
     0, []),
    ("data/parquet_wrong_column_type", A_DATA,
     train_data("w.parquet", read_fixture("data", "wrong_type.parquet"), mode="wb"), 1,
     with_arrow(["w.parquet", 'column "completion" has Arrow type int64'])),
    ("data/parquet_corrupt_footer", A_DATA,
     train_data("c.parquet", read_fixture("data", "trl_prompt_completion.parquet")[:-12] + b"\xff" * 8 + b"PAR1",
                mode="wb"), 1, with_arrow(["c.parquet", "not a readable Parquet file"])),
    ("data/parquet_prompt_completion_trains", A_DATA,
     train_data("t.parquet", read_fixture("data", "trl_prompt_completion.parquet"), mode="wb"),
     lambda env: 0 if env.has_arrow else 1, with_arrow([])),
    # ---- --config files -------------------------------------------------------------------------------------
    ("flags/config_not_json", A_FLAG,
     lambda env, d: [*train_flags()(env, d), "--config", write(os.path.join(d, "c.json"), "{")], 1, ["c.json"]),
    ("flags/config_array", A_FLAG,
     lambda env, d: [*train_flags()(env, d), "--config", write(os.path.join(d, "c.json"), "[]")], 1, ["c.json"]),
    ("flags/config_unknown_key", A_FLAG,
     lambda env, d: [*train_flags()(env, d), "--config", write(os.path.join(d, "c.json"), '{"learning_rat": 1}')], 1,
     ["learning_rat", "c.json", "did you mean --learning_rate"]),
    ("flags/config_value_object", A_FLAG,
     lambda env, d: [*train_flags()(env, d), "--config", write(os.path.join(d, "c.json"), '{"seed": {}}')], 1,
     ["c.json", "seed"]),
    ("flags/config_lr_text", A_FLAG,
     lambda env, d: [*train_flags()(env, d), "--config", write(os.path.join(d, "c.json"), '{"learning_rate": "abc"}')],
     1, ["--learning_rate"]),
    ("flags/config_epochs_inf", A_FLAG,
     lambda env, d: ["train", *env.train_args(env.data, os.path.join(d, "out")), "--config",
                     write(os.path.join(d, "c.json"), '{"num_train_epochs": 1e30}')], 1, ["--num_train_epochs"]),
    # ---- flags ----------------------------------------------------------------------------------------------
    ("flags/epochs_1e30", A_FLAG, lambda env, d: ["train", *env.train_args(env.data, os.path.join(d, "out")),
                                                  "--num_train_epochs", "1e30"], 1, ["--num_train_epochs"]),
    ("flags/epochs_inf", A_FLAG, lambda env, d: ["train", *env.train_args(env.data, os.path.join(d, "out")),
                                                 "--num_train_epochs", "inf"], 1, ["--num_train_epochs", "finite"]),
    ("flags/lr_inf", A_FLAG, train_flags("--learning_rate", "inf"), 1, ["--learning_rate", "finite"]),
    ("flags/lr_nan", A_FLAG, train_flags("--learning_rate", "nan"), 1, ["--learning_rate"]),
    ("flags/lr_negative", A_FLAG, train_flags("--learning_rate", "-1"), 1, ["--learning_rate"]),
    ("flags/threads_100000", A_FLAG, train_flags("--threads", "100000"), 1, ["--threads"]),
    ("flags/validation_split_1_5", A_FLAG, train_flags("--validation_split", "1.5"), 1, ["--validation_split"]),
    ("flags/batch_size_0", A_FLAG, train_flags("--per_device_train_batch_size", "0"), 1,
     ["--per_device_train_batch_size"]),
    ("flags/max_seq_length_1", A_FLAG, train_flags("--max_seq_length", "1"), 1, ["--max_seq_length"]),
    ("flags/max_steps_overflow", A_FLAG, train_flags("--max_steps", "99999999999999999999"), 1, ["--max_steps"]),
    ("flags/max_steps_text", A_FLAG, train_flags("--max_steps", "ten"), 1, ["--max_steps", "integer"]),
    ("flags/save_steps_0", A_FLAG, train_flags("--save_steps", "0"), 1, ["--save_steps"]),
    ("flags/warmup_ratio_2", A_FLAG, train_flags("--warmup_ratio", "2"), 1, ["--warmup_ratio"]),
    ("flags/adam_beta2_1", A_FLAG, train_flags("--adam_beta2", "1"), 1, ["--adam_beta2"]),
    ("flags/device_cuda_abc", A_FLAG, train_flags("--device", "cuda:abc"), 1, ["--device", "cuda:abc"]),
    ("flags/generate_device_cuda_abc", A_FLAG, generate(model_ident, "--device", "cuda:abc"), 1,
     ["--device", "cuda:abc"]),
    ("flags/unknown_flag_did_you_mean", A_FLAG, train_flags("--learning_rat", "1"), 1,
     ["--learning_rat", "did you mean --learning_rate"]),
    ("flags/bool_value_bad", A_FLAG, train_flags("--packing=yes"), 1, ["--packing"]),
    ("flags/padding_free_not_bool", A_FLAG, train_flags("--padding_free", "maybe"), 1,
     ["--padding_free", "expected True/False"]),
    ("flags/packing_strategy_unknown", A_FLAG, train_flags("--packing", "True", "--packing_strategy", "bfd_split"), 1,
     ["--packing_strategy", "bfd, wrapped, first_fit", "bfd_split"]),
    ("flags/subcommand_typo", A_FLAG, lambda env, d: ["trian", "--help"], 1, ["trian", "did you mean 'train'"]),
    # ---- QLoRA (issue 25): refused before anything is written, naming the flag --------------------------------
    ("flags/load_in_4bit_without_use_peft", A_FLAG, train_flags("--load_in_4bit", "True"), 1,
     ["--load_in_4bit", "--use_peft"]),
    ("flags/bnb_4bit_quant_type_int8", A_FLAG,
     train_flags("--use_peft", "--load_in_4bit", "True", "--bnb_4bit_quant_type", "int8"), 1,
     ["--bnb_4bit_quant_type", "int8"]),
    ("flags/bnb_4bit_compute_dtype_float16", A_FLAG,
     train_flags("--use_peft", "--load_in_4bit", "True", "--bnb_4bit_compute_dtype", "float16"), 1,
     ["--bnb_4bit_compute_dtype"]),
    ("flags/load_in_4bit_save_gguf", A_FLAG,
     train_flags("--use_peft", "--load_in_4bit", "True", "--save_gguf", "q8_0"), 1, ["--save_gguf", "adapter"]),
    ("flags/memory_plan_exceeds_machine", A_FLAG,
     train_flags("--use_peft", "--per_device_train_batch_size", "65536", "--max_seq_length", "1000000"), 1,
     ["not enough memory", "the machine has"]),
    ("flags/generate_load_in_4bit_without_adapter", A_FLAG, generate(model_ident, "--load_in_4bit"), 1,
     ["--load_in_4bit", "--adapter"]),
    ("flags/generate_load_in_4bit_true_without_adapter", A_FLAG, generate(model_ident, "--load_in_4bit", "True"), 1,
     ["--load_in_4bit", "--adapter"]),
    ("flags/generate_top_p_2", A_FLAG, generate(model_ident, "--top_p", "2"), 1, ["--top_p"]),
    ("flags/generate_top_p_negative", A_FLAG, generate(model_ident, "--top_p", "-1"), 1, ["--top_p"]),
    ("flags/generate_temperature_negative", A_FLAG, generate(model_ident, "--temperature", "-1"), 1,
     ["--temperature"]),
    ("flags/generate_repetition_penalty_0", A_FLAG, generate(model_ident, "--repetition_penalty", "0"), 1,
     ["--repetition_penalty"]),
    # Numeric flags of eval / generate / chat: one line naming the flag and what it expects, exit 1, before any load
    # (these were CLI11's exit 104/105 before).
    *[numeric_flag_case(*c) for c in NUMERIC_FLAG_CASES],
    ("flags/eval_gen_kwargs_max_gen_toks_0", A_FLAG, eval_flags("--tasks", "gsm8k", "--gen_kwargs", "max_gen_toks=0"),
     1, ["--gen_kwargs", "max_gen_toks", "positive integer"]),
    ("flags/eval_gen_kwargs_max_gen_toks_minus_1", A_FLAG,
     eval_flags("--tasks", "gsm8k", "--gen_kwargs", "max_gen_toks=-1"), 1, ["--gen_kwargs", "max_gen_toks"]),
    ("flags/eval_gen_kwargs_max_gen_toks_above_max_length", A_FLAG,
     task_rows("gsm8k", "test", [{"question": "q", "answer": "a #### 1"}], "--num_fewshot", "0", "--gen_kwargs",
               "max_gen_toks=100000"), 1, ["max_gen_toks 100000", "max length 256", "--gen_kwargs", "--max_length"]),
    ("flags/eval_max_length_below_a_continuation", A_FLAG,
     task_rows("piqa", "validation", [dict(PIQA_ROW, sol1="a b c d e f g h i j k l m n o p")], "--max_length", "3"),
     1, ["exceeds max length 3", "--max_length"]),
    ("flags/eval_limit_negative", A_FLAG,
     lambda env, d: ["eval", "--model", env.model, "--tasks", "hellaswag", "--limit", "-1"], 1, ["--limit"]),
    ("flags/eval_limit_0", A_FLAG, eval_flags("--tasks", "hellaswag", "--limit", "0"), 1, ["--limit", "'0'"]),
    ("flags/eval_limit_minus_3", A_FLAG, eval_flags("--tasks", "hellaswag", "--limit", "-3"), 1, ["--limit", "'-3'"]),
    ("flags/eval_limit_text", A_FLAG, eval_flags("--tasks", "hellaswag", "--limit", "ten"), 1, ["--limit"]),
    ("flags/eval_unknown_task", A_FLAG, eval_flags("--tasks", "piqa,nonsense"), 1,
     ["unknown task 'nonsense'", "winogrande"]),
    ("flags/eval_unknown_group", A_FLAG, eval_flags("--tasks", "leaderboard_v3"), 1,
     ["unknown task 'leaderboard_v3'", "leaderboard_v1"]),
    ("flags/eval_gen_kwargs_sampling", A_FLAG, eval_flags("--tasks", "gsm8k", "--gen_kwargs", "do_sample=true"), 1,
     ["--gen_kwargs", "greedy"]),
    ("flags/eval_gen_kwargs_unknown_key", A_FLAG, eval_flags("--tasks", "gsm8k", "--gen_kwargs", "top_q=1"), 1,
     ["--gen_kwargs", "'top_q'"]),
    ("flags/eval_num_fewshot_above_pool", A_FLAG,
     task_rows("winogrande", "validation", [WINO_ROW], "--num_fewshot", "5",
               files={"winogrande/train.jsonl": json.dumps(WINO_ROW) + "\n" + json.dumps(WINO_ROW) + "\n"}),
     1, ["--num_fewshot 5", "winogrande/train.jsonl"]),
    ("flags/info_seq_len_overflow", A_FLAG, info(model_ident, "--seq_len", "2147483647", "--batch_size", "2147483647"),
     1, ["--seq_len"]),
    ("flags/output_dir_under_a_file", A_FLAG, output_under_file, 1, ["--output_dir", "file"]),
    ("flags/output_dir_is_a_file", A_FLAG,
     lambda env, d: ["train", *env.train_args(env.data, write(os.path.join(d, "o"), "x")), "--max_steps", "1"], 1,
     ["--output_dir", "not a folder"]),
    ("flags/logging_dir_is_a_file", A_FLAG,
     lambda env, d: ["train", *env.train_args(env.data, os.path.join(d, "out")), "--max_steps", "1", "--report_to",
                     "tensorboard", "--logging_dir", write(os.path.join(d, "logs"), "x")], 1,
     ["--logging_dir", "not a folder"]),
    ("flags/logging_dir_under_a_file", A_FLAG,
     lambda env, d: ["train", *env.train_args(env.data, os.path.join(d, "out")), "--max_steps", "1", "--report_to",
                     "tensorboard", "--logging_dir", os.path.join(write(os.path.join(d, "f"), "x"), "logs")], 1,
     ["--logging_dir", "cannot create"]),
    ("flags/report_to_unknown", A_FLAG,
     lambda env, d: ["train", *env.train_args(env.data, os.path.join(d, "out")), "--report_to", "tensorbord"], 1,
     ["--report_to", "tensorboard"]),
    ("flags/early_stopping_without_eval", A_FLAG,
     lambda env, d: ["train", *env.train_args(env.data, os.path.join(d, "out")), "--early_stopping_patience", "2"], 1,
     ["--early_stopping_patience", "evaluation"]),
    ("flags/early_stopping_patience_negative", A_FLAG,
     lambda env, d: ["train", *env.train_args(env.data, os.path.join(d, "out")), "--early_stopping_patience", "-2"], 1,
     ["--early_stopping_patience"]),
    ("flags/early_stopping_threshold_nan", A_FLAG,
     lambda env, d: ["train", *env.train_args(env.data, os.path.join(d, "out")), "--early_stopping_threshold", "nan"],
     1, ["--early_stopping_threshold"]),
    ("flags/neftune_alpha_negative", A_FLAG,
     lambda env, d: ["train", *env.train_args(env.data, os.path.join(d, "out")), "--neftune_noise_alpha", "-5"], 1,
     ["--neftune_noise_alpha"]),
    ("flags/dataset_format_unknown", A_FLAG,
     lambda env, d: ["train", *env.train_args(env.data, os.path.join(d, "out")), "--dataset_format", "sharegpt"], 1,
     ["--dataset_format", "language_modeling"]),
    ("flags/overwrite_the_base_model_folder", A_FLAG,
     lambda env, d: ["train", *env.train_args(env.data, env.model_copy(os.path.join(d, "m")),
                                              os.path.join(d, "m")), "--max_steps", "1", "--overwrite_output_dir"], 1,
     ["--output_dir", "base model folder"]),
    # ---- eval task files ------------------------------------------------------------------------------------
    ("data/hellaswag_label_abc", A_DATA, hellaswag("abc"), 1, ["hellaswag_val.jsonl row 1", "label"]),
    ("data/hellaswag_label_2abc", A_DATA, hellaswag("2abc"), 1, ["hellaswag_val.jsonl row 1", "label"]),
    ("data/hellaswag_label_out_of_range", A_DATA, hellaswag(7), 1, ["hellaswag_val.jsonl row 1", "label"]),
    ("data/mmlu_invalid_utf8", A_DATA, mmlu_invalid_utf8, 1, ["abstract_algebra_test.csv", "UTF-8"]),
    ("data/task_row_missing_field", A_DATA,
     task_rows("piqa", "validation", [PIQA_ROW, {"goal": "g", "sol1": "a", "label": 1}]), 1,
     ["piqa/validation.jsonl row 2", "field 'sol2'", "missing"]),
    ("data/task_label_outside_choices", A_DATA, task_rows("piqa", "validation", [dict(PIQA_ROW, label=5)]), 1,
     ["piqa/validation.jsonl row 1", "doc_to_target", "label 5"]),
    ("data/task_empty_choice_list", A_DATA,
     task_rows("truthfulqa_mc1", "validation",
               [{"question": "q", "mc1_targets": {"choices": [], "labels": []},
                 "mc2_targets": {"choices": ["a"], "labels": [1]}}]), 1,
     ["truthfulqa/validation.jsonl row 1", "mc1_targets.choices", "empty"]),
    ("data/task_choices_rendered_empty", A_DATA,
     task_rows("openbookqa", "test", [{"question_stem": "q", "choices": {"text": [], "label": []}, "answerKey": "A"}]),
     1, ["openbookqa/test.jsonl row 1", "doc_to_choice", "no choices"]),
    ("data/gsm8k_answer_without_hashes", A_DATA,
     task_rows("gsm8k", "test", [{"question": "q", "answer": "It is 4."}], "--num_fewshot", "0"), 1,
     ["gsm8k/test.jsonl row 1", "field 'answer'", "####"]),
    ("data/winogrande_answer_3", A_DATA, task_rows("winogrande", "validation", [dict(WINO_ROW, answer="3")]), 1,
     ["winogrande/validation.jsonl row 1", "field 'answer'"]),
    ("data/task_row_not_an_object", A_DATA, task_rows("boolq", "validation", [[1, 2]]), 1,
     ["boolq/validation.jsonl row 1", "JSON object"]),
    ("data/arc_duplicate_choice_labels", A_DATA, arc_duplicate_labels, 1,
     ["ARC-Easy-Test.jsonl row 1", "label 'A' appears twice"]),
    # ---- checkpoints ----------------------------------------------------------------------------------------
    ("checkpoint/not_a_checkpoint", A_CKPT,
     lambda env, d: ["train", *env.train_args(env.data, os.path.join(d, "out")), "--resume_from_checkpoint",
                     env.model], 1, ["--resume_from_checkpoint", "trainer_state.json"]),
    ("checkpoint/none_for_last", A_CKPT,
     lambda env, d: ["train", *env.train_args(env.data, os.path.join(d, "out")), "--resume_from_checkpoint", "last"],
     1, ["--resume_from_checkpoint last", "no checkpoint"]),
    ("checkpoint/step_number_overflow", A_CKPT, checkpoint_with(huge_checkpoint_folder), 1,
     ["checkpoint-99999999999999999999", "out of range"]),
    ("checkpoint/state_not_json", A_CKPT, checkpoint_with(edit_file("checkpoint-2/trainer_state.json", lambda t: "{")),
     1, ["checkpoint-2", "trainer_state.json"]),
    ("checkpoint/state_step_text", A_CKPT, checkpoint_with(edit_state(set_key("global_step", "two"))), 1,
     ["trainer_state.json"]),
    ("checkpoint/state_window_loss_text", A_CKPT,
     checkpoint_with(edit_state(lambda j: j["sft_resume"].__setitem__("window_loss_sum", "abc"))), 1,
     ["trainer_state.json", "window_loss_sum"]),
    ("checkpoint/state_negative_position", A_CKPT,
     checkpoint_with(edit_state(lambda j: j["sft_resume"].__setitem__("loader_index", -3))), 1,
     ["trainer_state.json"]),
    ("checkpoint/state_patience_counter_text", A_CKPT,
     checkpoint_with(edit_state(set_key("stateful_callbacks", {"EarlyStoppingCallback": {
         "args": {"early_stopping_patience": 2, "early_stopping_threshold": 0.0},
         "attributes": {"early_stopping_patience_counter": "one"}}}))), 1,
     ["trainer_state.json", "early_stopping_patience_counter"]),
    ("checkpoint/state_best_global_step_negative", A_CKPT,
     checkpoint_with(edit_state(set_key("best_global_step", -4))), 1, ["trainer_state.json", "best_global_step"]),
    ("checkpoint/state_logging_dir_number", A_CKPT,
     checkpoint_with(edit_state(lambda j: j["sft_resume"].__setitem__("logging_dir", 7))), 1, ["trainer_state.json"]),
    ("checkpoint/optimizer_step_text", A_CKPT, checkpoint_with(optimizer_step_meta("abc")), 1,
     ["optimizer.safetensors", "step"]),
    ("checkpoint/optimizer_missing", A_CKPT,
     checkpoint_with(lambda out: os.remove(os.path.join(out, "checkpoint-2", "optimizer.safetensors"))), 1,
     ["optimizer.safetensors"]),
    ("checkpoint/weights_truncated", A_CKPT,
     checkpoint_with(edit_file("checkpoint-2/config.json", lambda t: t[:-5])), 1, ["checkpoint-2", "config.json"]),
    ("checkpoint/changed_steps", A_CKPT,
     lambda env, d: [*checkpoint_with(lambda out: None)(env, d)[:-4], "--max_steps", "5", "--save_steps", "1",
                     "--resume_from_checkpoint", "last"], 1, ["checkpoint-2", "total steps"]),
    ("checkpoint/resume_finished_run", A_CKPT, resume_finished, 0, []),
    # ---- non-finite training ----------------------------------------------------------------------------------
    ("train/nonfinite_loss_stops", A_FLAG, nonfinite(), 1, ["optimizer step", "non-finite", "no final model"]),
    ("train/nonfinite_skipped_on_request", A_FLAG, nonfinite("--skip_nonfinite_steps", "True"), 0, []),
]

# Extra checks on the outcome (beyond rc and message): name -> fn(case_dir, result) -> None or a failure text.
EXTRA = {
    "train/nonfinite_loss_stops": no_final_model,
    "train/nonfinite_skipped_on_request": lambda d, r: (final_model_saved(d, r) or stdout_has("update skipped")(d, r)
                                                        or stdout_has("final loss n/a")(d, r)),
    "checkpoint/resume_finished_run": lambda d, r: stdout_lacks("final loss 0.0000")(d, r) or stdout_has("final loss")(d, r),
    "data/seed_csv_with_empty_outputs_trains": final_model_saved,
    "data/trl_text_rows_train": final_model_saved,
    "data/parquet_prompt_completion_trains": lambda d, r: final_model_saved(d, r) if r.returncode == 0 else None,
    "tokenizer/empty_text_is_valid": lambda d, r: None if r.stdout.strip() == "" else f"stdout {r.stdout!r}",
    "flags/output_dir_under_a_file": no_leftovers,
}

# Issue 30's cases live in their own modules (part A: untrusted files, the chat template engine's bounds, non-finite
# weights; part B: training state — non-finite state, resume checks, LoRA flags); they get this one for the fixtures
# and helpers above.
import state_cases  # noqa: E402
import untrusted_cases  # noqa: E402

for _module in (untrusted_cases, state_cases):
    _cases, _extra = _module.make_cases(sys.modules[__name__])
    CASES += _cases
    EXTRA.update(_extra)

# GGUF files and `sft export` (tests/robustness/gguf_cases.py).
import gguf_cases  # noqa: E402  (beside this file)
CASES += gguf_cases.CASES
EXTRA.update(gguf_cases.EXTRA)


def run_case(env, case, workdir):
    name, area, setup, rc_want, must = case
    # A case may expect what depends on the build (Apache Arrow or not): callables of the Env.
    rc_want = rc_want(env) if callable(rc_want) else rc_want
    must = must(env) if callable(must) else must
    d = os.path.join(workdir, name.replace("/", "__"))
    os.makedirs(d)
    t0 = time.time()
    try:
        argv = setup(env, d)
        res = run([env.sft, *argv], timeout=120)
    except subprocess.TimeoutExpired:
        return name, False, "timed out (a hang)", time.time() - t0
    except Exception as e:  # a broken case setup is a failure of that case, not of the runner
        return name, False, f"setup failed: {e!r}", time.time() - t0
    problems = []
    if rc_want == "cli":
        if not 100 <= res.returncode <= 120:
            problems.append(f"exit {res.returncode}, expected a CLI11 validation error (100-120)")
    elif res.returncode != rc_want:
        problems.append(f"exit {res.returncode}, expected {rc_want}")
    text = res.stderr if rc_want != 0 else res.stdout + res.stderr
    missing = [m for m in must if m not in text]
    if missing:
        problems.append(f"message lacks {missing}")
    if rc_want != 0 and rc_want != "cli":
        lines = [l for l in res.stderr.splitlines() if l.startswith("sft: error:")]
        if len(lines) != 1:
            problems.append("expected exactly one 'sft: error:' line")
    if name in EXTRA:
        extra = EXTRA[name](d, res)
        if extra:
            problems.append(extra)
    detail = "; ".join(problems)
    if problems:
        detail += f"\n      argv: sft {' '.join(argv)}\n      stderr: {res.stderr.strip()[:600]}"
    return name, not problems, detail, time.time() - t0


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sft", required=True)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("-k", default="", help="run only cases whose name contains this")
    ap.add_argument("--list", action="store_true")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    a = ap.parse_args()
    cases = [c for c in CASES if a.k in c[0]]
    if a.list:
        for c in cases:
            print(f"{c[0]:50s} {c[1]:13s} exit {c[3]}  {c[4]}")
        print(f"{len(cases)} cases")
        return 0
    names = [c[0] for c in CASES]
    assert len(names) == len(set(names)), "duplicate case names"
    work = tempfile.mkdtemp(prefix="sft-robustness-")
    try:
        env = Env(os.path.join(work, "fixtures"), os.path.abspath(a.sft))
        failed = 0
        with concurrent.futures.ThreadPoolExecutor(max_workers=a.jobs) as pool:
            for name, ok, detail, secs in pool.map(lambda c: run_case(env, c, work), cases):
                print(f"{'PASS' if ok else 'FAIL'} {name} ({secs:.1f}s){'' if ok else ': ' + detail}", flush=True)
                failed += not ok
        by_area = {}
        for c in cases:
            by_area[c[1]] = by_area.get(c[1], 0) + 1
        print(f"{len(cases) - failed}/{len(cases)} cases passed ({', '.join(f'{k} {v}' for k, v in by_area.items())})")
        return 1 if failed else 0
    finally:
        if not a.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
