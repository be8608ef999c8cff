"""The seed's own stack on sft's row order: transformers' `Trainer` (its padded collator with an attention mask) or
TRL's `SFTTrainer` (padding-free by default here, as `--padding_free True`), trained on the samples `sft train`
trained on, in the order it trained them (`--debug_dump_batches`: every micro-batch with its epoch, step and sample
indices), with the same schedule (linear), AdamW (torch), accumulation, clipping and loss normalisation
(transformers 5.x: the step's summed token losses over its `num_items_in_batch` shifted targets).

The peer tokenises the alpaca rows itself with the HF tokenizer (stanford_alpaca's prompt, the prompt and the response
encoded apart, eos appended, loss on the response only, right truncation to max_len, rows with an empty output or no
target left excluded) and checks every sample sft dumped against its own: that is the template and masking parity.
A fixed sampler then hands HF sft's epoch orders, and a collator wrapper checks that each optimizer step holds the
same samples as sft's (sft regroups a step's rows by length into micro-batches; the step's gradient is the same).

Used by tests/train/test_hf_trainer_parity.py (tiny model, fp32) and bench/seed_job.sh (`python hf_peer.py --side
hf|trl ...`: one JSON line with the per-step losses, tokens/s, positions computed and peak RSS).
"""
import argparse
import json
import os
import resource
import sys
import time

PROMPT_INPUT = ("Below is an instruction that describes a task, paired with an input that provides further context. "
                "Write a response that appropriately completes the request.\n\n"
                "### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:")
PROMPT_NO_INPUT = ("Below is an instruction that describes a task. "
                   "Write a response that appropriately completes the request.\n\n"
                   "### Instruction:\n{instruction}\n\n### Response:")


def fill(template, instruction, inp):
    # One pass, as sft's template: a "{input}" inside the instruction stays literal.
    head, rest = template.split("{instruction}")
    if "{input}" in rest:
        mid, tail = rest.split("{input}")
        return head + instruction + mid + inp + tail
    return head + instruction + rest


def alpaca_samples(path, tokenizer, max_len):
    """[(ids, labels)] as sft's data layer makes them from an alpaca JSON array (response-only loss)."""
    enc = lambda s: tokenizer(s, add_special_tokens=False)["input_ids"]  # noqa: E731
    with_special = tokenizer("a", add_special_tokens=True)["input_ids"]
    bos = with_special[:len(with_special) - len(enc("a"))]  # what the post-processor prepends (Llama 3: BOS)
    eos = tokenizer.eos_token_id
    samples = []
    for row in json.load(open(path)):
        out = row["output"]
        if all(c in " \t\n\r" for c in out):  # empty responses are excluded (sft's default)
            continue
        inp = row.get("input") or ""
        prompt = fill(PROMPT_INPUT if inp else PROMPT_NO_INPUT, row["instruction"], inp)
        p, r = bos + enc(prompt), enc(out) + [eos]
        ids, labels = (p + r)[:max_len], ([-100] * len(p) + r)[:max_len]
        labels[0] = -100
        if any(l != -100 for l in labels):
            samples.append((ids, labels))
    return samples


def read_dump(path):
    """sft's micro-batches: per epoch the sample order, per step the samples, per sample its dumped ids/labels."""
    epochs, steps, dumped = {}, {}, {}
    for line in open(path):
        b = json.loads(line)
        epochs.setdefault(b["epoch"], []).extend(b["sample_indices"])
        steps.setdefault(b["step"], []).extend(b["sample_indices"])
        T, k = b["T"], 0
        for r in range(b["B"]):
            t = 0
            while t < T and b["doc_ids"][r * T + t] >= 0:
                doc, start = b["doc_ids"][r * T + t], t
                while t < T and b["doc_ids"][r * T + t] == doc:
                    t += 1
                s = b["sample_indices"][k]
                k += 1
                dumped[s] = (b["input_ids"][r * T + start:r * T + t], b["labels"][r * T + start:r * T + t])
    return epochs, steps, dumped


def check_samples(samples, dumped):
    for s, (ids, labels) in dumped.items():
        assert s < len(samples), f"sft trained sample {s}; the peer made {len(samples)} samples"
        mine_ids, mine_labels = samples[s]
        assert ids == mine_ids, f"sample {s}: sft's token ids differ from the HF tokenizer's"
        assert labels[1:] == mine_labels[1:], f"sample {s}: sft's loss mask differs"


