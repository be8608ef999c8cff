"""llama.cpp itself loads the GGUF files `sft export` writes (llama-cpp-python, built once by
scripts/setup-llama-venv.sh into ~/.cache/sft/llama-venv-<hash>; label `slow`, skipped when that venv is absent):

- greedy continuations of several prompts equal `sft generate --greedy` for f32 and f16, on SmolLM2-135M-Instruct
  real weights (the folder scripts/convert_smollm2.py makes) and on tiny random Llama (also with Llama 3 rope
  scaling; and "tiny": attention biases, permuted q/k biases, the gpt-2 pre-tokenizer), Qwen2 and Qwen3 models. A divergence is accepted only at a near-tie of llama.cpp's top two logits
  (f32: margin < 1e-3; f16: < 2e-2, since llama.cpp rounds activations to f16 for f16 matrices);
- llama.cpp's tokenizer (tokenizer.ggml.pre) encodes a corpus as sft does;
- the chat template renders as ours: llama-cpp-python's Jinja2 formatter, and llama.cpp's built-in C++ formats
  where it recognises the template (chatml);
- perplexity of a fixed text on the q8_0 file: llama.cpp's within 1% of sft's (on the same file).
bench/gguf_llama_cpp.sh runs this file."""
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

import gguf_models
from test_gguf_export import CORPUS, SFT, logits_sft, run

SRC = gguf_models.SRC
SMOL = Path(os.environ.get("SFT_SMOLLM2_DIR", Path.home() / ".cache" / "sft" / "models" / "smollm2-135m-instruct"))
PROMPTS = ["The capital of France is", "Here is a short poem about the sea:\n", "def fibonacci(n):"]
TEXT = ("The quick brown fox jumps over the lazy dog. Language models assign probabilities to sequences of words; "
        "perplexity is the exponential of the average negative log-likelihood per token. In 1969, two astronauts "
        "walked on the Moon while a third orbited above them.")
N_NEW = 24


def llama_venv():
    r = subprocess.run([str(SRC / "scripts" / "setup-llama-venv.sh")], capture_output=True, text=True,
                       env=dict(os.environ, SFT_LLAMA_NO_BUILD="1"))
    return Path(r.stdout.strip()) if r.returncode == 0 else None


VENV = llama_venv()
pytestmark = pytest.mark.skipif(VENV is None, reason="llama-cpp-python venv not built (scripts/setup-llama-venv.sh)")


def llama_cpp(job):
    r = subprocess.run([str(VENV / "bin" / "python"), str(Path(__file__).parent / "llama_cpp_oracle.py")],
                       input=json.dumps(job), capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="2"))
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("llamacpp")
    out = {k: gguf_models.build(k, root / k) for k in ("llama", "llama_rs", "qwen2", "qwen3", "tiny")}
    if (SMOL / "model.safetensors").exists():
        out["smollm2"] = SMOL
    return out


def export(models, kind, t, root):
    f = root / f"{kind}-{t}.gguf"
    if not f.exists():
        run("export", "--model", models[kind], "--outfile", f, "--outtype", t)
    return f


@pytest.mark.parametrize("kind", ["smollm2", "llama", "llama_rs", "qwen2", "qwen3", "tiny"])
@pytest.mark.parametrize("outtype", ["f32", "f16"])
def test_greedy_and_tokenizer_match_llama_cpp(models, kind, outtype, tmp_path_factory):
    if kind not in models:
        pytest.skip(f"{SMOL} not built (scripts/convert_smollm2.py)")
    g = export(models, kind, outtype, tmp_path_factory.getbasetemp())
    ours = []
    for p in PROMPTS:
        r = run("generate", "--model", g, "--template", "none", "--prompt", p, "--greedy", "--max_new_tokens",
                str(N_NEW), "--json")
        ours.append(json.loads(r.stdout))
    res = llama_cpp({"model": str(g), "greedy": [{"ids": o["prompt_ids"], "n": N_NEW} for o in ours],
                     "tokenize": PROMPTS + CORPUS})
    for text, ids in zip(PROMPTS + CORPUS, res["tokenize"]):
        mine = json.loads(run("tokenize", "--model", g, "--text", text, "--json").stdout)[0]["ids"]
        assert ids == mine, f"llama.cpp tokenizes {text!r} differently"
    tol = 1e-3 if outtype == "f32" else 2e-2
    compared = 0
    for p, o, ref in zip(PROMPTS, ours, res["greedy"]):
        got, want = o["tokens"], ref["tokens"]
        for i in range(min(len(got), len(want))):
            if got[i] != want[i]:
                assert ref["margins"][i] < tol, f"{p!r}: token {i}: sft {got[i]} llama.cpp {want[i]} " \
                                                f"(llama.cpp margin {ref['margins'][i]:.3g})"
                print(f"{kind} {outtype} {p!r}: diverged at token {i} on a near-tie ({ref['margins'][i]:.2e})")
                break
            compared += 1
        else:
            assert len(got) == len(want), f"{p!r}: {len(got)} vs {len(want)} tokens"
    print(f"{kind} {outtype}: {compared} greedy tokens identical to llama.cpp")
    assert compared >= N_NEW


