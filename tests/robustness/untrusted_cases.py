"""Catalogue cases of issue 30 (part A): model folders, adapters and datasets as hostile input, and the chat template
engine's bounds. Loaded by run_robustness.py (`make_cases(rr)` gets that module, for its fixtures and helpers); each case
is a row like the others: (name, area, setup, exit code, substrings of the message).

- files: a FIFO named chat_template.jinja / tokenizer.json / tokenizer_config.json / config.json /
  generation_config.json / model.safetensors.index.json / adapter_config.json or given as --dataset_path (all used to
  block forever, or sft now refuses them at once), a folder named chat_template.jinja (rendered empty), a template
  with invalid UTF-8 (accepted, and `--json` output stopped being JSON), a template over the size limit, a character
  device behind a symlink, a dangling symlink; symlinked files of a Hugging Face cache snapshot still load;
- chat templates: nested inline ifs (a segfault), values growing without being printed (GBs, then an error blaming
  --per_device_train_batch_size), 64-bit integer overflow (wrapped silently: undefined behaviour);
- non-finite weights: a NaN/inf in an adapter or a base model is refused by generate, eval and merge, naming the
  tensor, unless --allow_nonfinite_weights.
"""
import json
import os
import struct

A_FILES, A_TMPL, A_NONFINITE = "untrusted files", "chat template", "non-finite weights"

CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
          "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
CHAT_ROWS = ('{"messages":[{"role":"user","content":"Hi"},{"role":"assistant","content":"Hello there"}]}\n'
             '{"messages":[{"role":"user","content":"Name a colour"},{"role":"assistant","content":"Blue"}]}\n')


