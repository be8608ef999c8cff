#!/usr/bin/env python3
"""Tokenizer throughput: sft (bench/tokenizer_bench.cpp) vs HF `tokenizers`, single thread, same corpus, same run.

Usage: <venv>/bin/python bench/tokenizer_bench.py [--build build] [--mb 5.3] [--passes 2] [--tokenizers qwen3,llama3]
The corpus is tests/tokenizer/make_corpus.py's parity corpus (prose, code, multilingual, synthetic edge cases).
Both sides: one cold pass (empty word caches), then the best of --passes warm passes. HF uses encode_batch_fast
(no offsets), its fastest path, with RAYON_NUM_THREADS=1 / TOKENIZERS_PARALLELISM=false so it runs on one thread.
Times are process CPU seconds on both sides (time.process_time / CLOCK_PROCESS_CPUTIME_ID): the machine is shared,
and wall time would mostly measure other jobs. Ratios > 1 mean sft is faster.
"""
import os

os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "tokenizer"))
import make_corpus  # noqa: E402
from tokenizers import Tokenizer  # noqa: E402


def materialize(name, dest):
    out = dest / name
    out.mkdir(parents=True, exist_ok=True)
    src = ROOT / "tests" / "fixtures" / "tokenizers" / name
    subprocess.run(["zstd", "-q", "-d", "-f", str(src / "tokenizer.json.zst"), "-o", str(out / "tokenizer.json")],
                   check=True)
    shutil.copy(src / "tokenizer_config.json", out)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.environ.get("SFT_BUILD_DIR", str(ROOT / "build")))
    ap.add_argument("--mb", type=float, default=5.3, help="corpus size in MB")
    ap.add_argument("--passes", type=int, default=2, help="warm passes (best is reported)")
    ap.add_argument("--tokenizers", default="qwen3,llama3")
    args = ap.parse_args()
    exe = Path(args.build) / "bench" / "tokenizer_bench"
    if not exe.exists():
        sys.exit(f"{exe} not built: cmake --build {args.build} --target tokenizer_bench")

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        dirs = {n: materialize(n, tmp) for n in args.tokenizers.split(",")}
        first = Tokenizer.from_file(str(next(iter(dirs.values())) / "tokenizer.json"))
        docs = make_corpus.build_corpus(make_corpus.vocab_pieces_from(first), target_bytes=int(args.mb * 1e6))
        # Keep roughly --mb MB (the generator's file-based part alone is ~4 MB).
        kept, size = [], 0
        for d in docs:
            if size >= args.mb * 1e6:
                break
            kept.append(d)
            size += len(d.encode("utf-8"))
        corpus = tmp / "corpus.bin"
        make_corpus.write_corpus(kept, corpus)
        print(f"corpus: {len(kept)} documents, {size / 1e6:.2f} MB; single thread; CPU time; {args.passes} warm passes")
        print(f"{'tokenizer':10} {'side':5} {'cold MB/s':>10} {'warm MB/s':>10} {'tokens':>10}")
        for name, d in dirs.items():
            hf = Tokenizer.from_file(str(d / "tokenizer.json"))
            t0 = time.process_time()
            enc = hf.encode_batch_fast(kept, add_special_tokens=False)
            hf_cold = time.process_time() - t0
            hf_tokens = sum(len(e.ids) for e in enc)
            hf_warm = 1e300
            for _ in range(args.passes):
                t0 = time.process_time()
                hf.encode_batch_fast(kept, add_special_tokens=False)
                hf_warm = min(hf_warm, time.process_time() - t0)
            out = subprocess.run([str(exe), str(d), str(corpus), str(args.passes)], capture_output=True, text=True,
                                 check=True).stdout.split()
            f = dict(zip(out[0::2], out[1::2]))
            ours_cold, ours_warm, ours_tokens = float(f["cold_s"]), float(f["warm_s"]), int(f["tokens"])
            assert ours_tokens == hf_tokens, f"{name}: token counts differ ({ours_tokens} vs {hf_tokens})"
            mb = size / 1e6
            print(f"{name:10} {'HF':5} {mb / hf_cold:10.2f} {mb / hf_warm:10.2f} {hf_tokens:10d}")
            print(f"{name:10} {'sft':5} {mb / ours_cold:10.2f} {mb / ours_warm:10.2f} {ours_tokens:10d}"
                  f"   (load {float(f['load_s']):.2f} s)")
            print(f"{name:10} ratio sft/HF: cold {hf_cold / ours_cold:.2f}x, warm {hf_warm / ours_warm:.2f}x")


if __name__ == "__main__":
    main()
