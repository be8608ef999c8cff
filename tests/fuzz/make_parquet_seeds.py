"""Writes the seed corpus of fuzz_parquet (tests/fuzz/seeds/parquet): small Parquet and Arrow IPC files of every row
format, with several codecs, row groups / record batches, dictionary encoding, nulls, a wrong column type and a
truncated file; and eval task splits in the hub's schemas (struct / list / int columns, a binary column) for
parquet_rows_as_json, also copied to fuzz_eval_tasks' corpus (tests/fuzz/seeds/eval_tasks). Deterministic; rerun with
the oracle venv's python (pyarrow pinned in tests/requirements.txt)."""
import os

import pyarrow as pa
import pyarrow.ipc as ipc
import pyarrow.parquet as pq

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "seeds", "parquet")
os.makedirs(out, exist_ok=True)
msg = lambda role, content: {"role": role, "content": content}  # noqa: E731
tables = {
    "text": pa.table({"text": ["a", "", "é\nb", None, "x" * 40]}),
    "prompt_completion": pa.table({"prompt": ["p1", "p2", "p3"], "completion": ["c1", "", None], "id": [1, 2, 3]}),
    "messages": pa.table({"messages": [[msg("system", "S"), msg("user", "U"), msg("assistant", "A")],
                                       [msg("user", "u"), msg("assistant", "")], None]}),
    "conversational_prompt_completion": pa.table({"prompt": [[msg("user", "q")]], "completion": [[msg("assistant", "r")]]}),
    "alpaca": pa.table({"instruction": ["i1", "i2"], "input": [None, "in"], "output": ["o1", "o2"]}),
    "wrong_type": pa.table({"prompt": ["p"], "completion": [5]}),
    "mixed": pa.table({"prompt": ["p", None], "completion": ["c", None], "text": [None, "t"]}),
}
for name, t in tables.items():
    pq.write_table(t, os.path.join(out, name + ".parquet"), row_group_size=2, compression="none")
    with ipc.new_stream(os.path.join(out, name + ".stream.arrow"), t.schema) as w:
        w.write_table(t, max_chunksize=2)
for codec in ("snappy", "zstd", "gzip"):
    pq.write_table(tables["messages"], os.path.join(out, "messages." + codec + ".parquet"), compression=codec)
pq.write_table(tables["text"], os.path.join(out, "text.dict.parquet"), use_dictionary=True, compression="none")
with ipc.new_file(os.path.join(out, "alpaca.file.arrow"), tables["alpaca"].schema) as w:
    w.write_table(tables["alpaca"])
dict_table = pa.table({"text": pa.array(["x", "y", "x"]).dictionary_encode()})
with ipc.new_stream(os.path.join(out, "text.dict.stream.arrow"), dict_table.schema) as w:
    w.write_table(dict_table)
whole = open(os.path.join(out, "prompt_completion.parquet"), "rb").read()
open(os.path.join(out, "truncated.parquet"), "wb").write(whole[: len(whole) // 2] + whole[-8:])
# Eval task splits as the hub has them (data/parquet_rows.h reads every column; eval/task_data.cpp checks the fields).
targets = pa.struct([("choices", pa.list_(pa.string())), ("labels", pa.list_(pa.int32()))])
eval_tables = {
    "task_truthfulqa": pa.table({"question": ["q1", "q2"],
                                 "mc1_targets": pa.array([{"choices": ["a", "b"], "labels": [1, 0]}, None], targets),
                                 "mc2_targets": pa.array([{"choices": ["a"], "labels": [1]},
                                                          {"choices": [], "labels": []}], targets)}),
    "task_mmlu": pa.table({"question": ["q"], "subject": ["s"], "choices": [["1", "2", "3", "4"]], "answer": [2]}),
    "task_arc": pa.table({"id": ["x"], "question": ["q"], "choices": [{"text": ["a", "b"], "label": ["A", "B"]}],
                          "answerKey": ["B"]}),
    "task_piqa_binary": pa.table({"goal": ["g"], "sol1": ["a"], "sol2": ["b"], "label": pa.array([1], pa.int8()),
                                  "image": pa.array([b"\x00\xff"], pa.binary())}),
    "task_winogrande_dict": pa.table({"sentence": ["A _ b."], "option1": ["x"], "option2": ["y"],
                                      "answer": pa.array(["1"]).dictionary_encode()}),
}
eval_out = os.path.join(os.path.dirname(out), "eval_tasks")
for name, t in eval_tables.items():
    for folder in (out, eval_out):
        pq.write_table(t, os.path.join(folder, name + ".parquet"), row_group_size=1, compression="none")
print(len(os.listdir(out)), "seeds in", out)
