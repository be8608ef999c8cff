"""`sft export` / GGUF import checked by the real clients in the oracle venv (tests/requirements.txt):

- gguf-py's GGUFReader reads every file we write: keys, value types, tensor names, shapes and types as llama.cpp's
  converter writes them; tensor bytes equal gguf-py's own encoding of the HF weights (q8_0 bit-identical to
  gguf.quants.quantize, f16 = numpy's float16, bf16 = gguf-py's BF16), with the Llama q/k permutation;
- transformers' from_pretrained(gguf_file=...) loads our files: logits equal the HF folder's (f32 1e-5 relative,
  f16/bf16 at their rounding, q8_0 reported);
- import: sft reads the GGUF back (model_parity_tool, sft tokenize): f32 logits bit-identical to the folder's, the
  tokenizer rebuilt from the vocabulary encodes a corpus like the original tokenizer.json, the chat template renders
  the same; training from a GGUF writes an HF folder transformers loads; --save_gguf writes the merged model.
llama.cpp itself: test_gguf_llama_cpp.py (label slow)."""
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import gguf_models

SRC = gguf_models.SRC
SFT = os.environ.get("SFT_BIN", str(SRC / "build" / "src" / "cli" / "sft"))
BUILD = Path(os.environ.get("SFT_BUILD_DIR", SRC / "build"))
KINDS = ["llama", "qwen2", "qwen3", "tiny"]
PRE = {"llama": "llama-bpe", "llama_rs": "llama-bpe", "qwen2": "qwen2", "qwen3": "qwen2", "tiny": "gpt-2"}
ARCH = {"llama": "llama", "llama_rs": "llama", "qwen2": "qwen2", "qwen3": "qwen3", "tiny": "llama"}
CORPUS = ["Hello world! It's 2024, and 12345 apples cost $3.50.", "  leading spaces\n\nnew lines\ttabs",
          "Ünïcödé: 你好，世界 🚀 — café", "<|im_start|>user\nHi<|im_end|>\n", "<|endoftext|>don't stop",
          "I've been 'told' he's there, 'RE you sure?", "333 3333 33333 3.14159"]


def run(*args, check=True):
    r = subprocess.run([SFT, *map(str, args)], capture_output=True, text=True,
                       env=dict(os.environ, OMP_NUM_THREADS="2"))
    if check:
        assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("gguf")
    return {k: gguf_models.build(k, root / k) for k in KINDS + ["llama_rs"]}


@pytest.fixture(scope="module")
def exported(models, tmp_path_factory):
    root = tmp_path_factory.mktemp("out")
    out = {}
    for kind in KINDS + ["llama_rs"]:
        for t in ("f32", "f16", "bf16", "q8_0"):
            if kind == "llama_rs" and t != "f32":
                continue
            f = root / f"{kind}-{t}.gguf"
            run("export", "--model", models[kind], "--outfile", f, "--outtype", t)
            out[kind, t] = f
    return out


def hf_weights(folder):
    from safetensors.numpy import load_file
    return load_file(str(Path(folder) / "model.safetensors"))