def make_cases(rr):
    """rr: the run_robustness module (fixtures, helpers)."""

    def with_template(source):
        return rr.model_with(files={"chat_template.jinja": source})

    def chat_file(d):
        return rr.write(os.path.join(d, "chat.jsonl"), CHAT_ROWS)

    def tokenize_chat(model_setup, *extra):
        return lambda env, d: ["tokenize", "--model", model_setup(env, d), "--chat", chat_file(d), "--json", *extra]

    def generate_model_template(model_setup):
        return lambda env, d: ["generate", "--model", model_setup(env, d), "--template", "model", "--prompt", "hi",
                               "--max_new_tokens", "2"]

    def train_model_template(model_setup):
        def make(env, d):
            return ["train", *env.train_args(chat_file(d), os.path.join(d, "out"), model_setup(env, d)),
                    "--template", "model", "--max_steps", "1"]
        return make

    def fifo_in_model(name):
        def make(env, d):
            m = env.model_copy(os.path.join(d, "m"))
            p = os.path.join(m, name)
            if os.path.exists(p):
                os.remove(p)
            os.mkfifo(p)
            return m
        return make

    def fifo_model_index(env, d):
        m = env.model_copy(os.path.join(d, "m"))
        os.rename(os.path.join(m, "model.safetensors"), os.path.join(m, "model-00001-of-00001.safetensors"))
        os.mkfifo(os.path.join(m, "model.safetensors.index.json"))
        return m

    def fifo_dataset(env, d):
        p = os.path.join(d, "rows.jsonl")
        os.mkfifo(p)
        return ["train", *env.train_args(p, os.path.join(d, "out")), "--max_steps", "1"]

    def hf_cache_snapshot(env, d):
        """The Hugging Face cache layout: every file of snapshots/<rev>/ is a relative symlink into blobs/."""
        blobs, snap = os.path.join(d, "blobs"), os.path.join(d, "snapshots", "abc123")
        os.makedirs(blobs)
        os.makedirs(snap)
        for i, name in enumerate(sorted(os.listdir(env.model))):
            os.link(os.path.join(env.model, name), os.path.join(blobs, f"blob{i}"))
            os.symlink(os.path.join("..", "..", "blobs", f"blob{i}"), os.path.join(snap, name))
        rr.write(os.path.join(blobs, "tmpl"), CHATML)
        os.symlink(os.path.join("..", "..", "blobs", "tmpl"), os.path.join(snap, "chat_template.jinja"))
        return snap

    def symlinked(name, target):
        def make(env, d):
            m = env.model_copy(os.path.join(d, "m"))
            p = os.path.join(m, name)
            if os.path.exists(p):
                os.remove(p)
            os.symlink(target, p)
            return m
        return make

    # ---- adapters and non-finite weights
    def adapter(d, bad=None):
        """A peft LoRA adapter (r 2) on q_proj/v_proj of the catalogue's tiny model; bad: (tensor suffix, value)."""
        cfg = rr.CFG
        H, kv = cfg["hidden_size"], cfg["num_key_value_heads"] * (cfg["hidden_size"] // cfg["num_attention_heads"])
        tensors = []
        for layer in range(cfg["num_hidden_layers"]):
            for mod, out in (("q_proj", H), ("v_proj", kv)):
                pre = f"base_model.model.model.layers.{layer}.self_attn.{mod}."
                tensors.append((pre + "lora_A.weight", [2, H], [0.01 * ((i % 7) - 3) for i in range(2 * H)]))
                tensors.append((pre + "lora_B.weight", [out, 2], [0.02 * ((i % 5) - 2) for i in range(2 * out)]))
        if bad:
            name, value = bad
            tensors = [(n, s, [value] + v[1:] if n.endswith(name) else v) for n, s, v in tensors]
        a = os.path.join(d, "adapter")
        os.makedirs(a, exist_ok=True)
        rr.write(os.path.join(a, "adapter_config.json"), json.dumps(
            {"peft_type": "LORA", "r": 2, "lora_alpha": 4, "target_modules": ["q_proj", "v_proj"], "bias": "none",
             "task_type": "CAUSAL_LM", "lora_dropout": 0.0}))
        with open(os.path.join(a, "adapter_model.safetensors"), "wb") as f:
            f.write(rr.safetensors_bytes(tensors))
        return a

    BAD_A = ("layers.1.self_attn.v_proj.lora_A.weight", float("nan"))
    BAD_B = ("layers.0.self_attn.q_proj.lora_B.weight", float("inf"))

    def generate_adapter(bad, *extra):
        return lambda env, d: ["generate", "--model", env.model, "--adapter", adapter(d, bad), "--prompt", "hi",
                               "--max_new_tokens", "2", *extra]

    def eval_adapter(bad, *extra):
        def make(env, d):
            row = {"ind": 1, "activity_label": "Cooking", "ctx_a": "A man", "ctx_b": "cuts", "ctx": "A man cuts",
                   "endings": ["a", "b", "c", "d"], "source_id": "x", "split": "val", "split_type": "indomain",
                   "label": "0"}
            rr.write(os.path.join(d, "tasks", "hellaswag", "hellaswag_val.jsonl"), json.dumps(row) + "\n")
            return ["eval", "--model", env.model, "--adapter", adapter(d, bad), "--tasks", "hellaswag", "--data_dir",
                    os.path.join(d, "tasks"), "--quiet", *extra]
        return make

    def merge_adapter(bad, *extra):
        return lambda env, d: ["merge", "--model", env.model, "--adapter", adapter(d, bad), "--output_dir",
                               os.path.join(d, "merged"), *extra]

    def inf_base_model(env, d):
        tensors = [(n, s, [float("inf")] + v[1:] if n == "model.layers.1.mlp.down_proj.weight" else v)
                   for n, s, v in rr.random_tensors(rr.CFG)]
        return rr.write_model(os.path.join(d, "model"), rr.CFG, tensors)

    def no_merged_folder(d, res):
        left = [n for n in os.listdir(d) if "merged" in n]
        return f"left {left}" if left else None

    def stderr_lacks(*subs):
        def check(d, res):
            found = [s for s in subs if s in res.stderr]
            return f"stderr has {found}" if found else None
        return check

    NEEDLES_NAN = ["adapter_model.safetensors", "base_model.model.model.layers.1.self_attn.v_proj.lora_A.weight",
                   "NaN", "--allow_nonfinite_weights"]
    deep_if = "{{ " + "1 if true else " * 60000 + "1 }}"  # 900 KB: under the 1 MiB template limit
    doubling = "{% set ns = namespace(s='ab') %}\n{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}"
    cases = [
        # ---- files of a model folder / adapter / dataset ------------------------------------------------------
        ("files/chat_template_fifo", A_FILES, tokenize_chat(fifo_in_model("chat_template.jinja")), 1,
         ["chat_template.jinja", "not a regular file", "FIFO"]),
        ("files/tokenizer_json_fifo", A_FILES, rr.tokenize(fifo_in_model("tokenizer.json")), 1,
         ["tokenizer.json", "FIFO"]),
        ("files/tokenizer_config_fifo", A_FILES, rr.tokenize(fifo_in_model("tokenizer_config.json")), 1,
         ["tokenizer_config.json", "FIFO"]),
        ("files/config_json_fifo", A_FILES, rr.info(fifo_in_model("config.json")), 1, ["config.json", "FIFO"]),
        ("files/generation_config_fifo", A_FILES, rr.generate(fifo_in_model("generation_config.json")), 1,
         ["generation_config.json", "FIFO"]),
        ("files/index_json_fifo", A_FILES, rr.info(fifo_model_index), 1, ["model.safetensors.index.json", "FIFO"]),
        ("files/adapter_config_fifo", A_FILES,
         lambda env, d: ["generate", "--model", env.model, "--adapter", fifo_adapter_config(d), "--prompt", "hi"], 1,
         ["adapter_config.json", "FIFO"]),
        ("files/dataset_fifo_refused", A_FILES, fifo_dataset, 1, ["rows.jsonl", "FIFO", "regular file"]),
        ("files/chat_template_folder", A_FILES,
         tokenize_chat(rr.model_with(files={"chat_template.jinja/x": "x"})), 1, ["chat_template.jinja", "folder"]),
        ("files/chat_template_invalid_utf8", A_FILES,
         tokenize_chat(with_template(b"{{ 'ok' }}\n{{ '\xff\xfe' }}")), 1,
         ["chat_template.jinja", "line 2", "invalid UTF-8"]),
        ("files/chat_template_too_large", A_FILES,
         tokenize_chat(with_template("{# " + "x" * (1 << 20) + " #}" + CHATML)), 1,
         ["chat_template.jinja", "1 MiB", "chat template"]),
        ("files/tokenizer_json_char_device", A_FILES, rr.tokenize(symlinked("tokenizer.json", "/dev/zero")), 1,
         ["tokenizer.json", "character device"]),
        ("files/chat_template_dangling_symlink", A_FILES,
         tokenize_chat(symlinked("chat_template.jinja", "../nowhere/tmpl.jinja")), 1,
         ["chat_template.jinja", "cannot open", "No such file"]),
        ("files/hf_cache_symlinks_load", A_FILES, lambda env, d: ["tokenize", "--model", hf_cache_snapshot(env, d),
                                                                  "--chat", chat_file(d), "--json"], 0,
         ['"text":"<|im_start|>user\\nHi<|im_end|>']),
        # ---- the chat template engine -------------------------------------------------------------------------
        ("template/nested_inline_if_tokenize", A_TMPL, tokenize_chat(with_template(deep_if)), 1,
         ["chat_template.jinja:1", "nested too deeply"]),
        ("template/nested_inline_if_generate", A_TMPL, generate_model_template(with_template(deep_if)), 1,
         ["chat_template.jinja:1", "nested too deeply"]),
        ("template/namespace_string_doubling", A_TMPL, tokenize_chat(with_template(doubling)), 1,
         ["chat_template.jinja:2", "exceed 64 MiB"]),
        ("template/namespace_string_doubling_train", A_TMPL, train_model_template(with_template(doubling)), 1,
         ["chat_template.jinja:2", "exceed 64 MiB"]),
        ("template/string_repetition", A_TMPL,
         tokenize_chat(with_template("{% set x = 'a' * 200000000 %}{{ x ~ x }}")), 1,
         ["chat_template.jinja:1", "exceed 64 MiB"]),
        ("template/messages_repetition", A_TMPL,
         tokenize_chat(with_template("\n\n{% for m in messages * 100000000 %}{% endfor %}")), 1,
         ["chat_template.jinja:3", "exceed 64 MiB"]),
        ("template/tojson_huge_indent", A_TMPL,
         tokenize_chat(with_template("{{ messages | tojson(indent=1000000000) }}")), 1,
         ["chat_template.jinja:1", "exceed 64 MiB"]),
        ("template/int_add_overflow", A_TMPL, tokenize_chat(with_template("{{ 9223372036854775807 + 1 }}")), 1,
         ["chat_template.jinja:1", "integer overflow", "9223372036854775807 + 1"]),
        ("template/int_pow_overflow", A_TMPL, tokenize_chat(with_template("x\n{{ 2 ** 64 }}")), 1,
         ["chat_template.jinja:2", "integer overflow", "2 ** 64"]),
        ("template/int_floordiv_overflow", A_TMPL,
         tokenize_chat(with_template("{{ (-9223372036854775807 - 1) // -1 }}")), 1,
         ["chat_template.jinja:1", "integer overflow"]),
        ("template/int_negate_overflow", A_TMPL,
         tokenize_chat(with_template("{% set m = -9223372036854775807 - 1 %}{{ -m }}")), 1,
         ["chat_template.jinja:1", "integer overflow"]),
        # ---- non-finite weights -------------------------------------------------------------------------------
        ("nonfinite/adapter_nan_generate", A_NONFINITE, generate_adapter(BAD_A), 1, NEEDLES_NAN),
        ("nonfinite/adapter_inf_generate", A_NONFINITE, generate_adapter(BAD_B), 1,
         ["adapter_model.safetensors", "layers.0.self_attn.q_proj.lora_B.weight", "inf", "element 0"]),
        ("nonfinite/adapter_nan_generate_allowed", A_NONFINITE, generate_adapter(BAD_A, "--allow_nonfinite_weights"),
         0, []),
        ("nonfinite/adapter_nan_eval", A_NONFINITE, eval_adapter(BAD_A), 1, NEEDLES_NAN),
        ("nonfinite/adapter_nan_merge", A_NONFINITE, merge_adapter(BAD_A), 1, NEEDLES_NAN),
        ("nonfinite/adapter_clean_merge", A_NONFINITE, merge_adapter(None), 0, ["merged"]),
        ("nonfinite/base_inf_generate", A_NONFINITE,
         lambda env, d: ["generate", "--model", inf_base_model(env, d), "--prompt", "hi", "--max_new_tokens", "2"], 1,
         ["model.safetensors", "model.layers.1.mlp.down_proj.weight", "inf", "--allow_nonfinite_weights"]),
        ("nonfinite/base_inf_merge", A_NONFINITE,
         lambda env, d: ["merge", "--model", inf_base_model(env, d), "--adapter", adapter(d), "--output_dir",
                         os.path.join(d, "merged")], 1,
         ["model.safetensors", "model.layers.1.mlp.down_proj.weight", "inf"]),
    ]

    def fifo_adapter_config(d):
        a = adapter(d)
        os.remove(os.path.join(a, "adapter_config.json"))
        os.mkfifo(os.path.join(a, "adapter_config.json"))
        return a

    extra = {
        "template/namespace_string_doubling_train": stderr_lacks("per_device_train_batch_size"),
        "template/namespace_string_doubling": stderr_lacks("per_device_train_batch_size"),
        "nonfinite/adapter_nan_merge": no_merged_folder,
        "nonfinite/base_inf_merge": no_merged_folder,
    }
    return cases, extra
