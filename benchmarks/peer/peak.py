"""Peak matrix-multiply throughput of this machine through PyTorch's CPU kernels, the yardstick of eng/bench.sh's
"share of peak": float32 (torch.mm: the BLAS sgemm) and bfloat16 (torch.mm on bfloat16 tensors: oneDNN's bf16
kernels, what autocast runs). Square n x n products, best of several runs. Prints GFLOP/s per dtype."""
import argparse
import time

import torch

p = argparse.ArgumentParser(description=__doc__)
p.add_argument("--threads", type=int, default=2)
p.add_argument("--n", type=int, default=2048)
a = p.parse_args()
torch.set_num_threads(a.threads)
out = []
for name, dtype in [("float32", torch.float32), ("bfloat16", torch.bfloat16)]:
    x, y = torch.randn(a.n, a.n).to(dtype), torch.randn(a.n, a.n).to(dtype)
    torch.mm(x, y)
    best = float("inf")
    for _ in range(5):
        s = time.perf_counter()
        torch.mm(x, y)
        best = min(best, time.perf_counter() - s)
    out.append(f"{name} {2 * a.n ** 3 / best / 1e9:.0f}")
print("peak matmul GFLOP/s " + " ".join(out) + f" (n {a.n}, threads {a.threads})")
