"""PyTorch eager peer of `Vit.Benchmarks score` and `predict`: the ViT of vit_model.py in eval mode, forward + softmax
under torch.no_grad() (what a PyTorch user writes), float32 or bfloat16 autocast, on ready tensors (no decoding).
Prints batch-scoring images/s, and with --latency N the p50/p99 of N single-image calls."""
import time

import torch

from vit_model import arguments, model as build

a = arguments(__doc__, {"batch": 64, "warmup": 2, "runs": 4, "latency": 0})
model = build(a).eval()


def score(x):
    return model(x).float().softmax(-1).numpy()


with torch.no_grad(), torch.cpu.amp.autocast(enabled=a.precision == "bfloat16", dtype=torch.bfloat16):
    x = torch.randn(a.batch, a.channels, a.image, a.image)
    for i in range(a.warmup + a.runs):
        if i == a.warmup:
            start = time.perf_counter()
        score(x)
    elapsed = time.perf_counter() - start
    line = f"pytorch-eager score images/s {a.batch * a.runs / elapsed:.1f} (threads {a.threads}, batch {a.batch}, runs {a.runs}, {a.precision})"
    if a.latency > 0:
        one = torch.randn(1, a.channels, a.image, a.image)
        for _ in range(10):
            score(one)
        times = []
        for _ in range(a.latency):
            s = time.perf_counter()
            score(one)
            times.append((time.perf_counter() - s) * 1000)
        times.sort()
        pick = lambda q: times[min(len(times) - 1, max(0, -(-int(q * len(times) * 1000) // 1000) - 1))]
        line += f"; single-image latency p50 {pick(0.5):.1f} ms p99 {pick(0.99):.1f} ms ({a.latency} calls)"
print(line)
