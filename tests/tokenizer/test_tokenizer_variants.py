"""Configuration shapes beyond the three shipped tokenizers, each checked against HF `tokenizers` on the same inputs:
added-token flags (lstrip / rstrip / single_word / normalized=true), GPT-2-style ByteLevel(use_regex, add_prefix_space),
Digits (contiguous and individual), Split behaviors (MergedWithPrevious / MergedWithNext / Contiguous / Removed /
invert / literal String pattern), NFD/NFKC normalizers in a Sequence, "a b" vs ["a","b"] merge encodings, and a
TemplateProcessing BOS (as Meta's own Llama 3 file has). Built by editing the Qwen3 / Llama 3 fixtures' JSON, so the
vocab and merges stay real. Ids must be identical (no tolerance).
"""
import copy
import json
import random

import pytest
from tokenizers import Tokenizer

import make_corpus
from test_tokenizer_parity import materialize, run_tool

QWEN_REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
              "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")


def added(content, id_, **flags):
    t = {"id": id_, "content": content, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
         "special": False}
    t.update(flags)
    return t


def split(pattern, behavior="Isolated", invert=False, literal=False):
    return {"type": "Split", "pattern": {"String" if literal else "Regex": pattern}, "behavior": behavior,
            "invert": invert}


BYTELEVEL_NOREGEX = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}


def variants():
    """name -> function(qwen_json, llama_json) -> tokenizer json."""
    def flags(q, _):
        base = 151669
        q["added_tokens"] += [added("<lst>", base, lstrip=True), added("<rst>", base + 1, rstrip=True),
                              added("<both>", base + 2, lstrip=True, rstrip=True),
                              added("qzword", base + 3, single_word=True), added("Cafézq", base + 4, normalized=True),
                              added("<|im_start|>x", base + 5, special=True), added("qzq", base + 6, normalized=True)]
        return q

    def gpt2(q, _):
        q["normalizer"] = None
        q["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}
        return q

    def digits(q, _):
        q["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": False}, split(QWEN_REGEX), BYTELEVEL_NOREGEX]}
        return q

    def digits_individual(q, _):
        q["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            {"type": "Digits", "individual_digits": True},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}]}
        return q

    def behaviors(q, _):
        q["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
            split("\\s+", "MergedWithPrevious"), split("[.,;]", "MergedWithNext"), split("\\p{N}", "Contiguous"),
            split("-", "Removed", literal=True), split("[aeiou]", "Isolated", invert=True), BYTELEVEL_NOREGEX]}
        return q

    def normalizers(q, _):
        q["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "NFKC"}, {"type": "NFD"}]}
        return q

    def string_merges(q, _):
        q["model"]["merges"] = [" ".join(m) for m in q["model"]["merges"]]
        return q

    def llama_bos(_, l):
        l["post_processor"] = {"type": "Sequence", "processors": [
            {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True},
            {"type": "TemplateProcessing",
             "single": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
             "pair": [{"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                      {"SpecialToken": {"id": "<|begin_of_text|>", "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
             "special_tokens": {"<|begin_of_text|>": {"id": "<|begin_of_text|>", "ids": [128000],
                                                      "tokens": ["<|begin_of_text|>"]}}}]}
        return l

    def llama_pair_merges(_, l):
        l["model"]["merges"] = [m.split(" ") for m in l["model"]["merges"]]
        l["model"]["ignore_merges"] = False
        return l

    return {"flags": flags, "gpt2": gpt2, "digits": digits, "digits_individual": digits_individual,
            "behaviors": behaviors, "normalizers": normalizers, "string_merges": string_merges,
            "llama_bos": llama_bos, "llama_pair_merges": llama_pair_merges}


@pytest.fixture(scope="module")
def sources(tmp_path_factory):
    work = tmp_path_factory.mktemp("tokvariants")
    q, l = materialize("qwen3", work), materialize("llama3", work)
    qj = json.loads((q / "tokenizer.json").read_text(encoding="utf-8"))
    lj = json.loads((l / "tokenizer.json").read_text(encoding="utf-8"))
    hf = Tokenizer.from_file(str(q / "tokenizer.json"))
    rng = random.Random(3)
    docs = make_corpus.build_corpus(make_corpus.vocab_pieces_from(hf, 500), target_bytes=0)
    docs = rng.sample(docs, 250)
    docs += ["a <lst> b", "a   <lst>b", "<lst>", "x<rst>   y", "x <both> \n y", "a qzword b", "aqzword b", "a qzwords",
             "qzword", "(qzword)", "qzwordqzword", "Cafézq cafézq Cafe\u0301zq CAFÉ", "<|im_start|>xy <|im_start|>",
             "qzqqzq qzq-qzq", "é qzword", "qzword٣",
             "1,234.5-6 ;; 7..8", "  leading", "ﬁ ①② Ⅻ x² e\u0301", "Hello\u00a0world\t\tfoo  \n\n bar   "]
    return work, qj, lj, docs


@pytest.mark.parametrize("variant", list(variants()))
def test_variant_parity(variant, sources):
    work, qj, lj, docs = sources
    tj = variants()[variant](copy.deepcopy(qj), copy.deepcopy(lj))
    folder = work / variant
    folder.mkdir(exist_ok=True)
    (folder / "tokenizer.json").write_text(json.dumps(tj, ensure_ascii=False), encoding="utf-8")
    hf = Tokenizer.from_file(str(folder / "tokenizer.json"))
    for t in tj["added_tokens"]:  # HF renumbers added tokens whose id disagrees with the vocab: keep the file sane
        assert hf.token_to_id(t["content"]) == t["id"], t
    path = work / f"{variant}.bin"
    make_corpus.write_corpus(docs, path)
    for add_special in (False, True) if variant == "llama_bos" else (False,):
        expected = [e.ids for e in hf.encode_batch(docs, add_special_tokens=add_special)]
        ours = run_tool(folder, path, work / f"{variant}.out", add_special=add_special)
        for doc, (ids, text, _), want in zip(docs, ours, expected):
            assert ids == want, (f"{variant} (add_special_tokens={add_special}) on {doc[:60]!r}: ours "
                                 f"{[hf.id_to_token(i) for i in ids][:20]} vs HF {[hf.id_to_token(i) for i in want][:20]}")
            assert text == hf.decode(want, skip_special_tokens=False)
