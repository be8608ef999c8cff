"""Our C++ ports of Python semantics (str.strip/rstrip/capitalize/len, lm-eval's HellaSwag preprocess, and
random.Random(seed).sample) against CPython itself, on real task text plus random Unicode strings.

These are exact (string equality, identical integer streams): any difference would change a prompt or a few-shot
selection and therefore lm-eval parity."""
import json
import os
import random
import re
import subprocess
from pathlib import Path

TOOL = Path(os.environ.get("SFT_BUILD_DIR", "../../build")) / "tests" / "eval_text_tool"
DATA = Path(__file__).resolve().parents[1] / "fixtures" / "eval" / "data"


def hellaswag_preprocess(text):  # verbatim from lm_eval/tasks/hellaswag/utils.py (0.4.13)
    text = text.strip()
    text = text.replace(" [title]", ". ")
    text = re.sub("\\[.*?\\]", "", text)
    text = text.replace("  ", " ")
    return text


def corpus():
    strings = []
    for line in (DATA / "hellaswag" / "hellaswag_val.jsonl").read_text().splitlines():
        row = json.loads(line)
        strings += [row["ctx_a"], row["ctx_b"], row["activity_label"]] + row["endings"]
    rng = random.Random(7)
    alphabet = (list(" \t\n\r\x0b\x0c\x1c\x85\xa0\u2000\u2009\u3000\u200b") + list("abcXYZ[]title.,'") +
                list("éÉßçÇñΣσ") + ["[title]", " [title]", "[header]", "  "])
    for _ in range(400):
        strings.append("".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24))))
    # Edge cases: only whitespace, unmatched brackets, bracket across a newline, empty.
    strings += ["", "   ", "\u3000x\u3000", "a [b", "a [b\n c] d", "x [title] y [step 2] z", "ab  cd   ef"]
    return strings


def test_strings_match_cpython():
    strings = corpus()
    req = {"strings": strings, "samples": [], "bits": []}
    out = json.loads(subprocess.run([str(TOOL)], input=json.dumps(req), capture_output=True, text=True,
                                    check=True).stdout)
    for i, s in enumerate(strings):
        assert out["strip"][i] == s.strip(), repr(s)
        assert out["rstrip"][i] == s.rstrip(), repr(s)
        assert out["len"][i] == len(s), repr(s)
        assert out["hellaswag"][i] == hellaswag_preprocess(s), repr(s)
        # Python uses full case mappings (e.g. 'ß'.upper() == 'SS', final sigma); our port uses ICU's simple 1:1
        # mappings (documented in py_text.cpp). Compare where the full and simple mappings agree.
        if all(len(c.lower()) == 1 and len(c.title()) == 1 for c in s) and "Σ" not in s:
            assert out["capitalize"][i] == s.capitalize(), repr(s)


def test_random_sample_matches_cpython():
    cases = [[1234, 50, 6], [1234, 570, 6], [1234, 299, 26], [0, 5, 5], [42, 21, 6], [42, 86, 6], [7, 300, 11],
             [2**40 + 3, 100, 3], [1234, 1, 1]]
    req = {"strings": [], "samples": cases, "bits": [[1234, 1000], [0, 10], [2**33 + 5, 10]]}
    out = json.loads(subprocess.run([str(TOOL)], input=json.dumps(req), capture_output=True, text=True,
                                    check=True).stdout)
    for (seed, n, k), got in zip(cases, out["samples"]):
        rnd = random.Random(seed)
        want = [rnd.sample(range(n), k) for _ in range(2)]
        assert got == want, (seed, n, k)
    for (seed, count), got in zip(req["bits"], out["bits"]):
        rnd = random.Random(seed)
        assert got == [rnd.getrandbits(32) for _ in range(count)], seed
