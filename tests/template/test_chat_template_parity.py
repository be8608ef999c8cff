"""`sft tokenize --chat` (our Jinja engine + tokenizer) against transformers' apply_chat_template on the templates of
Qwen2.5-Instruct, Qwen3 (tools-free path), Llama 3, Llama 3.2-Instruct and SmolLM2-Instruct: a few hundred seeded random conversations
(system or not, 1-4 turns, empty / unicode / whitespace-edged content, Qwen3 <think> blocks), generation prompt on
and off; rendered text byte-identical and ids identical. Plus engine semantics on small templates against jinja2
configured as transformers configures it."""
import json
import os
import subprocess

import pytest
from transformers import AutoTokenizer

from chat_fixtures import conversations, folders, tiny_folder

SFT = os.environ.get("SFT_BIN")
N_PER_FAMILY = 80  # x 5 templates x 2 (generation prompt on/off) = 800 renderings


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    assert SFT, "SFT_BIN is not set: run this test through ctest"
    return folders(tmp_path_factory.mktemp("chat"))


def sft_chat(model, convs, tmp_path, gen):
    f = tmp_path / "convs.jsonl"
    f.write_text("".join(json.dumps({"messages": c}, ensure_ascii=False) + "\n" for c in convs), encoding="utf-8")
    args = [SFT, "tokenize", "--model", str(model), "--chat", str(f), "--json"] + (["--add_generation_prompt"] if gen else [])
    res = subprocess.run(args, capture_output=True, text=True, encoding="utf-8")
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


@pytest.mark.parametrize("family", ["qwen2.5", "qwen3", "llama3", "llama3.2", "smollm2"])
def test_random_conversations_match_transformers(models, family, tmp_path):
    tok = AutoTokenizer.from_pretrained(str(models[family]))
    convs = conversations(1234 + len(family), family, N_PER_FAMILY)
    for gen in (False, True):
        ours = sft_chat(models[family], convs, tmp_path, gen)
        assert len(ours) == len(convs)
        for conv, got in zip(convs, ours):
            want = tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen)
            assert got["text"] == want, (family, gen, conv)
            assert got["ids"] == tok(want, add_special_tokens=False)["input_ids"], (family, gen, conv)


def test_fixed_shapes(models, tmp_path):
    """The cases the random set may miss: a single user turn, system only + user, empty everything."""
    convs = [[{"role": "user", "content": ""}],
             [{"role": "system", "content": ""}, {"role": "user", "content": ""}, {"role": "assistant", "content": ""}],
             [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "<think>\nx\n</think>\n\nhello"}]]
    for family, folder in models.items():
        tok = AutoTokenizer.from_pretrained(str(folder))
        for gen in (False, True):
            for conv, got in zip(convs, sft_chat(folder, convs, tmp_path, gen)):
                assert got["text"] == tok.apply_chat_template(conv, tokenize=False, add_generation_prompt=gen)


