"""PyTorch's side of the gemm peak (bench/gemm_peak.cpp is sft's): a square matmul (default 2048^3) on the CPU in
fp32 and bf16 (bf16 inputs, as torch.autocast runs a linear layer), median of --reps after a warm-up. Prints JSON
lines with the same fields as gemm_peak. usage: python torch_gemm.py [--size 2048] [--reps 5] [--threads N]"""
import argparse, json, os, time
import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    bf16_native = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    for name, dt in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        # without bf16 units PyTorch's bf16 mm is an emulation (~0.1 GFLOP/s here): 2048^3 would take minutes
        n = a.size if (name == "fp32" or bf16_native) else min(a.size, 512)
        x = torch.randn(n, n).to(dt)
        y = torch.randn(n, n).to(dt)
        t0 = time.perf_counter(); torch.mm(x, y); first = time.perf_counter() - t0  # warm-up
        times = [first]
        if first < 5.0:  # a slow (emulated) path: one measurement is enough
            times = []
            for _ in range(a.reps):
                t = time.perf_counter(); torch.mm(x, y); times.append(time.perf_counter() - t)
        dt_s = sorted(times)[len(times) // 2]
        print(json.dumps({"peer": "pytorch-gemm", "torch": torch.__version__, "dtype": name, "size": n,
                          "threads": a.threads, "gflops": round(2 * n ** 3 / dt_s / 1e9, 1),
                          "mkldnn_bf16_supported": bf16_native}), flush=True)


if __name__ == "__main__":
    main()
