"""PyTorch eager peer of `Vit.Benchmarks predict`: ViT-Ti/16 at 224 forward only (no_grad, eval): single-image
latency p50/p99 and batch-64 images/s. Tensor input only (no JPEG decoding), so it is a lower bound for serving."""
import sys
import time

import torch
import torch.nn as nn
import torch.nn.functional as F

torch.set_num_threads(int(sys.argv[1]) if len(sys.argv) > 1 else 2)
D, depth, H, M, P = 192, 12, 3, 768, 16


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(D, eps=1e-6), nn.LayerNorm(D, eps=1e-6)
        self.qkv, self.proj, self.fc1, self.fc2 = nn.Linear(D, 3 * D), nn.Linear(D, D), nn.Linear(D, M), nn.Linear(M, D)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, H, d // H).permute(2, 0, 3, 1, 4)
        a = ((q * (d // H) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        x = x + self.proj((a @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self):
        super().__init__()
        self.patch = nn.Conv2d(3, D, P, P)
        self.cls = nn.Parameter(torch.zeros(1, 1, D))
        self.pos = nn.Parameter(torch.zeros(1, 197, D))
        self.blocks = nn.ModuleList(Block() for _ in range(depth))
        self.norm, self.head = nn.LayerNorm(D, eps=1e-6), nn.Linear(D, 3)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x)[:, 0]).softmax(-1)


m = ViT().eval()
with torch.no_grad():
    x1 = torch.randn(1, 3, 224, 224)
    for _ in range(10):
        m(x1)
    t = []
    for _ in range(100):
        s = time.perf_counter()
        m(x1)
        t.append((time.perf_counter() - s) * 1000)
    t.sort()
    xb = torch.randn(64, 3, 224, 224)
    m(xb)
    s = time.perf_counter()
    for _ in range(2):
        m(xb)
    ips = 128 / (time.perf_counter() - s)
print(f"pytorch-eager forward ViT-Ti/16@224 latency p50 {t[49]:.1f} ms p99 {t[98]:.1f} ms; batch-64 images/s {ips:.1f}")