def train(side, model_dir, samples, epochs, steps, max_steps, batch, accum, lr, bf16, threads, eps=1e-8,
          max_grad_norm=1.0, weight_decay=0.0, padding_free=True, out_dir="/tmp/hf_peer"):
    import torch
    from transformers import (AutoModelForCausalLM, AutoTokenizer, DataCollatorForSeq2Seq, Trainer, TrainerCallback,
                              TrainingArguments)
    torch.set_num_threads(threads)
    tok = AutoTokenizer.from_pretrained(model_dir)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    rows = [{"idx": i, "input_ids": ids, "labels": labels} for i, (ids, labels) in enumerate(samples)]

    class SftOrder(torch.utils.data.Sampler):
        def __init__(self):
            self.epoch = 0

        def set_epoch(self, epoch):
            self.epoch = epoch

        def __len__(self):
            return len(rows)

        def __iter__(self):
            order = list(epochs.get(self.epoch, []))
            seen = set(order)
            order += [i for i in range(len(rows)) if i not in seen]  # past the steps sft trained: never reached
            self.epoch += 1
            return iter(order)

    record = {"micro": []}

    def recording(collate):
        def wrapped(features):
            idx = [f["idx"] for f in features]
            batch = collate([{k: v for k, v in f.items() if k != "idx"} for f in features])
            record["micro"].append((idx, int(batch["input_ids"].numel()), sum(len(samples[i][0]) for i in idx)))
            return batch
        return wrapped

    class Clock(TrainerCallback):
        def __init__(self):
            self.steps, self.begin = [], None

        def on_step_begin(self, args, state, control, **kw):
            self.begin = time.perf_counter()

        def on_step_end(self, args, state, control, **kw):
            self.steps.append(time.perf_counter() - self.begin)

        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                record.setdefault("log", []).append({"step": state.global_step, "loss": logs["loss"],
                                                     "grad_norm": logs.get("grad_norm")})

    common = dict(output_dir=out_dir, per_device_train_batch_size=batch, gradient_accumulation_steps=accum,
                  learning_rate=lr, lr_scheduler_type="linear", warmup_steps=0, adam_epsilon=eps,
                  weight_decay=weight_decay, max_grad_norm=max_grad_norm, max_steps=max_steps, logging_steps=1,
                  save_strategy="no", report_to=[], bf16=bf16, use_cpu=True, optim="adamw_torch",
                  remove_unused_columns=False, dataloader_drop_last=False, disable_tqdm=True, seed=0)
    clock = Clock()
    if side == "hf":
        class OrderedTrainer(Trainer):
            def _get_train_sampler(self, *a, **k):
                return SftOrder()

        trainer = OrderedTrainer(model=model, args=TrainingArguments(**common), train_dataset=rows,
                                 data_collator=DataCollatorForSeq2Seq(tok, padding=True, label_pad_token_id=-100),
                                 callbacks=[clock])
    else:
        from datasets import Dataset
        from trl import SFTConfig, SFTTrainer

        class OrderedSFTTrainer(SFTTrainer):
            def _get_train_sampler(self, *a, **k):
                return SftOrder()

        cfg = SFTConfig(**common, padding_free=padding_free, max_length=None,
                        dataset_kwargs={"skip_prepare_dataset": True})
        trainer = OrderedSFTTrainer(model=model, args=cfg, train_dataset=Dataset.from_list(rows),
                                    processing_class=tok, callbacks=[clock])
    trainer.data_collator = recording(trainer.data_collator)
    t0 = time.perf_counter()
    trainer.train()
    wall = time.perf_counter() - t0
    # The same samples in every optimizer step as sft (the micro-batch grouping inside a step may differ).
    at = 0
    per_step = []
    for step in range(1, max_steps + 1):
        want = sorted(steps[step])
        got, positions, real = [], 0, 0
        while len(got) < len(want):
            idx, pos, n = record["micro"][at]
            got += idx
            positions += pos
            real += n
            at += 1
        assert sorted(got) == want, f"{side} step {step}: other samples than sft's"
        per_step.append((positions, real))
    log = record["log"]
    assert [r["step"] for r in log] == list(range(1, max_steps + 1))
    return {"side": side, "steps": [dict(r, positions=p, tokens=n, seconds=s)
                                    for r, (p, n), s in zip(log, per_step, clock.steps)],
            "wall_s": wall, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--side", choices=["hf", "trl"], required=True)
    ap.add_argument("--model", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--dump", required=True, help="sft train --debug_dump_batches file of the run to follow")
    ap.add_argument("--max_len", type=int, default=1024)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--accum", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--bf16", action="store_true")
    ap.add_argument("--padding_free", type=int, default=1, help="TRL only (HF Trainer always pads)")
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--out_dir", default="/tmp/hf_peer")
    a = ap.parse_args()
    from transformers import AutoTokenizer
    samples = alpaca_samples(a.dataset, AutoTokenizer.from_pretrained(a.model), a.max_len)
    epochs, steps, dumped = read_dump(a.dump)
    check_samples(samples, dumped)
    res = train(a.side, a.model, samples, epochs, steps, a.steps, a.batch, a.accum, a.lr, a.bf16, a.threads,
                padding_free=bool(a.padding_free), out_dir=a.out_dir)
    print(json.dumps(res))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
