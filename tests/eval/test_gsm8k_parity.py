"""`sft eval --tasks gsm8k` vs lm-evaluation-harness 0.4.13's HF generate_until (CPU, float32, batch 1) on SmolLM2-135M:
5-shot GSM8K on the first 3 fixture documents (tests/fixtures/eval/data/gsm8k, hand-written rows in openai/gsm8k's
schema), --gen_kwargs max_gen_toks=96 on both sides. The prompt strings (lm-eval's seeded random few-shot draw from
train) are identical, the generated token ids are identical up to where either engine stopped, the text after
lm-eval's stop-string cut is identical, and so are both filters' answers (strict-match, flexible-extract) and their
exact_match scores. A separate file from test_leaderboard_parity.py so each gets its own CI time budget.
"""
from leaderboard_parity_common import check_case, model_dir  # noqa: F401 (model_dir is a fixture)


def test_gsm8k_matches_lm_eval(model_dir, tmp_path, tmp_path_factory):  # noqa: F811
    check_case(model_dir, "gsm8k", 5, tmp_path, tmp_path_factory)
