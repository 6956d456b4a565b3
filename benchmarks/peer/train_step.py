"""PyTorch eager peer of `Vit.Benchmarks train-step`: same ViT, same step (forward, cross-entropy with label
smoothing 0.1, backward, clip_grad_norm_ 1.0, AdamW), same sizes, random data. Prints images/s."""
import argparse
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

p = argparse.ArgumentParser()
for k, d in [("image", 224), ("channels", 3), ("patch", 16), ("dim", 192), ("depth", 12), ("heads", 3), ("mlp", 768),
             ("classes", 1000), ("batch", 64), ("threads", 2), ("blas-threads", 2), ("warmup", 3), ("steps", 10)]:
    p.add_argument("--" + k, type=int, default=d)
a = p.parse_args()
torch.set_num_threads(a.threads)  # OpenBLAS threads come from OPENBLAS_NUM_THREADS, set by eng/bench.sh


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(a.dim, eps=1e-6), nn.LayerNorm(a.dim, eps=1e-6)
        self.qkv, self.proj = nn.Linear(a.dim, 3 * a.dim), nn.Linear(a.dim, a.dim)
        self.fc1, self.fc2 = nn.Linear(a.dim, a.mlp), nn.Linear(a.mlp, a.dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, a.heads, d // a.heads).permute(2, 0, 3, 1, 4)
        attn = ((q * (d // a.heads) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self):
        super().__init__()
        n = (a.image // a.patch) ** 2
        self.patch = nn.Conv2d(a.channels, a.dim, a.patch, a.patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, a.dim))
        self.pos = nn.Parameter(torch.randn(1, n + 1, a.dim) * 0.02)
        self.blocks = nn.ModuleList(Block() for _ in range(a.depth))
        self.norm, self.head = nn.LayerNorm(a.dim, eps=1e-6), nn.Linear(a.dim, a.classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x)[:, 0])


torch.manual_seed(0)
model = ViT()
decay = [p for n, p in model.named_parameters() if p.dim() > 1 and n != "pos"]
no_decay = [p for n, p in model.named_parameters() if not (p.dim() > 1 and n != "pos")]
opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-3)
x = torch.randn(a.batch, a.channels, a.image, a.image)
y = torch.arange(a.batch) % a.classes
for s in range(a.warmup + a.steps):
    if s == a.warmup:
        start = time.perf_counter()
    loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
    opt.step()
    loss.item()
elapsed = time.perf_counter() - start
print(f"pytorch-eager train-step images/s {a.batch * a.steps / elapsed:.1f} (threads {a.threads}/{a.blas_threads}, batch {a.batch}, steps {a.steps})")
