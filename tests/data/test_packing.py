"""Packing strategies against TRL's own: `data_tool --pack` (data/packing.cpp) vs trl 1.16's `pack_dataset` on the
same sample lengths, for `bfd` (best-fit decreasing) and `wrapped`.

Each sample's tokens encode (sample index, offset) so TRL's packed rows can be read back as pieces of samples. The
lengths are random with many ties (the stable order of equal lengths matters for bfd) and span several of TRL's
1000-sample `datasets.map` batches (each packed on its own), plus lengths equal to the capacity and samples longer
than it (wrapped cuts them across rows; bfd is given truncated samples, as sft's data layer truncates first)."""
import json
import os
import random
import subprocess

import pytest

BUILD = os.environ.get("SFT_BUILD_DIR", "")
TOOL = os.path.join(BUILD, "tests", "data_tool")
STRIDE = 1_000_000  # token id = sample * STRIDE + offset


def ours(strategy, capacity, lengths):
    out = subprocess.run([TOOL, "--pack", strategy, str(capacity), ",".join(map(str, lengths))],
                         capture_output=True, text=True, check=True)
    return [[tuple(p) for p in row] for row in json.loads(out.stdout)]


def trl_rows(strategy, capacity, lengths):
    from datasets import Dataset
    from trl.data_utils import pack_dataset
    ds = Dataset.from_dict({"input_ids": [[s * STRIDE + t for t in range(n)] for s, n in enumerate(lengths)]})
    packed = pack_dataset(ds, capacity, strategy)
    rows = []
    for ids in packed["input_ids"]:
        row = []
        for tok in ids:  # runs of consecutive tokens of one sample are pieces
            s, t = divmod(tok, STRIDE)
            if row and row[-1][0] == s and row[-1][2] == t:
                row[-1] = (s, row[-1][1], t + 1)
            else:
                row.append((s, t, t + 1))
        rows.append(row)
    return rows


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize("strategy", ["bfd", "wrapped"])
def test_packing_equals_trl(strategy, seed):
    rng = random.Random(seed)
    capacity = rng.choice([16, 48, 100])
    n = rng.choice([7, 999, 1000, 2345])
    top = capacity if strategy == "bfd" else 3 * capacity
    lengths = [rng.choice([1, capacity, rng.randint(1, top), rng.randint(1, max(1, capacity // 4))]) for _ in range(n)]
    if strategy == "wrapped":
        lengths = [min(l, top) for l in lengths]
    mine, theirs = ours(strategy, capacity, lengths), trl_rows(strategy, capacity, lengths)
    assert mine == theirs
    # Every token of every sample exactly once.
    seen = sorted((s, t) for row in mine for (s, b, e) in row for t in range(b, e))
    assert seen == [(s, t) for s, n_ in enumerate(lengths) for t in range(n_)]
    assert all(sum(e - b for (_, b, e) in row) <= capacity for row in mine)
