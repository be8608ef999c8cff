"""Catalogue cases of issue 30 (part B): training state. Loaded by run_robustness.py like untrusted_cases.py
(`make_cases(rr)` gets that module, for its fixtures and helpers); each case is a row like the others: (name, area,
setup, exit code, substrings of the message).

- non-finite state: a NaN/inf (or a negative second moment) in optimizer.safetensors, in a checkpoint's weights, in a
  LoRA checkpoint's adapter, in the base model (safetensors or GGUF) or the adapter a run starts from, is refused naming the file and the
  tensor (a NaN in optimizer.safetensors used to resume to a NaN model with exit 0: the loss and the gradient norm
  stay finite); an update that makes a parameter NaN although the loss and the gradient norm are finite (an
  --adam_epsilon that rounds to 0 in fp32, on the zero gradient of an embedding row no batch uses) stops training,
  --skip_nonfinite_steps or not; --allow_nonfinite_weights opts out;
- resume: another model's checkpoint (its config.json, or a LoRA checkpoint's adapter shapes) or a checkpoint trained
  with another vocabulary is refused naming what differs (it used to make a folder mixing that model's weights with this
  tokenizer); the same model at another path is a note; trainer_state.json is read as JSON (UTF-8, size limit);
- LoRA flags: --lora_* values an adapter's own config overrides (continuing an adapter or resuming a LoRA checkpoint)
  are named in a note; --lora_target_modules '' is refused as peft refuses an empty list; --lora_alpha 0 warns.
"""
import json
import os
import shutil
import struct
import threading

A_STATE, A_RESUME, A_LORA = "non-finite state", "resume", "LoRA flags"


