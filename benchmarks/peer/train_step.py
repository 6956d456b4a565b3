"""PyTorch eager peer of `Vit.Benchmarks train-step`: same ViT, same step (forward, cross-entropy with label
smoothing 0.1, backward, clip_grad_norm_ 1.0, AdamW), same sizes, random data, float32 or bfloat16 autocast.
Prints images/s."""
import time

import torch

from vit_model import arguments, model as build, trainer

a = arguments(__doc__, {"batch": 64, "warmup": 3, "steps": 10})
model = build(a)
step = trainer(model, a.precision)
x = torch.randn(a.batch, a.channels, a.image, a.image)
y = torch.arange(a.batch) % a.classes
for s in range(a.warmup + a.steps):
    if s == a.warmup:
        start = time.perf_counter()
    step(x, y)
elapsed = time.perf_counter() - start
print(f"pytorch-eager train-step images/s {a.batch * a.steps / elapsed:.1f} (threads {a.threads}/{a.blas_threads}, batch {a.batch}, steps {a.steps}, {a.precision})")
