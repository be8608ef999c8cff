"""Data parallel across "hosts" on one machine (network namespaces joined by veth links: tests/parallel/netns_cluster.py),
measured against the step-time model of docs/arch/parallel.md:

    T_step(k) = T_compute + T_allreduce(k),   T_allreduce(k) = 2 (k-1)/k * S / B_bus + 2 (k-1) a

1. all-reduce bandwidth between k hosts over the links (bench/allreduce_bench: bus bandwidth B_bus per message size),
   raw veth and shaped like a 10 GbE network (tc netem: rate 10 Gbit/s, 50 us delay; tbf, rate only, where the kernel
   lacks netem);
2. `sft train` on the benchmark model (bench/make_bench_model.py, S = 4 x parameters bytes of fp32 gradients) with 1
   process and with k hosts x 1 rank at the same global batch: tokens/s, rank 0's gradient-exchange time per
   optimizer step (sft's own count) and the model's prediction from step 1's measured B_bus, on the same links.

Root only (namespaces). Needs the oracle venv's python (torch/transformers make the model).
usage: sudo $VENV/bin/python bench/multihost_bench.py [--build build] [--hosts 2] [--layers 4] [--steps 4]
       [--seq 256] [--per_device 2] [--accum 2] [--max_mib 256] [--shaped]
Prints one line per measurement, then the comparison. Everything is removed at exit (namespaces included).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "parallel"))
from netns_cluster import Cluster  # noqa: E402


def allreduce(cluster, build, max_mib):
    """{bytes: (ms, busbw GB/s)} from allreduce_bench run on every host (1 rank each)."""
    argv = cluster.mpirun_argv(1, [os.path.join(build, "bench", "allreduce_bench"), "--max_mib", str(max_mib),
                                   "--iters", "3"])
    out = subprocess.run(argv, capture_output=True, text=True, env=cluster.env(), check=True, timeout=1800).stdout
    table = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 4 and f[0].isdigit():
            table[int(f[0])] = (float(f[1]), float(f[3]))
    return table


def train(cluster, build, model, data, out, hosts, a):
    """(tokens/s after the first step, exchange ms per step or None, ms per step, losses) of one `sft train` run:
    hosts None = one process with the whole global micro-batch (per-device x the cluster's hosts)."""
    args = [os.path.join(build, "src", "cli", "sft"), "train", "--model_name_or_path", model, "--dataset_path", data,
            "--output_dir", out, "--per_device_train_batch_size", str(a.per_device * (a.hosts if hosts is None else 1)),
            "--gradient_accumulation_steps", str(a.accum), "--max_steps", str(a.steps), "--logging_steps", "1",
            "--save_strategy", "no", "--max_seq_length", str(a.seq), "--learning_rate", "1e-4", "--threads", "1",
            "--seed", "1"]
    if hosts is None:
        res = subprocess.run(args, capture_output=True, text=True, env=cluster.env(), timeout=7200)
    else:
        res = subprocess.run(cluster.mpirun_argv(1, args, hosts=hosts), capture_output=True, text=True,
                             env=cluster.env(), timeout=7200)
    if res.returncode != 0:
        raise SystemExit(f"sft train failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    rows = [json.loads(l) for l in open(os.path.join(out, "trainer_log.jsonl")) if l.strip()][1:]
    tps = sum(r["tokens_per_second"] for r in rows) / max(1, len(rows))
    m = re.search(r"\(([\d.]+) ms per optimizer step\).*gradient exchange ([\d.]+) ms \(([\d.]+)% of the step\)",
                  res.stdout)
    exchange = float(m.group(2)) if m else None
    step_ms = float(m.group(2)) / (float(m.group(3)) / 100) if m and float(m.group(3)) > 0 else None
    return tps, exchange, step_ms, [round(r["loss"], 4) for r in rows]


def params_of(model):
    from safetensors.numpy import load_file
    return sum(int(t.size) for t in load_file(os.path.join(model, "model.safetensors")).values())


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--hosts", type=int, default=2)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--per_device", type=int, default=2)
    ap.add_argument("--accum", type=int, default=2)
    ap.add_argument("--max_mib", type=int, default=256)
    ap.add_argument("--shaped", action="store_true", help="also measure with the links shaped like 10 GbE")
    a = ap.parse_args()
    why = Cluster.available()
    if why:
        raise SystemExit(f"multihost_bench: {why}")
    cpu = subprocess.run("grep -o 'avx512_bf16\\|amx_bf16\\|avx2' /proc/cpuinfo | sort -u | tr '\\n' ' '", shell=True,
                         capture_output=True, text=True).stdout.strip()
    print(f"machine: {os.cpu_count()} cores, ISA {cpu or 'baseline'}, load average {os.getloadavg()[0]:.1f}")
    work = tempfile.mkdtemp(prefix="sft-multihost-bench-")
    try:
        with Cluster(a.hosts) as cluster:
            hosts = list(range(a.hosts))
            print(f"cluster: {a.hosts} hosts (network namespaces) joined by veth links through a bridge")
            raw = allreduce(cluster, a.build, a.max_mib)
            for b, (ms, bw) in sorted(raw.items()):
                print(f"all-reduce over veth, {a.hosts} hosts: {b:>11} bytes  {ms:9.3f} ms  busbw {bw:6.2f} GB/s")
            model = os.path.join(work, "model")
            subprocess.run([sys.executable, os.path.join(ROOT, "bench", "make_bench_model.py"), model, "--layers",
                            str(a.layers)], check=True, capture_output=True)
            P = params_of(model)
            S = 4 * P
            data = "/work/shared/data/alpaca/alpaca_en_demo.json"
            if not os.path.exists(data):
                data = os.path.join(ROOT, "data", "alpaca_demo.json")
            one = train(cluster, a.build, model, data, os.path.join(work, "one"), None, a)
            many = train(cluster, a.build, model, data, os.path.join(work, "many"), hosts, a)
            print(f"sft train, bench model {a.layers} layers (P = {P / 1e6:.1f} M, S = {S / 2**20:.0f} MiB of fp32 "
                  f"gradients), seq {a.seq}, global micro-batch {a.per_device * a.hosts} rows, accumulation {a.accum}")
            print(f"  1 process x 1 thread:        {one[0]:8.1f} tokens/s")
            print(f"  {a.hosts} hosts x 1 rank x 1 thread: {many[0]:8.1f} tokens/s ({many[0] / one[0]:.2f}x), "
                  f"step {many[2] or 0:.0f} ms, gradient exchange {many[1] or 0:.0f} ms a step (rank 0)")
            big = max(b for b in raw if b <= S) if any(b <= S for b in raw) else max(raw)
            bus = raw[big][1]
            k = a.hosts
            predicted = 2 * (k - 1) / k * S / (bus * 1e9) * 1e3 if bus > 0 else float("inf")
            print(f"  model: T_allreduce = 2 (k-1)/k S / B_bus = {predicted:.0f} ms with B_bus = {bus:.2f} GB/s "
                  f"(allreduce_bench at {big} bytes); measured exchange {many[1] or 0:.0f} ms "
                  f"({(many[1] or 0) / predicted if predicted else 0:.2f}x the model)")
            same = all(abs(x - y) <= 1e-3 * max(1.0, abs(x)) for x, y in zip(one[3], many[3]))
            print("  losses of 1 process and the hosts " + ("agree" if same else f"DIFFER: {one[3]} vs {many[3]}"))
            if a.shaped:
                how = cluster.shape_links("10gbit", "50us")
                shaped = allreduce(cluster, a.build, a.max_mib)
                for b, (ms, bw) in sorted(shaped.items()):
                    print(f"all-reduce, links shaped ({how}): {b:>11} bytes  {ms:9.3f} ms  busbw {bw:6.2f} GB/s")
                many_s = train(cluster, a.build, model, data, os.path.join(work, "shaped"), hosts, a)
                bus_s = shaped[big][1]
                pred_s = 2 * (k - 1) / k * S / (bus_s * 1e9) * 1e3 if bus_s > 0 else float("inf")
                print(f"  shaped links: {many_s[0]:8.1f} tokens/s ({many_s[0] / one[0]:.2f}x one process), gradient "
                      f"exchange {many_s[1] or 0:.0f} ms a step; model {pred_s:.0f} ms at B_bus {bus_s:.2f} GB/s")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