@pytest.mark.parametrize("kind", ["smollm2", "qwen2", "llama"])
def test_chat_template_renders_as_ours(models, kind, tmp_path_factory):
    if kind not in models:
        pytest.skip(f"{SMOL} not built (scripts/convert_smollm2.py)")
    g = export(models, kind, "q8_0", tmp_path_factory.getbasetemp())
    conv = [{"role": "system", "content": "You are brief."}, {"role": "user", "content": "Hi!"},
            {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "What is 2+2?"}]
    chat = tmp_path_factory.getbasetemp() / f"{kind}.chat.jsonl"
    chat.write_text(json.dumps({"messages": conv}) + "\n")
    ours = json.loads(run("tokenize", "--model", g, "--chat", chat, "--json", "--add_generation_prompt").stdout)[0]
    res = llama_cpp({"model": str(g), "chat": conv})
    assert res["chat_jinja"] == ours["text"]
    if kind in ("smollm2", "qwen2"):  # llama.cpp recognises these templates as chatml
        assert res["chat_builtin"] == ours["text"]


def test_q8_0_perplexity_within_one_percent(models, tmp_path_factory):
    kind = "smollm2" if "smollm2" in models else "qwen2"
    root = tmp_path_factory.getbasetemp()
    g = export(models, kind, "q8_0", root)
    ids = json.loads(run("tokenize", "--model", g, "--text", TEXT, "--json").stdout)[0]["ids"]
    import numpy as np
    lg = logits_sft(g, ids, root, "ppl").astype(np.float64)
    m = lg.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(lg - m).sum(axis=1, keepdims=True)))[:, 0]
    ours = float(np.mean([lse[t] - lg[t, ids[t + 1]] for t in range(len(ids) - 1)]))
    theirs = float(np.mean(llama_cpp({"model": str(g), "ppl_ids": ids})["nll"]))
    f32 = logits_sft(export(models, kind, "f32", root), ids, root, "ppl32").astype(np.float64)
    m = f32.max(axis=1, keepdims=True)
    lse = (m + np.log(np.exp(f32 - m).sum(axis=1, keepdims=True)))[:, 0]
    ref = float(np.mean([lse[t] - f32[t, ids[t + 1]] for t in range(len(ids) - 1)]))
    print(f"{kind}: perplexity q8_0 llama.cpp {math.exp(theirs):.4f}, sft {math.exp(ours):.4f}; f32 sft "
          f"{math.exp(ref):.4f} ({len(ids)} tokens)")
    assert abs(math.exp(theirs) / math.exp(ours) - 1) < 0.01


def convert_with_llama_cpp(folder, out, outtype, tmp):
    """llama.cpp's convert_hf_to_gguf.py (from the llama-cpp-python sdist the venv script unpacks) in this venv.
    Its sentencepiece probe runs before it falls back to the byte-level path; a stub module stands in for the
    package (not needed by byte-level BPE tokenizers)."""
    conv = VENV / "llama.cpp"
    stub = tmp / "stub"
    stub.mkdir(exist_ok=True)
    (stub / "sentencepiece.py").write_text("class SentencePieceProcessor:\n    pass\n")
    env = dict(os.environ, PYTHONPATH=f"{conv / 'gguf-py'}:{stub}", NO_LOCAL_GGUF="")
    r = subprocess.run([sys.executable, str(conv / "convert_hf_to_gguf.py"), str(folder), "--outfile", str(out),
                        "--outtype", outtype], capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr[-3000:]


# Keys the converter writes that sft does not, and why: naming metadata the converter derives from the folder name
# and README (general.basename, size_label, ...), and normalizer flags of tokenizers that have none.
CONVERTER_ONLY = ("general.", "tokenizer.ggml.add_space_prefix")


@pytest.mark.parametrize("kind", ["smollm2", "llama", "llama_rs", "qwen2", "qwen3"])
def test_same_file_as_llama_cpp_converter(models, kind, tmp_path):
    """Every tensor (names, types, shapes, bytes) and every architecture / tokenizer key of the converter's output
    is in ours with the same type and value, for f32 and q8_0 (q8_0 blocks bit-identical)."""
    if kind not in models:
        pytest.skip(f"{SMOL} not built (scripts/convert_smollm2.py)")
    if not (VENV / "llama.cpp" / "convert_hf_to_gguf.py").exists():
        pytest.skip("llama.cpp converter not unpacked (rerun scripts/setup-llama-venv.sh)")
    import numpy as np
    from gguf import GGUFReader
    for outtype in ("f32", "q8_0"):
        ref_f, ours_f = tmp_path / f"ref-{outtype}.gguf", tmp_path / f"ours-{outtype}.gguf"
        convert_with_llama_cpp(models[kind], ref_f, outtype, tmp_path)
        run("export", "--model", models[kind], "--outfile", ours_f, "--outtype", outtype)
        ref, ours = GGUFReader(str(ref_f)), GGUFReader(str(ours_f))
        for k, f in ref.fields.items():
            if k.startswith("GGUF.") or (k.startswith(CONVERTER_ONLY) and k != "general.architecture"
                                         and k != "general.file_type"):
                continue
            assert k in ours.fields, f"{outtype}: converter writes {k}, sft does not"
            assert ours.fields[k].types == f.types, (k, ours.fields[k].types, f.types)
            assert ours.fields[k].contents() == f.contents(), k
        rt = {t.name: t for t in ref.tensors}
        ot = {t.name: t for t in ours.tensors}
        assert set(rt) == set(ot), set(rt) ^ set(ot)
        for name, t in rt.items():
            o = ot[name]
            assert (o.tensor_type, list(o.shape)) == (t.tensor_type, list(t.shape)), name
            a, b = np.asarray(o.data), np.asarray(t.data)
            if name == "rope_freqs.weight":  # float32 pow/division of two implementations: last-ulp differences
                assert np.allclose(a, b, rtol=1e-6, atol=0), name
            else:
                assert np.array_equal(a.view(np.uint8), b.view(np.uint8)), f"{outtype}: {name} bytes differ"
        print(f"{kind} {outtype}: {len(rt)} tensors and {len(ref.fields)} keys as llama.cpp's converter writes them")
