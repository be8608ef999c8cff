"""config.json parity with transformers 5.x (the oracle venv).

- For each fixture config (published values of Qwen2.5-0.5B/1.5B, Llama-3.2-1B, SmolLM2-135M, Qwen3-0.6B,
  Gemma-2-2B, and the folder
  scripts/convert_smollm2.py writes): transformers builds the model on the meta device (no memory) and its
  num_parameters() must equal ours exactly.
- The config.json we write (model_config_to_json) must load back in transformers with the same architecture fields,
  rope parameters (incl. llama3 scaling) and token ids.
"""
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from transformers import AutoConfig, AutoModelForCausalLM

SRC = Path(os.environ.get("SFT_SOURCE_DIR", Path(__file__).resolve().parents[2]))
BUILD = Path(os.environ.get("SFT_BUILD_DIR", SRC / "build"))
TOOL = BUILD / "tests" / "io_tool"
CONFIGS = sorted((SRC / "tests" / "fixtures" / "io" / "configs").glob("*.json"))


def ours(config_path: Path):
    r = subprocess.run([str(TOOL), "config", str(config_path)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    text, _, last = r.stdout.rstrip("\n").rpartition("\n")
    assert last.startswith("num_parameters ")
    return json.loads(text), int(last.split()[1])


def transformers_config(path: Path):
    d = path.parent / "hf"
    d.mkdir(exist_ok=True)
    shutil.copy(path, d / "config.json")
    return AutoConfig.from_pretrained(d)


def rope_of(cfg):
    rp = dict(cfg.rope_parameters or {})
    return rp.get("rope_theta"), {k: v for k, v in rp.items() if k != "rope_theta"}


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_num_parameters_match_transformers(config, tmp_path):
    shutil.copy(config, tmp_path / "in.json")
    _, n_ours = ours(tmp_path / "in.json")
    cfg = transformers_config(tmp_path / "in.json")
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(cfg)
    assert model.num_parameters() == n_ours


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.stem)
def test_written_config_loads_back(config, tmp_path):
    shutil.copy(config, tmp_path / "in.json")
    written, _ = ours(tmp_path / "in.json")
    (tmp_path / "out.json").write_text(json.dumps(written))
    a = transformers_config(tmp_path / "in.json")
    (tmp_path / "b").mkdir()
    shutil.copy(tmp_path / "out.json", tmp_path / "b" / "out.json")
    b = transformers_config(tmp_path / "b" / "out.json")
    for key in ("model_type", "architectures", "hidden_size", "intermediate_size", "num_hidden_layers",
                "num_attention_heads", "num_key_value_heads", "vocab_size", "max_position_embeddings",
                "rms_norm_eps", "tie_word_embeddings", "bos_token_id", "eos_token_id", "pad_token_id",
                "hidden_act"):
        assert getattr(a, key) == getattr(b, key), key
    assert getattr(a, "head_dim", None) == getattr(b, "head_dim", None)
    assert getattr(a, "attention_bias", None) == getattr(b, "attention_bias", None)
    for key in ("hidden_activation", "query_pre_attn_scalar", "attn_logit_softcapping", "final_logit_softcapping",
                "sliding_window", "layer_types"):  # Gemma 2's own keys (absent elsewhere: None == None)
        assert getattr(a, key, None) == getattr(b, key, None), key
    assert rope_of(a) == rope_of(b)
    with torch.device("meta"):
        assert (AutoModelForCausalLM.from_config(a).num_parameters()
                == AutoModelForCausalLM.from_config(b).num_parameters())


def test_llama3_rope_and_eos_list_variants(tmp_path):
    base = json.loads((SRC / "tests" / "fixtures" / "io" / "configs" / "llama-3.2-1b.json").read_text())
    # Older "type" key instead of "rope_type", and the Instruct model's eos list.
    base["rope_scaling"]["type"] = base["rope_scaling"].pop("rope_type")
    base["eos_token_id"] = [128001, 128008, 128009]
    (tmp_path / "in.json").write_text(json.dumps(base))
    written, n = ours(tmp_path / "in.json")
    assert written["eos_token_id"] == [128001, 128008, 128009]
    assert written["rope_scaling"]["rope_type"] == "llama3" and written["rope_scaling"]["factor"] == 32.0
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "config.json").write_text(json.dumps(written))
    cfg = AutoConfig.from_pretrained(tmp_path / "o")
    theta, scaling = rope_of(cfg)
    assert theta == 500000.0 and scaling["rope_type"] == "llama3" and scaling["factor"] == 32.0
    assert scaling["original_max_position_embeddings"] == 8192
    assert cfg.eos_token_id == [128001, 128008, 128009]
    assert n == 1_235_814_400
