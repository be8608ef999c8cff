"""Writes (once) a random-weight Qwen2.5-0.5B-shaped model folder for bench/seed_job.sh: the published config
(tests/fixtures/io/configs/qwen2.5-0.5b.json: 24 layers, hidden 896, 14 / 2 heads, MLP 4864, vocabulary 151,936,
tied embeddings), normal(0, 0.02) weights from seed 0 saved in fp32, and the Qwen tokenizer of tests/fixtures
(Qwen3's byte-level BPE, the same vocabulary family as Qwen2.5's; zstd-compressed in the repository).
usage: make_seed_model.py [OUT_DIR]   (default ~/.cache/sft/models/qwen2.5-0.5b-random); prints OUT_DIR.
Idempotent (OUT_DIR/.complete) and atomic (built in a temp folder next to OUT_DIR, then renamed)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
out = sys.argv[1] if len(sys.argv) > 1 else os.path.expanduser("~/.cache/sft/models/qwen2.5-0.5b-random")
if not os.path.exists(os.path.join(out, ".complete")):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM
    os.makedirs(os.path.dirname(out), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=".tmp-", dir=os.path.dirname(out))
    cfg = json.load(open(os.path.join(ROOT, "tests", "fixtures", "io", "configs", "qwen2.5-0.5b.json")))
    cfg = {k: v for k, v in cfg.items() if k not in ("architectures", "model_type", "transformers_version")}
    cfg["torch_dtype"] = "float32"
    torch.manual_seed(0)
    Qwen2ForCausalLM(Qwen2Config(**cfg)).float().save_pretrained(tmp, safe_serialization=True)
    tok = os.path.join(ROOT, "tests", "fixtures", "tokenizers", "qwen3")
    with open(os.path.join(tmp, "tokenizer.json"), "wb") as f:
        subprocess.run(["zstd", "-dc", os.path.join(tok, "tokenizer.json.zst")], stdout=f, check=True)
    shutil.copy(os.path.join(tok, "tokenizer_config.json"), os.path.join(tmp, "tokenizer_config.json"))
    open(os.path.join(tmp, ".complete"), "w").close()
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
print(out)
