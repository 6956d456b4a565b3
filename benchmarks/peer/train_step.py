"""PyTorch eager peer of `Vit.Benchmarks train-step`: same ViT, same step (forward, cross-entropy with label
smoothing 0.1, backward, clip_grad_norm_ 1.0, AdamW), same sizes, random data, float32 or bfloat16 autocast.
Prints images/s."""
import time

import torch
import torch.nn.functional as F

from vit_model import arguments, model as build

a = arguments(__doc__, {"batch": 64, "warmup": 3, "steps": 10})
model = build(a)
decay = [p for n, p in model.named_parameters() if p.dim() > 1 and n != "pos"]
no_decay = [p for n, p in model.named_parameters() if not (p.dim() > 1 and n != "pos")]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-3)
x = torch.randn(a.batch, a.channels, a.image, a.image)
y = torch.arange(a.batch) % a.classes
for s in range(a.warmup + a.steps):
    if s == a.warmup:
        start = time.perf_counter()
    with torch.cpu.amp.autocast(enabled=a.precision == "bfloat16", dtype=torch.bfloat16):
        loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    loss.item()
elapsed = time.perf_counter() - start
print(f"pytorch-eager train-step images/s {a.batch * a.steps / elapsed:.1f} (threads {a.threads}/{a.blas_threads}, batch {a.batch}, steps {a.steps}, {a.precision})")
