"""Our C++ ports used by data-driven tasks against CPython and lm-eval 0.4.13 themselves (py_semantics_tool):
re.findall / re.sub (PCRE2 with Python's iteration rules), ast.literal_eval (how lm-eval reads rendered doc_to_choice /
doc_to_target), the template engine's repr read back by it, str.lower, lm-eval's RegexFilter and the GSM8K row's
exact_match. Exact comparisons (strings, lists, floats bit for bit): a difference would change a choice list, an
extracted answer or a score."""
import json
import os
import random
import re
import subprocess
from pathlib import Path

import pytest

TOOL = Path(os.environ.get("SFT_BUILD_DIR", "../../build")) / "tests" / "py_semantics_tool"
GSM8K_STRICT = r"#### (\-?[0-9\.\,]+)"
GSM8K_FLEX = r"(-?[$0-9.,]{2,})|(-?[0-9]+)"
IGNORE = [",", "\\$", "(?s).*#### ", "\\.$"]


def run(req):
    r = subprocess.run([str(TOOL)], input=json.dumps(req), capture_output=True, text=True, check=True)
    return json.loads(r.stdout)


def texts(seed, n, alphabet, max_len=30):
    rng = random.Random(seed)
    return ["".join(rng.choice(alphabet) for _ in range(rng.randint(0, max_len))) for _ in range(n)]


ANSWER_ALPHABET = list("0123456789") * 3 + list("$.,-#  \n") + ["#### ", "The answer is ", "\n\n", "٣", "é", "½", "ab"]


def as_py(v):
    if "list" in v:
        return [as_py(x) for x in v["list"]]
    return next(iter(v.values()))


def test_findall_and_sub_match_python_re():
    patterns = [GSM8K_STRICT, GSM8K_FLEX, ",", "\\$", "(?s).*#### ", "\\.$", r"\d+", r"x*", r"a|", r"(a)|(b)",
                r"(?i)ab", r"\s+", r"(\d)(\d)?", r"$", r"^", r"[^\d]*"]
    cases = [(p, t) for p in patterns for t in texts(hash(p) % 1000, 25, ANSWER_ALPHABET + list("abxAB"))]
    out = run({"findall": cases, "sub": cases})
    for (p, t), got, got_sub in zip(cases, out["findall"], out["sub"]):
        want = [[m] if isinstance(m, str) else list(m) for m in re.findall(p, t)]
        assert got == want, (p, t)
        assert got_sub == re.sub(p, "<>", t), (p, t)


def test_literal_eval_reads_python_reprs():
    rng = random.Random(3)
    alphabet = list("abc 'x\"\\\n\t\r") + ["é", "\u2028", "\x00", "\x1f", "\x7f", "😀", "\u00a0", "{{", "}}", "[", "]"]

    def value(depth=0):
        k = rng.randint(0, 6 if depth < 2 else 3)
        if k <= 2:
            return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
        if k == 3:
            return rng.choice([rng.randint(-10**12, 10**12), rng.random() * 10 ** rng.randint(-5, 20), True, False, None])
        return [value(depth + 1) for _ in range(rng.randint(0, 4))] if k != 6 else tuple(value(depth + 1) for _ in range(2))

    values = [value() for _ in range(300)] + [[], (), [""], ["it's"], ['say "hi"'], ["both ' and \""], -0.0, 1e300]
    reprs = [repr(v) for v in values] + [str(v) for v in values if isinstance(v, list)]
    out = run({"literal": reprs})
    for r, got in zip(reprs, out["literal"]):
        assert "error" not in got, (r, got)
        want = __import__("ast").literal_eval(r)
        norm = lambda x: [norm(y) for y in x] if isinstance(x, (list, tuple)) else x  # noqa: E731
        assert as_py(got) == norm(want), r
    bad = ["[1, 2", "abc", "1 +", "007", "'unterminated", "[1] [2]", "", "{'a': 1}", "0x10", "f(1)"]
    out = run({"literal": bad})
    for b, got in zip(bad, out["literal"]):
        assert "error" in got, b


def test_template_repr_round_trips():
    strings = texts(5, 200, list("ab'\"\\\n\r\t é\x01\x7f😀\u2028[]{}"), 16) + ["", "'", '"', "'\"", "\\"]
    out = run({"repr": strings})
    for s, got in zip(strings, out["repr"]):
        assert as_py(got) == [s], repr(s)


def test_lower_matches_python():
    strings = texts(9, 300, list("ABCabcÉÀÇÑÖÜẞΣΑΩİIĲǅ ΣΣ.") + ["Σ.", "ΑΣ", "Straße", "ΌΣΟΣ"], 12)
    out = run({"lower": strings})
    for s, got in zip(strings, out["lower"]):
        assert got == s.lower(), repr(s)


def test_regex_filter_and_exact_match_match_lm_eval():
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.filters.extraction import RegexFilter

    answers = texts(11, 200, ANSWER_ALPHABET, 40) + ["#### 1,200\n", "The total is $3.75.", "#### -5", "no digits",
                                                     "#### .", "5", "12 and 13 and 1,4"]
    cases = [(GSM8K_STRICT, 0, a) for a in answers] + [(GSM8K_FLEX, -1, a) for a in answers]
    out = run({"filter": [list(c) for c in cases]})
    filtered = []
    for (p, g, a), got in zip(cases, out["filter"]):
        want = list(RegexFilter(regex_pattern=p, group_select=g).apply([[a]], [None]))[0][0]
        assert got == want, (p, g, a)
        filtered.append(want)
    refs = ["Some steps.\n#### " + x for x in ["1,200", "3.75", "-5", "26", "$4", "7."]]
    pairs = [(f, r) for f in filtered[:60] + ["1200", "3.75", "-5", "$26", "7", "4"] for r in refs]
    out = run({"exact_match": [list(p) for p in pairs]})
    for (f, r), got in zip(pairs, out["exact_match"]):
        want = exact_match_hf_evaluate(predictions=[f], references=[r], regexes_to_ignore=IGNORE, ignore_case=True,
                                       ignore_punctuation=False)["exact_match"]
        assert got == want, (f, r)
