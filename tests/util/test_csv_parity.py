"""util/csv.h against CPython's csv module on the same bytes (random documents built from the characters that matter:
delimiters, quotes, CR, LF, spaces, non-ASCII), in the two Python modes the project uses:
  - binary-lines: csv.reader over (line.decode("utf-8") for line in open(path, "rb")), the MMLU loading script;
  - text-mode:    csv.reader(open(path, encoding="utf-8")) (universal newlines).
Records must be identical, and where Python raises csv.Error ours must throw too. Plus every MMLU file of the
repository's fixtures and of the shared data folder (when present) read both ways.
"""
import csv
import glob
import json
import os
import random
import subprocess
from pathlib import Path

import pytest

BUILD = Path(os.environ.get("SFT_BUILD_DIR", Path(__file__).resolve().parents[2] / "build"))
TOOL = BUILD / "tests" / "csv_tool"
ALPHABET = ["a", "b", ",", ",", '"', '"', "\r", "\n", "\r\n", " ", "é", "€"]


def python_records(path, mode):
    try:
        if mode == "binary-lines":
            with open(path, "rb") as f:
                return list(csv.reader(line.decode("utf-8") for line in f))
        with open(path, encoding="utf-8") as f:
            return list(csv.reader(f))
    except csv.Error:
        return None


def ours(path, mode):
    r = subprocess.run([str(TOOL), mode, str(path)], capture_output=True, text=True, check=True)
    out = json.loads(r.stdout)
    return None if "exception" in out else out["records"]


@pytest.mark.parametrize("mode", ["binary-lines", "text-mode"])
def test_random_documents_match_python(mode, tmp_path):
    rnd = random.Random(20261203)
    mismatches = []
    for i in range(400):
        text = "".join(rnd.choice(ALPHABET) for _ in range(rnd.randint(0, 40)))
        p = tmp_path / f"doc{i}.csv"
        p.write_bytes(text.encode("utf-8"))
        want, got = python_records(p, mode), ours(p, mode)
        if want != got:
            mismatches.append((text, want, got))
    assert not mismatches, mismatches[:3]


def test_crlf_inside_quotes_is_kept_only_by_binary_lines(tmp_path):
    p = tmp_path / "q.csv"
    p.write_bytes(b'"Line one\r\nline two",A,B,C,D,A\r\nnext,1,2,3,4,B\r\n')
    assert ours(p, "binary-lines") == [["Line one\r\nline two", "A", "B", "C", "D", "A"], ["next", "1", "2", "3", "4", "B"]]
    assert ours(p, "text-mode")[0][0] == "Line one\nline two"


MMLU = sorted(glob.glob("/work/shared/data/mmlu/*/*.csv")) + sorted(
    glob.glob(str(Path(__file__).resolve().parents[1] / "fixtures" / "eval" / "data" / "mmlu" / "*" / "*.csv")))


def test_every_mmlu_file_matches_the_loading_script():
    # The repository's fixtures are always there: none found means a broken checkout, a failure, not a skip.
    assert MMLU, "no MMLU CSV under tests/fixtures/eval/data/mmlu (broken checkout?)"
    for path in MMLU:
        assert ours(path, "binary-lines") == python_records(path, "binary-lines"), path