# Engine semantics: whitespace control, trim/lstrip blocks, loops, filters, tests, namespaces, slicing, methods.
SNIPPETS = [
    "{% for m in messages %}\n  {% if m.role == 'user' %}\n    U:{{ m.content }}\n  {% endif %}\n{% endfor %}\n",
    "  {%- for m in messages -%}  [{{ loop.index }}/{{ loop.length }}{{ ' first' if loop.first }}{{ ' last' if loop.last else '' }}] {%+ if true %}x{% endif %}\n{% endfor %}",
    "{% set ns = namespace(n=0, s='') %}{% for m in messages %}{% set ns.n = ns.n + 1 %}{% set ns.s = ns.s ~ m.role[0] %}{% endfor %}{{ ns.n }} {{ ns.s }}",
    "{{ messages | length }} {{ messages[-1].content | trim | length }} {{ messages[::-1][0].role }} {{ messages[1:] | length }}",
    "{{ messages[0].content.strip() }}|{{ messages[0].content.lstrip() }}|{{ messages[0].content.rstrip() }}|{{ messages[0].content.split() | join(',') }}",
    "{% for m in messages %}{{ m.content.split('\\n')[0] }}{{ m.content.startswith('H') }}{{ m.content.endswith(('!', '?')) }}{% endfor %}",
    "{{ messages | tojson }} {{ {'a': [1, 2.5, none, true], 'b': 'é\"\\n'} | tojson }} {{ messages[0] | tojson(indent=2) }}",
    "{% if messages[0].foo is defined %}a{% elif messages[0].role is string and not messages[0].foo %}b{% else %}c{% endif %}{{ messages[0].foo }}",
    "{% for m in messages if m.role != 'system' %}{{ loop.index0 }}{{ m.role | upper }}{% else %}none{% endfor %}",
    "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1.5 + 1 }} {{ 'ab' * 3 }} {{ 1 ~ 'x' ~ none }} {{ 0.1 + 0.2 }}",
    "{% for k, v in {'x': 1, 'y': [2]}.items() %}{{ k }}={{ v }};{% endfor %}{{ [1, 'a', none, true, 1.0] }}",
    "{%- set x = 'outer' %}{% for i in range(3) %}{% set x = i %}{{ x }}{% endfor %}{{ x }}{% for i in range(5) %}{% if i == 3 %}{% break %}{% endif %}{% if i == 1 %}{% continue %}{% endif %}{{ i }}{% endfor %}",
    "{# comment #}\n  {# indented comment #}\nA{{- '  x  ' -}}B {{ '\\u00e9\\x41\\t' }} {{ \"q'\" }}\n\n",
    "{{ messages[0].content[0] if messages[0].content else 'empty' }} {{ (messages | first).role }} {{ (messages | last).role }} {{ 'abc'[::-1] }} {{ 'x' in 'xyz' }} {{ 'role' in messages[0] }}",
    "{% generation %}gen {{ messages[0].role }}{% endgeneration %}\n{{ messages|selectattr('role', 'equalto', 'user')|list|length }} {{ messages|map(attribute='role')|join(' ') }}",
]


def test_engine_snippets_match_jinja2(tmp_path):
    from transformers.utils.chat_template_utils import _compile_jinja_template

    assert SFT, "SFT_BIN is not set: run this test through ctest"
    conv = [{"role": "system", "content": "  Hello!\n sys \u3000"}, {"role": "user", "content": "Hi? é😀\nsecond"},
            {"role": "assistant", "content": "ok"}]
    for i, snippet in enumerate(SNIPPETS):
        folder = tiny_folder(f"snip{i}", tmp_path, snippet)
        cfg = json.loads((folder / "tokenizer_config.json").read_text(encoding="utf-8"))
        specials = {k: cfg[k] for k in ("bos_token", "eos_token", "unk_token", "pad_token") if isinstance(cfg.get(k), str)}
        want = _compile_jinja_template(snippet).render(messages=conv, tools=None, documents=None,
                                                        add_generation_prompt=False, **specials)
        got = sft_chat(folder, [conv], tmp_path, False)[0]["text"]
        assert got == want, (i, snippet)


def test_unsupported_is_an_error(tmp_path):
    assert SFT, "SFT_BIN is not set: run this test through ctest"
    for snippet, needle in [("{% macro m() %}x{% endmacro %}", "unsupported template tag"),
                            ("{{ messages | wordcount }}", "unsupported filter"),
                            ("{{ raise_exception('bad role') }}", "bad role"),
                            ("{{ messages[0].content.zfill(3) }}", "not supported")]:
        folder = tiny_folder("bad", tmp_path, snippet)
        f = tmp_path / "c.jsonl"
        f.write_text(json.dumps({"messages": [{"role": "user", "content": "x"}]}) + "\n")
        res = subprocess.run([SFT, "tokenize", "--model", str(folder), "--chat", str(f), "--json"],
                             capture_output=True, text=True)
        assert res.returncode != 0 and needle in res.stderr and len(res.stderr.strip().splitlines()) == 1, res.stderr
