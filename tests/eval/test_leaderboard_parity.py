"""`sft eval` vs lm-evaluation-harness 0.4.13 (HF backend, CPU, float32) on SmolLM2-135M for the data-driven tasks
beyond MMLU/ARC/HellaSwag: truthfulqa_mc1, truthfulqa_mc2 (mc2 log-likelihoods), winogrande (partial evaluation),
piqa, boolq, openbookqa (plain rows) at 0 and 5 shots (gsm8k: test_gsm8k_parity.py, same checks), on the fixture
files in tests/fixtures/eval/data/<task>/<split>.jsonl (hand-written rows in the HF datasets' schema), read by both
engines. lm-eval runs its own task YAMLs; only the data files are swapped (lm_eval_oracle.py).

For every task and document:
  - the request strings are identical (prompt format, few-shot selection with lm-eval's seeded sampler and its
    eval-doc exclusion rules, Winogrande's per-option contexts, TruthfulQA's pinned 0 shots);
  - log-likelihoods agree within 1e-4 + 1e-5*|ll| (fp32 reassociation; see test_lm_eval_parity.py), is_greedy flags
    and predictions are identical (a prediction may differ only inside that tolerance of lm-eval's own margin);
  - mc2's true-answer mass agrees within 1e-3 (it is exp of the lls: a relative error of about |dll|);
  - GSM8K: the generated tokens are identical up to where either engine stopped, the text after lm-eval's stop-string
    cut is identical, and so are both filters' extracted answers and exact_match scores;
  - task metrics equal lm-eval's (exactly for 0/1 metrics, within 1e-3 for mc2).
"""
import pytest

from leaderboard_parity_common import check_case, model_dir  # noqa: F401 (model_dir is a fixture)


@pytest.mark.parametrize("shots", [0, 5])
def test_matches_lm_eval(model_dir, shots, tmp_path, tmp_path_factory):  # noqa: F811
    check_case(model_dir, "mc", shots, tmp_path, tmp_path_factory)
