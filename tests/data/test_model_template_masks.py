"""--template model masks (data layer) on real tokenizers and the real chat templates of Qwen2.5, Qwen3, Llama 3, Llama
3.2 and SmolLM2. For random conversations (tests/template/chat_fixtures.py) `data_tool <dir> <file> model` must give
  - ids == transformers apply_chat_template(conv, tokenize=True) (the whole rendering encoded at once);
  - labels == an independent Python transcription of the assistant-only rule on HF's own token offsets:
    a token is a target when it overlaps [len(render(conv[:i], add_generation_prompt=True)), end of the content of
    assistant message i) for some assistant i, or is the special token that starts right at that content end;
  - for a template with {% generation %} blocks, labels == transformers' return_assistant_tokens_mask (TRL's
    assistant_only_loss input), the first token excepted (never a target).
Also spot checks in words: a ChatML assistant turn trains on "content<|im_end|>", nothing else."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from transformers import AutoTokenizer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "template"))
from chat_fixtures import conversations, folders  # noqa: E402

BUILD = os.environ.get("SFT_BUILD_DIR")
MARK = "\ue000sft\ue001"


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    assert BUILD, "SFT_BUILD_DIR is not set: run this test through ctest"
    return folders(tmp_path_factory.mktemp("masks"))


def data_tool(folder, convs, tmp_path):
    f = tmp_path / "rows.jsonl"
    f.write_text("".join(json.dumps({"messages": c}, ensure_ascii=False) + "\n" for c in convs), encoding="utf-8")
    res = subprocess.run([str(Path(BUILD) / "tests" / "data_tool"), str(folder), str(f), "model"],
                         capture_output=True, text=True, encoding="utf-8")
    assert res.returncode == 0, res.stderr
    return [json.loads(line) for line in res.stdout.splitlines()]


def expected_labels(tok, conv):
    text = tok.apply_chat_template(conv, tokenize=False)
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    ids, offs = enc["input_ids"], enc["offset_mapping"]
    special = set(tok.all_special_ids) | {i for i, t in tok.added_tokens_decoder.items() if t.special}
    target = [False] * len(ids)
    for i, m in enumerate(conv):
        if m["role"] != "assistant":
            continue
        prompt = tok.apply_chat_template(conv[:i], tokenize=False, add_generation_prompt=True)
        assert text.startswith(prompt)
        begin = len(prompt)
        marked = [dict(x) for x in conv]
        marked[i]["content"] = m["content"] + MARK
        with_mark = tok.apply_chat_template(marked, tokenize=False)
        end = 0  # the renderings agree up to the end of the content as the template writes it
        while end < min(len(text), len(with_mark)) and text[end] == with_mark[end]:
            end += 1
        assert MARK in with_mark[end:] and end >= begin
        for k, (s, e) in enumerate(offs):
            if e > begin and s < end:
                target[k] = True
            if s == end and e > s and ids[k] in special:
                target[k] = True
    labels = [t if target[k] else -100 for k, t in enumerate(ids)]
    labels[0] = -100
    return ids, labels


@pytest.mark.parametrize("family", ["qwen2.5", "qwen3", "llama3", "llama3.2", "smollm2"])
def test_masks_match_the_rule_on_hf_offsets(models, family, tmp_path):
    tok = AutoTokenizer.from_pretrained(str(models[family]))
    convs = [c for c in conversations(99 + len(family), family, 60) if any(m["role"] == "assistant" for m in c)]
    got = data_tool(models[family], convs, tmp_path)
    assert len(got) == len(convs)
    for conv, g in zip(convs, got):
        ids, labels = expected_labels(tok, conv)
        assert g["ids"] == ids, conv
        assert g["labels"] == labels, conv


def test_chatml_targets_in_words(models, tmp_path):
    conv = [{"role": "system", "content": "S"}, {"role": "user", "content": "Q1"},
            {"role": "assistant", "content": "A one"}, {"role": "user", "content": "Q2"},
            {"role": "assistant", "content": ""}]
    for family in ("qwen2.5", "smollm2"):
        tok = AutoTokenizer.from_pretrained(str(models[family]))
        g = data_tool(models[family], [conv], tmp_path)[0]
        pieces = [tok.decode([i for i, lab in zip(g["ids"], g["labels"]) if lab != -100])]
        assert pieces == ["A one<|im_end|><|im_end|>"], (family, pieces)
    tok = AutoTokenizer.from_pretrained(str(models["llama3"]))
    g = data_tool(models["llama3"], [conv], tmp_path)[0]
    assert tok.decode([i for i, lab in zip(g["ids"], g["labels"]) if lab != -100]) == "A one<|eot_id|><|eot_id|>"
    tok = AutoTokenizer.from_pretrained(str(models["qwen3"]))
    g = data_tool(models["qwen3"], [conv], tmp_path)[0]
    # Qwen3: the last assistant turn gets the empty think block the model must generate after "<|im_start|>assistant\n".
    assert tok.decode([i for i, lab in zip(g["ids"], g["labels"]) if lab != -100]) == \
        "A one<|im_end|><think>\n\n</think>\n\n<|im_end|>"


def test_generation_blocks_equal_transformers_assistant_mask(models, tmp_path):
    """SmolLM2's template with {% generation %} around the assistant reply: our labels are exactly
    transformers' assistant_masks (what TRL's assistant_only_loss trains on)."""
    src = (Path(models["smollm2"]) / "chat_template.jinja")
    cfg_path = Path(models["smollm2"]) / "tokenizer_config.json"
    template = src.read_text(encoding="utf-8") if src.exists() else json.loads(cfg_path.read_text())["chat_template"]
    gen_template = template.replace(
        "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}",  # real newlines
        "{% if message['role'] == 'assistant' %}{{'<|im_start|>assistant\n'}}{% generation %}"
        "{{ message['content'] + '<|im_end|>' }}{% endgeneration %}{{'\n'}}{% else %}"
        "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endif %}")
    assert gen_template != template
    folder = tmp_path / "smol_gen"
    import shutil
    shutil.copytree(models["smollm2"], folder)
    if (folder / "chat_template.jinja").exists():
        (folder / "chat_template.jinja").write_text(gen_template, encoding="utf-8")
    else:
        cfg = json.loads(cfg_path.read_text())
        cfg["chat_template"] = gen_template
        (folder / "tokenizer_config.json").write_text(json.dumps(cfg), encoding="utf-8")
    tok = AutoTokenizer.from_pretrained(str(folder))
    convs = [c for c in conversations(7, "smollm2", 40) if any(m["role"] == "assistant" for m in c)]
    got = data_tool(folder, convs, tmp_path)
    for conv, g in zip(convs, got):
        out = tok.apply_chat_template(conv, tokenize=True, return_dict=True, return_assistant_tokens_mask=True)
        assert g["ids"] == list(out["input_ids"])
        want = [t if m else -100 for t, m in zip(out["input_ids"], out["assistant_masks"])]
        want[0] = -100
        assert g["labels"] == want, conv
