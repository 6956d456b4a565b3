"""PyTorch eager peer of `Vit.Benchmarks score`: the ViT of vit_model.py in eval mode, forward + softmax under
torch.no_grad() (what a PyTorch user writes), float32 or bfloat16 autocast, batch scoring of ready tensors.
Prints images/s."""
import time

import torch

from vit_model import arguments, model as build

a = arguments(__doc__, {"batch": 64, "warmup": 2, "runs": 4})
model = build(a).eval()
x = torch.randn(a.batch, a.channels, a.image, a.image)
with torch.no_grad(), torch.cpu.amp.autocast(enabled=a.precision == "bfloat16", dtype=torch.bfloat16):
    for i in range(a.warmup + a.runs):
        if i == a.warmup:
            start = time.perf_counter()
        model(x).float().softmax(-1).numpy()
elapsed = time.perf_counter() - start
print(f"pytorch-eager score images/s {a.batch * a.runs / elapsed:.1f} (threads {a.threads}, batch {a.batch}, runs {a.runs}, {a.precision})")
