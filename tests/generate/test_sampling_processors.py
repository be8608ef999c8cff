"""Our logits processors (generate/sampling.cpp) vs transformers' RepetitionPenaltyLogitsProcessor,
TemperatureLogitsWarper, TopKLogitsWarper and TopPLogitsWarper on random fp32 logits.

Values must match to fp32 rounding (rtol 1e-6) and the set of removed (-inf) entries must be identical (with exactly
tied logits, which of the ties survives depends on torch's unstable sort, so then the kept values must match); greedy
selection after the penalty must equal torch.argmax."""
import json
import math
import os
import subprocess
from pathlib import Path

import numpy as np
import torch
from transformers.generation.logits_process import (RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper,
                                                    TopKLogitsWarper, TopPLogitsWarper)

TOOL = Path(os.environ.get("SFT_BUILD_DIR", "../../build")) / "tests" / "sampling_tool"


def as_array(row):
    return np.array([-math.inf if x == "-inf" else x for x in row], dtype=np.float64)


def test_processors_match_transformers():
    rng = np.random.default_rng(0)
    cases = []
    for i in range(40):
        V = int(rng.integers(5, 300))
        logits = (rng.standard_normal(V) * rng.uniform(0.5, 6)).astype(np.float32)
        if i % 5 == 0:
            logits[rng.integers(0, V, 3)] = logits.max()  # ties at the top
        seen = rng.integers(0, V, int(rng.integers(1, 20))).tolist()
        cases.append({"logits": logits.tolist(), "seen": seen, "penalty": float(rng.choice([1.0, 1.05, 1.3, 2.0])),
                      "temperature": float(rng.choice([0.3, 0.7, 1.0, 1.6])), "top_k": int(rng.choice([0, 1, 5, 50])),
                      "top_p": float(rng.choice([0.1, 0.5, 0.8, 0.95, 1.0]))})
    out = json.loads(subprocess.run([str(TOOL)], input=json.dumps({"cases": cases}), capture_output=True, text=True,
                                    check=True).stdout)
    for i, c in enumerate(cases):
        scores = torch.tensor([c["logits"]], dtype=torch.float32)
        ids = torch.tensor([c["seen"]])
        want = {
            "penalty": RepetitionPenaltyLogitsProcessor(c["penalty"])(ids, scores.clone()),
            "temperature": TemperatureLogitsWarper(c["temperature"])(ids, scores.clone()),
            "top_k": TopKLogitsWarper(c["top_k"])(ids, scores.clone()) if c["top_k"] > 0 else scores.clone(),
            "top_p": TopPLogitsWarper(c["top_p"])(ids, scores.clone()) if c["top_p"] < 1 else scores.clone(),
        }
        for name, w in want.items():
            w = w[0].double().numpy()
            g = as_array(out[name][i])
            if not np.array_equal(np.isinf(g), np.isinf(w)):
                # Only legitimate with exactly tied logits: which tie torch's unstable sort keeps is unspecified,
                # so the same VALUES must be kept.
                assert len(set(c["logits"])) < len(c["logits"]), f"case {i} {name}: removed sets differ"
                np.testing.assert_allclose(np.sort(g[~np.isinf(g)]), np.sort(w[~np.isinf(w)]), rtol=1e-6, atol=0,
                                           err_msg=f"case {i} {name} (tied logits)")
                continue
            fin = ~np.isinf(w)
            np.testing.assert_allclose(g[fin], w[fin], rtol=1e-6, atol=0, err_msg=f"case {i} {name}")
        penalised = want["penalty"][0]
        assert out["greedy"][i] == int(torch.argmax(penalised)), f"case {i}: greedy"
