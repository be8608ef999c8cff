"""Runs llama.cpp (llama-cpp-python, the venv of scripts/setup-llama-venv.sh) on one GGUF for
test_gguf_llama_cpp.py and bench/gguf_llama_cpp.sh. Reads a job as JSON on stdin, prints results as JSON:

  {"model": path, "greedy": [{"ids": [...], "n": 20}], "ppl_ids": [...], "tokenize": [text, ...], "chat": [messages]}
-> {"greedy": [{"tokens": [...], "margins": [...]}], "nll": [...], "tokenize": [[ids]...],
    "chat_jinja": str, "chat_builtin": str | null, "eos": id}

greedy: argmax of llama.cpp's logits after the given prompt ids, token by token (no sampler), stopping at EOS;
margins[i] = llama.cpp's logit gap between its pick and its runner-up at step i.
nll: per-position negative log-likelihood of ppl_ids[t+1] given ppl_ids[:t+1] from one evaluation with all logits.
chat_jinja: llama-cpp-python's Jinja2ChatFormatter on tokenizer.chat_template (what create_chat_completion uses);
chat_builtin: llama.cpp's own C++ llama_chat_apply_template with the file's template (its built-in formats)."""
import ctypes
import json
import sys

import numpy as np
from llama_cpp import Llama, llama_chat_format, llama_cpp


def greedy(llm, ids, n, eos):
    llm.reset()
    llm.eval(ids)
    out, margins = [], []
    for _ in range(n):
        logits = np.asarray(llm.scores[llm.n_tokens - 1], dtype=np.float64)
        top2 = np.argsort(logits)[-2:]
        t = int(top2[1])
        out.append(t)
        margins.append(float(logits[top2[1]] - logits[top2[0]]))
        if t == eos:
            break
        llm.eval([t])
    return {"tokens": out, "margins": margins}


def nll(llm, ids):
    llm.reset()
    llm.eval(ids)
    res = []
    for t in range(len(ids) - 1):
        x = np.asarray(llm.scores[t], dtype=np.float64)
        m = x.max()
        res.append(float(m + np.log(np.exp(x - m).sum()) - x[ids[t + 1]]))
    return res


def builtin_chat(llm, template, messages):
    msgs = (llama_cpp.llama_chat_message * len(messages))()
    keep = []
    for i, m in enumerate(messages):
        role, content = m["role"].encode(), m["content"].encode()
        keep += [role, content]
        msgs[i].role, msgs[i].content = role, content
    buf = ctypes.create_string_buffer(1 << 16)
    n = llama_cpp.llama_chat_apply_template(template.encode(), msgs, len(messages), True, buf, len(buf))
    return buf.raw[:n].decode() if n > 0 else None


def main():
    job = json.load(sys.stdin)
    llm = Llama(model_path=job["model"], n_ctx=job.get("n_ctx", 512), n_threads=2, n_batch=512, logits_all=True,
                verbose=False, seed=0)
    eos = llm.token_eos()
    out = {"eos": eos}
    out["greedy"] = [greedy(llm, g["ids"], g["n"], eos) for g in job.get("greedy", [])]
    if job.get("ppl_ids"):
        out["nll"] = nll(llm, job["ppl_ids"])
    out["tokenize"] = [llm.tokenize(t.encode(), add_bos=False, special=True) for t in job.get("tokenize", [])]
    if job.get("chat"):
        meta = llm.metadata
        template = meta["tokenizer.chat_template"]
        vocab = [llm.detokenize([i], special=True).decode("utf-8", "replace") for i in (llm.token_bos(), eos)]
        fmt = llama_chat_format.Jinja2ChatFormatter(template=template, bos_token=vocab[0], eos_token=vocab[1])
        out["chat_jinja"] = fmt(messages=job["chat"]).prompt
        out["chat_builtin"] = builtin_chat(llm, template, job["chat"])
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