def make_cases(rr):
    """rr: the run_robustness module (fixtures, helpers)."""

    # ---- safetensors edits (the file is rewritten with one value replaced) -------------------------------------
    def set_value(path, tensor, value, index=0):
        data = bytearray(open(path, "rb").read())
        n = struct.unpack("<Q", data[:8])[0]
        hdr = json.loads(data[8:8 + n])
        names = [k for k in hdr if k != "__metadata__" and (k == tensor or k.endswith(tensor))]
        assert len(names) == 1, f"{tensor} matches {names}"
        t = hdr[names[0]]
        assert t["dtype"] == "F32"
        at = 8 + n + t["data_offsets"][0] + 4 * index
        data[at:at + 4] = struct.pack("<f", value)
        open(path, "wb").write(bytes(data))
        return names[0]

    def interrupted_copy(run_dir, d, final_weights):
        """A copy of a finished 2-step run as if killed after checkpoint-1: `last` resumes with one step to train."""
        out = os.path.join(d, "out")
        shutil.copytree(run_dir, out)
        shutil.rmtree(os.path.join(out, "checkpoint-2"))
        for name in ("trainer_state.json", final_weights):
            os.remove(os.path.join(out, name))
        return out

    def resume_edited(edit, *extra, model=None):
        """Resume checkpoint-1 of a copy of the fixture run (one step left to train) after edit(checkpoint folder)."""
        def make(env, d):
            out = interrupted_copy(env.run_dir, d, "model.safetensors")
            edit(os.path.join(out, "checkpoint-1"))
            return ["train", *env.train_args(env.data, out, model(env, d) if model else None), "--max_steps", "2",
                    "--save_steps", "1", "--resume_from_checkpoint", "last", *extra]
        return make

    def in_optimizer(tensor, value):
        return lambda ckpt: set_value(os.path.join(ckpt, "optimizer.safetensors"), tensor, value)

    def in_weights(tensor, value):
        return lambda ckpt: set_value(os.path.join(ckpt, "model.safetensors"), tensor, value)

    # ---- a LoRA run of the tiny model (made once, shared by the cases that resume it) -------------------------
    lora_lock, lora_dirs = threading.Lock(), {}

    def lora_run(env):
        with lora_lock:
            if "run" not in lora_dirs:
                out = os.path.join(env.root, "lora_run")
                res = rr.run([env.sft, "train", *env.train_args(env.data, out), "--use_peft", "True", "--lora_r", "2",
                              "--lora_alpha", "4", "--lora_target_modules", "q_proj", "v_proj", "--max_steps", "2",
                              "--save_steps", "1"], 600)
                if res.returncode != 0:
                    raise RuntimeError(f"LoRA fixture run failed: {res.stderr}")
                lora_dirs["run"] = out
            return lora_dirs["run"]

    def resume_lora(edit=None, *extra, model=None):
        def make(env, d):
            out = interrupted_copy(lora_run(env), d, "adapter_model.safetensors")
            if edit:
                edit(os.path.join(out, "checkpoint-1"))
            return ["train", *env.train_args(env.data, out, model(env, d) if model else None), "--max_steps", "2",
                    "--save_steps", "1", "--use_peft", "True", "--resume_from_checkpoint", "last", *extra]
        return make

    # ---- models ----------------------------------------------------------------------------------------------
    def model_cfg(**changes):
        return dict(rr.CFG, **changes)

    def other_model(**changes):
        """A model of another shape (or other settings), with the fixture's tokenizer."""
        def make(env, d):
            cfg = model_cfg(**changes)
            return rr.write_model(os.path.join(d, "other"), cfg, rr.random_tensors(cfg, seed=5))
        return make

    def untied_model(env, d):
        """The tiny model with an untied head: embedding rows of tokens no batch holds get exactly zero gradients."""
        cfg = model_cfg(tie_word_embeddings=False)
        tensors = rr.random_tensors(cfg)
        tensors.append(("lm_head.weight", [cfg["vocab_size"], cfg["hidden_size"]],
                        [0.05 * (((i * 7919) % 201) / 100.0 - 1.0) for i in range(cfg["vocab_size"] * cfg["hidden_size"])]))
        return rr.write_model(os.path.join(d, "untied"), cfg, tensors)

    def base_with(tensor, value):
        def make(env, d):
            tensors = [(n, s, [value] + v[1:] if n == tensor else v) for n, s, v in rr.random_tensors(rr.CFG)]
            return rr.write_model(os.path.join(d, "model"), rr.CFG, tensors)
        return make

    def train_on(model_setup, *extra):
        return lambda env, d: ["train", *env.train_args(env.data, os.path.join(d, "out"), model_setup(env, d)),
                               "--max_steps", "1", *extra]

    def gguf_base_with_nan(env, d):
        """The tiny model exported as an f32 GGUF with a NaN as the first value of blk.1.attn_output.weight."""
        import gguf_cases  # beside this file; imported here so that run_robustness's order does not matter

        def plant(tensors):
            for i, (name, dims, t, data) in enumerate(tensors):
                if name == "blk.1.attn_output.weight":
                    tensors[i] = (name, dims, t, struct.pack("<f", float("nan")) + data[4:])
        return gguf_cases.gguf_with(tensor_edit=plant)(env, d)

    def checkpoint_of_other_model(**changes):
        """checkpoint-1 replaced by the weights and config.json of a model with other settings."""
        def edit(ckpt):
            cfg = model_cfg(**changes)
            with open(os.path.join(ckpt, "config.json"), "w") as f:
                json.dump(cfg, f)
            with open(os.path.join(ckpt, "model.safetensors"), "wb") as f:
                f.write(rr.safetensors_bytes(rr.random_tensors(cfg, seed=5)))
        return edit

    def swap_two_tokens(ckpt):
        """The checkpoint's copy of tokenizer.json with the ids of two tokens swapped: same size, another vocabulary."""
        p = os.path.join(ckpt, "tokenizer.json")
        j = json.load(open(p, encoding="utf-8"))
        vocab = j["model"]["vocab"]
        a, b = [k for k, v in vocab.items() if v in (40, 41)]
        vocab[a], vocab[b] = vocab[b], vocab[a]
        json.dump(j, open(p, "w", encoding="utf-8"), ensure_ascii=False)

    def same_model_elsewhere(env, d):
        return env.model_copy(os.path.join(d, "moved_model"))

    # ---- adapters --------------------------------------------------------------------------------------------
    def adapter(d, r=2, alpha=4, bad=None):
        """A peft adapter (q_proj, v_proj) of the tiny model; bad: a value for the first element of one lora_A."""
        cfg = rr.CFG
        H = cfg["hidden_size"]
        kv = cfg["num_key_value_heads"] * (H // cfg["num_attention_heads"])
        tensors = []
        for layer in range(cfg["num_hidden_layers"]):
            for mod, out in (("q_proj", H), ("v_proj", kv)):
                pre = f"base_model.model.model.layers.{layer}.self_attn.{mod}."
                tensors.append((pre + "lora_A.weight", [r, H], [0.01 * ((i % 7) - 3) for i in range(r * H)]))
                tensors.append((pre + "lora_B.weight", [out, r], [0.02 * ((i % 5) - 2) for i in range(r * out)]))
        if bad is not None:
            tensors[1] = (tensors[1][0], tensors[1][1], [bad] + tensors[1][2][1:])
        a = os.path.join(d, "adapter")
        os.makedirs(a, exist_ok=True)
        rr.write(os.path.join(a, "adapter_config.json"), json.dumps(
            {"peft_type": "LORA", "r": r, "lora_alpha": alpha, "target_modules": ["q_proj", "v_proj"], "bias": "none",
             "task_type": "CAUSAL_LM", "lora_dropout": 0.0}))
        with open(os.path.join(a, "adapter_model.safetensors"), "wb") as f:
            f.write(rr.safetensors_bytes(tensors))
        return a

    def train_adapter(*extra, **adapter_args):
        return lambda env, d: ["train", *env.train_args(env.data, os.path.join(d, "out")), "--max_steps", "1",
                               "--use_peft", "True", "--adapter_name_or_path", adapter(d, **adapter_args), *extra]

    def config_file(content):
        def make(env, d):
            p = rr.write(os.path.join(d, "args.json"), json.dumps(content))
            return ["train", *env.train_args(env.data, os.path.join(d, "out")), "--max_steps", "1", "--config", p]
        return make

    # ---- outcome checks --------------------------------------------------------------------------------------
    def no_final_model(d, res):
        return "a final model was saved" if os.path.exists(os.path.join(d, "out", "trainer_state.json")) else None

    def stdout_has(*subs):
        def check(d, res):
            missing = [s for s in subs if s not in res.stdout]
            return f"stdout lacks {missing}" if missing else None
        return check

    def final_adapter_saved(d, res):
        return None if os.path.exists(os.path.join(d, "out", "adapter_model.safetensors")) else "no final adapter"

    NAN_MOMENT = ["checkpoint-1/optimizer.safetensors", "exp_avg.model.norm.weight", "NaN", "element 0",
                  "--allow_nonfinite_weights"]
    EPS = ("--adam_epsilon", "1e-50", "--weight_decay", "0")  # 1e-50 is 0 in fp32: 0/0 on a zero gradient
    cases = [
        # ---- non-finite state ------------------------------------------------------------------------------------
        ("state/optimizer_nan_resume", A_STATE, resume_edited(in_optimizer("exp_avg.model.norm.weight", float("nan"))),
         1, NAN_MOMENT),
        ("state/optimizer_inf_second_moment_resume", A_STATE,
         resume_edited(in_optimizer("exp_avg_sq.model.layers.1.mlp.up_proj.weight", float("inf"))), 1,
         ["optimizer.safetensors", "exp_avg_sq.model.layers.1.mlp.up_proj.weight", "inf"]),
        ("state/optimizer_negative_second_moment_resume", A_STATE,
         resume_edited(in_optimizer("exp_avg_sq.model.norm.weight", -1.0)), 1,
         ["optimizer.safetensors", "exp_avg_sq.model.norm.weight", "never negative"]),
        ("state/optimizer_nan_resume_allowed", A_STATE,
         resume_edited(in_optimizer("exp_avg.model.norm.weight", float("nan")), "--allow_nonfinite_weights", "True"),
         0, []),
        ("state/checkpoint_weights_nan_resume", A_STATE,
         resume_edited(in_weights("model.layers.0.self_attn.k_proj.weight", float("nan"))), 1,
         ["checkpoint-1/model.safetensors", "model.layers.0.self_attn.k_proj.weight", "NaN"]),
        ("state/lora_checkpoint_adapter_inf_resume", A_STATE,
         resume_lora(lambda ckpt: set_value(os.path.join(ckpt, "adapter_model.safetensors"),
                                            "layers.1.self_attn.q_proj.lora_B.weight", float("-inf"))), 1,
         ["checkpoint-1/adapter_model.safetensors", "layers.1.self_attn.q_proj.lora_B.weight", "-inf"]),
        ("state/lora_optimizer_nan_resume", A_STATE,
         resume_lora(lambda ckpt: set_value(os.path.join(ckpt, "optimizer.safetensors"),
                                            "exp_avg.base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight",
                                            float("nan"))), 1,
         ["checkpoint-1/optimizer.safetensors", "exp_avg.base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight"]),
        ("state/base_model_nan_train", A_STATE, train_on(base_with("model.layers.1.self_attn.o_proj.weight", float("nan"))),
         1, ["model.safetensors", "model.layers.1.self_attn.o_proj.weight", "NaN", "--allow_nonfinite_weights"]),
        ("state/gguf_base_nan_train", A_STATE, train_on(gguf_base_with_nan), 1,
         ["bad.gguf", "model.layers.1.self_attn.o_proj.weight", "NaN", "--allow_nonfinite_weights"]),
        ("state/adapter_nan_train", A_STATE, train_adapter(bad=float("nan")), 1,
         ["adapter/adapter_model.safetensors", "layers.0.self_attn.q_proj.lora_B.weight", "NaN"]),
        ("state/update_nonfinite_stops", A_STATE, train_on(untied_model, *EPS), 1,
         ["optimizer step 1", "model.embed_tokens.weight", "NaN", "loss and gradient norm were finite",
          "--adam_epsilon", "no final model"]),
        ("state/update_nonfinite_not_skippable", A_STATE, train_on(untied_model, *EPS, "--skip_nonfinite_steps", "True"),
         1, ["optimizer step 1", "model.embed_tokens.weight", "--skip_nonfinite_steps cannot skip"]),
        ("state/update_nonfinite_allowed", A_STATE, train_on(untied_model, *EPS, "--allow_nonfinite_weights", "True"),
         0, []),
        # ---- resume: the checkpoint must belong to the base model ------------------------------------------------
        ("resume/other_model_config", A_RESUME, resume_edited(checkpoint_of_other_model(hidden_size=64)), 1,
         ["--resume_from_checkpoint", "checkpoint-1/config.json", "another model", '"hidden_size" is 64',
          "but 32 in"]),
        ("resume/other_model_rope_theta", A_RESUME, resume_edited(checkpoint_of_other_model(rope_theta=500000.0)), 1,
         ["checkpoint-1/config.json", '"rope_theta"', "500000"]),
        ("resume/other_model_untied_head", A_RESUME,
         resume_edited(lambda ckpt: rr.edit_json(os.path.join(ckpt, "config.json"),
                                                 rr.set_key("tie_word_embeddings", False))), 1,
         ["checkpoint-1/config.json", '"tie_word_embeddings"']),
        ("resume/other_vocabulary", A_RESUME, resume_edited(swap_two_tokens), 1,
         ["checkpoint-1/tokenizer.json", "another tokenizer", "token 40"]),
        ("resume/lora_checkpoint_other_model", A_RESUME,
         resume_lora(None, model=other_model(hidden_size=64, intermediate_size=96)), 1,
         ["checkpoint-1/adapter_model.safetensors", "lora_A.weight", "shape"]),
        ("resume/same_model_other_path_note", A_RESUME, resume_edited(lambda ckpt: None, model=same_model_elsewhere), 0,
         ["was trained from", "(its training_args.json)", "moved_model"]),
        ("resume/state_invalid_utf8", A_RESUME,
         resume_edited(lambda ckpt: rr.write(os.path.join(ckpt, "trainer_state.json"), b'{"x": "\xff"}', "wb")), 1,
         ["checkpoint-1/trainer_state.json", "invalid UTF-8"]),
        ("resume/state_fifo", A_RESUME,
         resume_edited(lambda ckpt: (os.remove(os.path.join(ckpt, "trainer_state.json")),
                                     os.mkfifo(os.path.join(ckpt, "trainer_state.json")))), 1,
         ["trainer_state.json", "FIFO"]),
        # ---- LoRA flags that an adapter's config overrides, empty targets, alpha 0 -------------------------------
        ("lora/resume_flags_differ_note", A_LORA, resume_lora(None, "--lora_r", "8", "--lora_alpha", "64"), 0,
         ["note: continuing the adapter", "checkpoint-1", "--lora_r 8 -> r 2", "--lora_alpha 64 -> 4"]),
        ("lora/resume_same_flags_no_note", A_LORA,
         resume_lora(None, "--lora_r", "2", "--lora_alpha", "4", "--lora_dropout", "0.05", "--lora_target_modules",
                     "v_proj,q_proj"), 0, []),
        ("lora/adapter_flags_differ_note", A_LORA,
         train_adapter("--lora_r", "4", "--lora_target_modules", "all-linear"), 0,
         ["note: continuing the adapter", "--lora_r 4 -> r 2", "--lora_alpha 32 (the default) -> 4",
          "--lora_target_modules all-linear -> 4 linear layers (q_proj, v_proj)"]),
        ("lora/adapter_and_resume_note", A_LORA,
         lambda env, d: [*resume_lora()(env, d), "--adapter_name_or_path", adapter(d)], 0,
         ["--adapter_name_or_path ignored", "checkpoint-1"]),
        ("lora/target_modules_empty", A_LORA, rr.train_flags("--use_peft", "True", "--lora_target_modules", ""), 1,
         ["--lora_target_modules", "empty list", "all-linear"]),
        ("lora/target_modules_empty_config", A_LORA, config_file({"use_peft": True, "lora_target_modules": []}), 1,
         ["--lora_target_modules", "empty list"]),
        ("lora/target_modules_null_config_is_default", A_LORA,
         config_file({"use_peft": True, "lora_target_modules": None}), 0, []),
        ("lora/alpha_zero_warns", A_LORA, rr.train_flags("--use_peft", "True", "--lora_alpha", "0"), 0,
         ["warning: --lora_alpha 0 scales the LoRA term by 0", "nothing trains"]),
        ("lora/adapter_alpha_zero_warns", A_LORA, train_adapter(alpha=0), 0,
         ["warning:", "adapter_config.json", "lora_alpha 0", "nothing trains"]),
    ]

    extra = {
        "state/optimizer_nan_resume": no_final_model,
        "state/update_nonfinite_stops": no_final_model,
        "state/update_nonfinite_not_skippable": no_final_model,
        "resume/other_model_config": no_final_model,
        "resume/other_vocabulary": no_final_model,
        "lora/resume_flags_differ_note": final_adapter_saved,
        "lora/resume_same_flags_no_note": lambda d, r: (final_adapter_saved(d, r) or
                                                        ("noted" if "continuing the adapter" in r.stdout else None)),
        "lora/alpha_zero_warns": final_adapter_saved,
    }
    return cases, extra
