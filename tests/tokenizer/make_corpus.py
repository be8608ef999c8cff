"""Deterministic tokenizer parity corpus (>= 5 MB of UTF-8), built from files of the pinned oracle venv plus seeded
synthetic documents that target the tricky parts of byte-level BPE tokenizers.

Sources (all read from the venv's site-packages, so the corpus is the same on every machine with the same venv):
  * prose: the README text of every *.dist-info/METADATA (English Markdown),
  * code: transformers' Python sources,
  * multilingual: lm_eval/tasks files containing non-ASCII text (Chinese, Japanese, Korean, Arabic, Cyrillic, ...),
  * synthetic: emoji with ZWJ sequences / skin tones / flags, NFC vs NFD combining marks, long digit runs, mixed
    whitespace / tabs / CRLF / trailing spaces, contractions in mixed case ('S 'LL 'Re, and the long s 'ſ),
    special tokens embedded mid-text, random code points from many blocks, and random concatenations of vocab pieces.
Documents are str (valid Unicode, no lone surrogates): HF receives Python str, so invalid UTF-8 is tested separately.
"""
import os
import random
import site
import struct
import unicodedata
from pathlib import Path

SEED = 20241128


def _site_packages() -> Path:
    for p in site.getsitepackages():
        if (Path(p) / "lm_eval").is_dir():
            return Path(p)
    raise RuntimeError("oracle venv site-packages (with lm_eval) not found")


def _chunks(text: str, rng: random.Random, lo: int = 800, hi: int = 4000):
    """Splits text into documents of lo..hi characters at line boundaries (line endings kept)."""
    lines = text.splitlines(keepends=True)
    doc, size, target = [], 0, rng.randint(lo, hi)
    for line in lines:
        doc.append(line)
        size += len(line)
        if size >= target:
            yield "".join(doc)
            doc, size, target = [], 0, rng.randint(lo, hi)
    if doc:
        yield "".join(doc)


def _read_files(paths, budget_chars: int):
    out, total = [], 0
    for p in paths:
        try:
            t = p.read_text(encoding="utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        out.append(t)
        total += len(t.encode("utf-8"))
        if total >= budget_chars:
            break
    return "\n".join(out)


def _whitespace_variants(doc: str, rng: random.Random) -> str:
    r = rng.random()
    if r < 0.15:
        return doc.replace("\n", "\r\n")
    if r < 0.25:
        return "".join(l.rstrip("\n") + " " * rng.randint(1, 3) + "\n" for l in doc.splitlines())
    if r < 0.32:
        return doc.replace("    ", "\t")
    if r < 0.36:
        return doc.replace(" ", "\u00a0", 5).replace("\n", "\u2028", 2) + "\u3000x\u2003\u200b y\u00857"
    return doc


SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>", "<|end_of_text|>",
            "<|eot_id|>", "<|start_header_id|>", "<think>", "</think>", "<tool_call>", "<|fim_prefix|>",
            "<|reserved_special_token_7|>", "<|im_start", "|im_end|>", "<<|im_end|>>", "<|im_start|><|im_end|>"]

EMOJI = ["😀", "👍🏽", "👍🏿", "👩‍💻", "👨‍👩‍👧‍👦", "🏳️‍🌈", "🇯🇵", "🇺🇸", "❤️", "🧑🏾‍🚀", "🤦🏼‍♂️", "✌🏻", "1️⃣", "🫠",
         "🐈‍⬛", "👁️‍🗨️", "🏴󠁧󠁢󠁳󠁣󠁴󠁿"]

WORDS = ["the", "The", "THE", "naïve", "café", "résumé", "Zürich", "Ångström", "coöperate", "über", "façade", "piñata",
         "Ελλάδα", "Москва", "中文", "日本語", "한국어", "עברית", "العربية", "हिन्दी", "ไทย", "tiếng Việt", "Ǆemal",
         "ﬁnance", "Ⅻ", "x²", "½", "①", "٣٤٥", "१२३", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "ǅ", "İstanbul", "straße", "ΣΊΣΥΦΟΣ"]

CONTRACTIONS = ["'s", "'S", "'t", "'T", "'re", "'Re", "'RE", "'rE", "'ve", "'VE", "'m", "'M", "'ll", "'LL", "'Ll",
                "'d", "'D", "'ſ", "’s", "''s", "'", "'x", "'123"]