def permute(w, n_head):
    """llama.cpp's rotary row order: per head, row 2i + j of the GGUF is row j * d/2 + i of the HF weight."""
    d = w.shape[0] // n_head
    rows = [h * d + j * (d // 2) + i for h in range(n_head) for i in range(d // 2) for j in range(2)]
    return w[rows]


def expected_tensors(kind, folder):
    """GGUF name -> (HF values as the converter writes them, expected ggml type for outtype X)."""
    cfg = json.loads((Path(folder) / "config.json").read_text())
    w = hf_weights(folder)
    heads, kv = cfg["num_attention_heads"], cfg["num_key_value_heads"]
    out = {"token_embd.weight": w["model.embed_tokens.weight"], "output_norm.weight": w["model.norm.weight"]}
    if "lm_head.weight" in w:
        out["output.weight"] = w["lm_head.weight"]
    names = {"input_layernorm.weight": "attn_norm.weight", "post_attention_layernorm.weight": "ffn_norm.weight",
             "mlp.gate_proj.weight": "ffn_gate.weight", "mlp.up_proj.weight": "ffn_up.weight",
             "mlp.down_proj.weight": "ffn_down.weight", "self_attn.o_proj.weight": "attn_output.weight",
             "self_attn.o_proj.bias": "attn_output.bias", "self_attn.q_norm.weight": "attn_q_norm.weight",
             "self_attn.k_norm.weight": "attn_k_norm.weight"}
    for p in "qkv":
        for s in ("weight", "bias"):
            names[f"self_attn.{p}_proj.{s}"] = f"attn_{p}.{s}"
    for l in range(cfg["num_hidden_layers"]):
        for hf, g in names.items():
            v = w.get(f"model.layers.{l}.{hf}")
            if v is None:
                continue
            if ARCH[kind] == "llama" and hf.startswith(("self_attn.q_proj", "self_attn.k_proj")):
                v = permute(v, heads if "q_proj" in hf else kv)
            out[f"blk.{l}.{g}"] = v
    return out


def ggml_type(name, shape, outtype):
    import gguf
    T = gguf.GGMLQuantizationType
    if len(shape) <= 1 or not name.endswith(".weight") or name.endswith("_norm.weight"):
        return T.F32
    t = {"f32": T.F32, "f16": T.F16, "bf16": T.BF16, "q8_0": T.Q8_0}[outtype]
    return T.F16 if t == T.Q8_0 and shape[-1] % 32 else t


@pytest.mark.parametrize("kind", KINDS)
def test_gguf_py_reads_keys_types_and_tensor_bytes(models, exported, kind):
    import gguf
    from gguf import GGUFReader, GGUFValueType as VT
    cfg = json.loads((models[kind] / "config.json").read_text())
    a = ARCH[kind]
    for outtype in ("f32", "f16", "bf16", "q8_0"):
        r = GGUFReader(str(exported[kind, outtype]))
        f = r.fields

        def val(k, vt):
            assert k in f, k
            assert f[k].types[0] == vt, (k, f[k].types)
            return f[k].contents()
        assert val("general.architecture", VT.STRING) == a
        assert val("general.file_type", VT.UINT32) == {"f32": 0, "f16": 1, "bf16": 32, "q8_0": 7}[outtype]
        assert val("general.quantization_version", VT.UINT32) == 2
        assert val(f"{a}.block_count", VT.UINT32) == cfg["num_hidden_layers"]
        assert val(f"{a}.context_length", VT.UINT32) == cfg["max_position_embeddings"]
        assert val(f"{a}.embedding_length", VT.UINT32) == cfg["hidden_size"]
        assert val(f"{a}.feed_forward_length", VT.UINT32) == cfg["intermediate_size"]
        assert val(f"{a}.attention.head_count", VT.UINT32) == cfg["num_attention_heads"]
        assert val(f"{a}.attention.head_count_kv", VT.UINT32) == cfg["num_key_value_heads"]
        theta = cfg.get("rope_theta") or cfg["rope_parameters"]["rope_theta"]
        assert val(f"{a}.rope.freq_base", VT.FLOAT32) == np.float32(theta)
        assert val(f"{a}.attention.layer_norm_rms_epsilon", VT.FLOAT32) == np.float32(cfg["rms_norm_eps"])
        head_dim = cfg.get("head_dim") or cfg["hidden_size"] // cfg["num_attention_heads"]
        assert val(f"{a}.rope.dimension_count", VT.UINT32) == head_dim
        if kind == "qwen3":
            assert val(f"{a}.attention.key_length", VT.UINT32) == 128
            assert val(f"{a}.attention.value_length", VT.UINT32) == 128
        assert val("tokenizer.ggml.model", VT.STRING) == "gpt2"
        assert val("tokenizer.ggml.pre", VT.STRING) == PRE[kind]
        tokens = f["tokenizer.ggml.tokens"].contents()
        assert len(tokens) == cfg["vocab_size"] and f["tokenizer.ggml.token_type"].types == [VT.ARRAY, VT.INT32]
        tj = json.loads((models[kind] / "tokenizer.json").read_text())
        assert len(f["tokenizer.ggml.merges"].contents()) == len(tj["model"]["merges"]) > 0
        assert isinstance(val("tokenizer.ggml.add_bos_token", VT.BOOL), bool)
        assert val("tokenizer.ggml.eos_token_id", VT.UINT32) >= 0

        exp = expected_tensors(kind, models[kind])
        got = {t.name: t for t in r.tensors}
        assert set(got) == set(exp), set(got) ^ set(exp)
        for name, want in exp.items():
            t = got[name]
            assert list(t.shape) == list(reversed(want.shape)), name  # gguf-py lists ggml dims (fastest first)
            qt = ggml_type(name, want.shape, outtype)
            assert t.tensor_type == qt, (name, t.tensor_type, qt)
            ref = gguf.quants.quantize(want.astype(np.float32), qt)
            assert np.array_equal(np.asarray(t.data).view(np.uint8).reshape(-1), ref.view(np.uint8).reshape(-1)), \
                f"{outtype} {name}: bytes differ from gguf-py's encoding"


def test_token_list_follows_the_converter(models, exported):
    """Ids the tokenizer lacks are "[PAD<id>]" UNUSED; added special tokens CONTROL; the rest NORMAL."""
    from gguf import GGUFReader
    from transformers import AutoTokenizer
    r = GGUFReader(str(exported["qwen2", "f32"]))
    toks = r.fields["tokenizer.ggml.tokens"].contents()
    types = r.fields["tokenizer.ggml.token_type"].contents()
    hf = AutoTokenizer.from_pretrained(models["qwen2"])
    vocab = hf.get_vocab()
    assert toks[151643] == "<|endoftext|>" and types[151643] == 3
    assert toks[151679] == "[PAD151679]" and types[151679] == 5
    assert all(vocab[t] == i for i, t in enumerate(toks[:151669]))
    assert types[100] == 1
    assert r.fields["tokenizer.ggml.eos_token_id"].contents() == 151645  # tokenizer_config eos <|im_end|>
    assert r.fields["tokenizer.ggml.bos_token_id"].contents() == 151643  # config.json's, as the converter
    assert r.fields["tokenizer.ggml.add_bos_token"].contents() is False
    r = GGUFReader(str(exported["llama", "f32"]))
    llama = AutoTokenizer.from_pretrained(models["llama"])
    assert llama("x")["input_ids"][0] == 128000  # Meta's post-processor adds BOS ...
    assert r.fields["tokenizer.ggml.add_bos_token"].contents() is True  # ... and the GGUF says so
    assert r.fields["tokenizer.ggml.bos_token_id"].contents() == 128000
    assert "tokenizer.chat_template" in r.fields


def logits_sft(model, ids, tmp_path, name):
    batch = {"B": 1, "T": len(ids), "input_ids": ids, "position_ids": list(range(len(ids))), "doc_ids": [0] * len(ids),
             "labels": ids}
    bj = tmp_path / f"{name}.json"
    bj.write_text(json.dumps(batch))
    out = tmp_path / name
    out.mkdir()
    r = subprocess.run([str(BUILD / "tests" / "model_parity_tool"), str(model), str(bj), str(out), "f32", "cpu",
                        "forward"], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return np.fromfile(out / "logits.bin", dtype=np.float32).reshape(len(ids), -1)


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize("kind", KINDS + ["llama_rs"])
def test_round_trip_logits(models, exported, kind, tmp_path):
    """export -> sft reads the GGUF: f32 logits bit-identical to the folder's; f16/bf16/q8_0 at their rounding."""
    ids = [5, 17, 42, 99, 7, 3, 250, 11, 64, 128]
    ref = logits_sft(models[kind], ids, tmp_path, "folder")
    got = logits_sft(exported[kind, "f32"], ids, tmp_path, "f32")
    assert np.array_equal(got, ref), f"f32 round trip differs: max rel {rel(got, ref)}"
    if kind == "llama_rs":
        return
    for t, tol in (("f16", 2e-3), ("bf16", 2e-2), ("q8_0", 3e-2)):
        got = logits_sft(exported[kind, t], ids, tmp_path, t)
        e = rel(got, ref)
        print(f"{kind} {t}: logits max rel diff {e:.2e}")
        assert e < tol, f"{kind} {t}: {e}"


@pytest.mark.parametrize("kind", ["llama", "qwen2", "qwen3"])
def test_transformers_loads_our_gguf(models, exported, kind):
    """transformers' GGUF loader (dequantise, un-permute) gives the folder's logits: f32 1e-5 relative; f16/bf16
    within their rounding (checked against the folder's model with its matrices rounded the same way); q8_0 reported.
    Not "tiny": transformers' GGUF config mapping never sets attention_bias for llama, so it drops the q/k/v/o biases
    that llama.cpp loads (test_gguf_llama_cpp.py runs that model in llama.cpp)."""
    from transformers import AutoModelForCausalLM
    torch.manual_seed(0)
    ids = torch.tensor([[5, 17, 42, 99, 7, 3, 250, 11, 64, 128]])
    base = AutoModelForCausalLM.from_pretrained(models[kind], dtype=torch.float32).eval()
    with torch.no_grad():
        ref = base(ids).logits[0].numpy()
    for t in ("f32", "f16", "bf16", "q8_0"):
        f = exported[kind, t]
        m = AutoModelForCausalLM.from_pretrained(f.parent, gguf_file=f.name, dtype=torch.float32).eval()
        with torch.no_grad():
            got = m(ids).logits[0].numpy()
        e = rel(got, ref)
        print(f"transformers on {kind} {t}: max rel logit diff {e:.2e}")
        if t == "f32":
            assert e < 1e-5
        elif t in ("f16", "bf16"):
            rounded = AutoModelForCausalLM.from_pretrained(models[kind], dtype=torch.float32).eval()
            dt = torch.float16 if t == "f16" else torch.bfloat16
            with torch.no_grad():
                for name, p in rounded.named_parameters():
                    if p.dim() == 2:
                        p.copy_(p.to(dt).float())
                want = rounded(ids).logits[0].numpy()
            assert rel(got, want) < 1e-5, f"{t}: {rel(got, want)} vs the rounded model"
        else:
            assert e < 5e-2


@pytest.mark.parametrize("kind", KINDS)
def test_tokenizer_and_chat_template_from_gguf(models, exported, kind):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(models[kind])
    g = exported[kind, "q8_0"]
    for text in CORPUS:
        r = run("tokenize", "--model", g, "--text", text, "--json")
        ours = json.loads(r.stdout)
        ours = ours[0]["ids"] if isinstance(ours, list) else ours["ids"]
        assert ours == tok(text, add_special_tokens=False)["input_ids"], text
    if kind == "tiny":
        return
    conv = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there!"},
            {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "2+2?"}]
    chat = Path(g).with_suffix(".chat.jsonl")
    chat.write_text(json.dumps({"messages": conv}) + "\n")
    a = json.loads(run("tokenize", "--model", g, "--chat", chat, "--json", "--add_generation_prompt").stdout)
    b = json.loads(run("tokenize", "--model", models[kind], "--chat", chat, "--json", "--add_generation_prompt").stdout)
    assert a[0]["text"] == b[0]["text"] and a[0]["ids"] == b[0]["ids"]
    assert a[0]["text"] == tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=True)


def test_info_and_generate_read_a_gguf(models, exported):
    r = run("info", "--model", exported["qwen3", "q8_0"], "--json")
    j = json.loads(r.stdout)
    assert j["model_type"] == "qwen3" and j["head_dim"] == 128 and not j["tie_word_embeddings"]
    assert "Q8_0" in j["dtype_on_disk"] and "F32" in j["dtype_on_disk"]
    a = run("generate", "--model", exported["qwen2", "f32"], "--template", "none", "--prompt", "The capital of",
            "--greedy", "--max_new_tokens", "8", "--json")
    b = run("generate", "--model", models["qwen2"], "--template", "none", "--prompt", "The capital of",
            "--greedy", "--max_new_tokens", "8", "--json")
    assert json.loads(a.stdout)["tokens"] == json.loads(b.stdout)["tokens"]


def alpaca(tmp_path):
    rows = [{"instruction": f"Say {w}.", "input": "", "output": f"{w}!"} for w in ("hi", "yes", "no", "ok")] * 2
    p = tmp_path / "data.json"
    p.write_text(json.dumps(rows))
    return p


def test_train_from_gguf_writes_a_folder_transformers_loads(models, exported, tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    out = tmp_path / "run"
    run("train", "--model_name_or_path", exported["qwen2", "f32"], "--dataset_path", alpaca(tmp_path),
        "--output_dir", out, "--max_steps", "2", "--per_device_train_batch_size", "2", "--learning_rate", "1e-3",
        "--report_to", "none", "--save_gguf", "q8_0")
    m = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert m.config.model_type == "qwen2" and m.config.tie_word_embeddings
    tok = AutoTokenizer.from_pretrained(out)
    ref = AutoTokenizer.from_pretrained(models["qwen2"])
    for text in CORPUS:
        assert tok(text)["input_ids"] == ref(text)["input_ids"], text
    assert tok.eos_token == "<|im_end|>"
    g = out / "run-q8_0.gguf"  # --save_gguf
    from gguf import GGUFReader
    r = GGUFReader(str(g))
    assert r.fields["general.architecture"].contents() == "qwen2"
    assert r.fields["general.file_type"].contents() == 7


def test_lora_save_gguf_is_the_merged_model(models, tmp_path):
    """--use_peft --save_gguf f32: the GGUF holds base + adapter merged, exactly what sft merge writes."""
    out = tmp_path / "lora"
    run("train", "--model_name_or_path", models["tiny"], "--dataset_path", alpaca(tmp_path), "--output_dir", out,
        "--max_steps", "2", "--per_device_train_batch_size", "2", "--learning_rate", "1e-2", "--use_peft", "True",
        "--lora_target_modules", "q_proj,v_proj,up_proj", "--report_to", "none", "--save_gguf", "f32")
    merged = tmp_path / "merged"
    run("merge", "--model", models["tiny"], "--adapter", out, "--output_dir", merged)
    ids = [5, 17, 42, 99, 7, 3]
    a = logits_sft(out / "lora-f32.gguf", ids, tmp_path, "g")
    b = logits_sft(merged, ids, tmp_path, "m")
    assert np.array_equal(a, b)
    c = logits_sft(models["tiny"], ids, tmp_path, "base")
    assert not np.array_equal(a, c), "the adapter changed nothing"


def test_export_with_adapter_equals_merge(models, tmp_path):
    out = tmp_path / "lora2"
    run("train", "--model_name_or_path", models["qwen3"], "--dataset_path", alpaca(tmp_path), "--output_dir", out,
        "--max_steps", "1", "--per_device_train_batch_size", "2", "--learning_rate", "1e-2", "--use_peft", "True",
        "--report_to", "none")
    g = tmp_path / "m.gguf"
    run("export", "--model", models["qwen3"], "--adapter", out, "--outfile", g, "--outtype", "f32")
    merged = tmp_path / "merged2"
    run("merge", "--model", models["qwen3"], "--adapter", out, "--output_dir", merged)
    ids = [5, 17, 42, 99]
    assert np.array_equal(logits_sft(g, ids, tmp_path, "g"), logits_sft(merged, ids, tmp_path, "m"))
