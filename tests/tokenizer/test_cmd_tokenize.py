"""`sft tokenize` end to end: --json ids/pieces/decoded equal HF `tokenizers`, --ids_only --lines, --bench output,
and a clear error for a folder without tokenizer.json."""
import json
import os
import subprocess

import pytest
from tokenizers import Tokenizer

from test_tokenizer_parity import materialize

SFT = os.environ.get("SFT_BIN")
TEXTS = ["Hello world! I'LL be there's 12345", "<|im_start|>user\n你好，世界 😀👍🏽 café<|im_end|>\n", "  \t\r\n x"]


@pytest.fixture(scope="module")
def qwen(tmp_path_factory):
    assert SFT, "SFT_BIN is not set: run this test through ctest"
    return materialize("qwen3", tmp_path_factory.mktemp("cmdtok"))


def run(*args):
    res = subprocess.run([SFT, "tokenize", *args], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    return res.stdout


def test_json_matches_hf(qwen):
    hf = Tokenizer.from_file(str(qwen / "tokenizer.json"))
    for text in TEXTS:
        out = json.loads(run("--model", str(qwen), "--text", text, "--json"))
        enc = hf.encode(text, add_special_tokens=False)
        assert out[0]["ids"] == enc.ids
        assert out[0]["pieces"] == enc.tokens
        assert out[0]["decoded"] == hf.decode(enc.ids, skip_special_tokens=False)


def test_lines_and_bench(qwen, tmp_path):
    hf = Tokenizer.from_file(str(qwen / "tokenizer.json"))
    f = tmp_path / "in.txt"
    f.write_text("first line\nsecond, line 2\n\nfourth 😀", encoding="utf-8")
    rows = run("--model", str(qwen), "--file", str(f), "--lines", "--ids_only").splitlines()
    want = [hf.encode(line, add_special_tokens=False).ids for line in ["first line", "second, line 2", "", "fourth 😀"]]
    assert [[int(x) for x in r.split()] for r in rows] == want
    fields = run("--model", str(qwen), "--file", str(f), "--lines", "--bench", "--repeat", "1").split()
    stats = dict(zip(fields[0::2], fields[1::2]))
    assert int(stats["tokens"]) == sum(len(w) for w in want) and float(stats["MB/s"]) > 0


def test_table_output_and_error(qwen, tmp_path):
    out = run("--model", str(qwen), "--text", "a\n\u00e9")
    assert out.splitlines()[1].split("\t") == ["198", "Ċ", "\\n"]
    res = subprocess.run([SFT, "tokenize", "--model", str(tmp_path), "--text", "x"], capture_output=True, text=True)
    assert res.returncode != 0 and "tokenizer.json" in res.stderr