def _synthetic_doc(rng: random.Random, vocab_pieces) -> str:
    kind = rng.randrange(8)
    parts = []
    n = rng.randint(20, 120)
    for _ in range(n):
        r = rng.random()
        if kind == 0 or r < 0.15:
            parts.append(rng.choice(WORDS) + rng.choice(CONTRACTIONS) * (rng.random() < 0.5))
        elif kind == 1 or r < 0.25:
            parts.append(rng.choice(EMOJI) * rng.randint(1, 3))
        elif kind == 2 or r < 0.35:
            parts.append("".join(rng.choice("0123456789") for _ in range(rng.randint(1, 40))))
        elif kind == 3 or r < 0.45:
            parts.append("".join(rng.choice([" ", "  ", "\t", "\n", "\r\n", "\r", "\n\n", " \n", "\u3000", "\u00a0", "\u2009"])
                                 for _ in range(rng.randint(1, 6))))
        elif kind == 4 or r < 0.55:
            w = rng.choice(WORDS)
            parts.append(unicodedata.normalize(rng.choice(["NFD", "NFKD", "NFC"]), w) + "\u0301" * (rng.random() < 0.2))
        elif kind == 5 or r < 0.65:
            parts.append(rng.choice(SPECIALS))
        elif kind == 6 or r < 0.8:
            blocks = [(0x20, 0x7F), (0xA0, 0x250), (0x300, 0x370), (0x370, 0x530), (0x590, 0x700), (0x900, 0xE80),
                      (0x1100, 0x1200), (0x1E00, 0x2000), (0x2000, 0x2BFF), (0x3000, 0x3100), (0x4E00, 0x9FFF),
                      (0xAC00, 0xD7A3), (0xFB00, 0xFB50), (0xFE00, 0xFE10), (0xFF00, 0xFFEF), (0x1D400, 0x1D800),
                      (0x1F300, 0x1FAFF), (0x20000, 0x2A6DF), (0xE0000, 0xE0080)]
            lo, hi = rng.choice(blocks)
            s = []
            for _ in range(rng.randint(1, 12)):
                cp = rng.randrange(lo, hi)
                if unicodedata.category(chr(cp)) not in ("Cs", "Cn"):  # assigned in every Unicode version in use
                    s.append(chr(cp))
            parts.append("".join(s))
        else:
            parts.append("".join(rng.choice(vocab_pieces) for _ in range(rng.randint(1, 8))))
        parts.append(rng.choice([" ", "", "", "\n", ", ", ". ", " - "]))
    return "".join(parts)


def build_corpus(vocab_pieces, target_bytes: int = 5_300_000):
    """Returns the list of documents (str). vocab_pieces: decoded token strings to mix in (any tokenizer's)."""
    rng = random.Random(SEED)
    sp = _site_packages()
    metas = sorted(sp.glob("*.dist-info/METADATA"))
    prose = _read_files(metas, 1_500_000)
    code = _read_files(sorted((sp / "transformers").rglob("*.py")), 1_100_000)
    multi_paths = []
    for p in sorted((sp / "lm_eval" / "tasks").rglob("*")):
        if p.is_file() and p.suffix in (".yaml", ".md", ".py", ".txt", ".json") and p.stat().st_size < 200_000:
            try:
                t = p.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            if any(ord(c) > 0x2FF for c in t[:4000]):
                multi_paths.append(p)
    multi = _read_files(multi_paths, 1_500_000)

    docs = []
    for text in (prose, code, multi):
        docs.extend(_whitespace_variants(d, rng) for d in _chunks(text, rng))
    total = sum(len(d.encode("utf-8")) for d in docs)
    while total < target_bytes:
        d = _synthetic_doc(rng, vocab_pieces)
        docs.append(d)
        total += len(d.encode("utf-8"))
    # A few fixed edge documents.
    docs += ["", " ", "\n", "   \n\n  \t", "a" * 5000, " " * 3000 + "x", "1" * 2000, "😀" * 500, "\r\n" * 100,
             "<|im_start|>" * 10, "abc" + "\u0301" * 50, "ﷺ", "\ufeffBOM start", "e\u0301\u0323 \u1e0b\u0323 \u0071\u0307\u0323"]
    rng.shuffle(docs)
    return docs


def vocab_pieces_from(tokenizer, count: int = 3000):
    """Decoded strings of a deterministic sample of vocab ids (lossy: pieces may be partial UTF-8)."""
    rng = random.Random(SEED + 1)
    size = tokenizer.get_vocab_size(with_added_tokens=False)
    return [tokenizer.decode([rng.randrange(size)]) for _ in range(count)]


def write_corpus(docs, path: os.PathLike):
    with open(path, "wb") as f:
        for d in docs:
            b = d.encode("utf-8")
            f.write(struct.pack("<I", len(b)))
            f.write(b)


if __name__ == "__main__":
    import sys
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(sys.argv[1])
    docs = build_corpus(vocab_pieces_from(tok))
    write_corpus(docs, sys.argv[2])
    print(len(docs), "documents,", sum(len(d.encode()) for d in docs), "bytes")
