"""The ViT of the PyTorch peers (train_step.py, score.py): timm's layout (pre-norm blocks, fused qkv, class token,
learned position embedding, LayerNorm eps 1e-6, exact GELU), the same model Vit.Benchmarks builds."""
import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, dim, heads, mlp):
        super().__init__()
        self.heads = heads
        self.norm1, self.norm2 = nn.LayerNorm(dim, eps=1e-6), nn.LayerNorm(dim, eps=1e-6)
        self.qkv, self.proj = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim)
        self.fc1, self.fc2 = nn.Linear(dim, mlp), nn.Linear(mlp, dim)

    def forward(self, x):
        b, n, d = x.shape
        q, k, v = self.qkv(self.norm1(x)).reshape(b, n, 3, self.heads, d // self.heads).permute(2, 0, 3, 1, 4)
        attn = ((q * (d // self.heads) ** -0.5) @ k.transpose(-2, -1)).softmax(-1)
        x = x + self.proj((attn @ v).transpose(1, 2).reshape(b, n, d))
        return x + self.fc2(F.gelu(self.fc1(self.norm2(x))))


class ViT(nn.Module):
    def __init__(self, image, channels, patch, dim, depth, heads, mlp, classes):
        super().__init__()
        n = (image // patch) ** 2
        self.patch = nn.Conv2d(channels, dim, patch, patch)
        self.cls = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos = nn.Parameter(torch.randn(1, n + 1, dim) * 0.02)
        self.blocks = nn.ModuleList(Block(dim, heads, mlp) for _ in range(depth))
        self.norm, self.head = nn.LayerNorm(dim, eps=1e-6), nn.Linear(dim, classes)

    def forward(self, x):
        x = self.patch(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], -1, -1), x], 1) + self.pos
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.norm(x)[:, 0])


def arguments(description, defaults):
    """Parses the sizes shared by the peers plus `defaults` (name -> int), and --precision."""
    import argparse
    p = argparse.ArgumentParser(description=description)
    for k, d in [("image", 224), ("channels", 3), ("patch", 16), ("dim", 192), ("depth", 12), ("heads", 3), ("mlp", 768),
                 ("classes", 1000), ("threads", 2), ("blas-threads", 1)] + list(defaults.items()):
        p.add_argument("--" + k, type=int, default=d)
    p.add_argument("--precision", choices=["float32", "bfloat16"], default="float32")  # bfloat16: torch.cpu.amp.autocast
    a = p.parse_args()
    torch.set_num_threads(a.threads)  # OpenBLAS threads come from OPENBLAS_NUM_THREADS, set by eng/bench.sh
    return a


def model(a):
    torch.manual_seed(0)
    return ViT(a.image, a.channels, a.patch, a.dim, a.depth, a.heads, a.mlp, a.classes)


def trainer(model, precision):
    """The training step both training peers time: AdamW (decay 0.05 on matrices but the position embedding), forward
    and cross-entropy with label smoothing 0.1 under bfloat16 autocast when asked, backward, clipping to norm 1.
    Returns step(x, y) -> loss."""
    named = [(n.removeprefix("module."), p) for n, p in model.named_parameters()]  # DistributedDataParallel's names too
    decay = [p for n, p in named if p.dim() > 1 and n != "pos"]
    no_decay = [p for n, p in named if not (p.dim() > 1 and n != "pos")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.05}, {"params": no_decay, "weight_decay": 0.0}], lr=1e-3)

    def step(x, y):
        with torch.cpu.amp.autocast(enabled=precision == "bfloat16", dtype=torch.bfloat16):
            loss = F.cross_entropy(model(x), y, label_smoothing=0.1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    return step
