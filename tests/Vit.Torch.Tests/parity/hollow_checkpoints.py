#!/usr/bin/env python3
"""torch.save files whose tensors claim far more than the file holds, for CheckpointTests.cs:

    python3 hollow_checkpoints.py OUTDIR

OUTDIR/expanded.pth   a timm-named ViT-L/16 (304M parameters) in which every tensor is one float expanded to its
                      shape (stride 0): a file of a few KB
OUTDIR/shared.pth     the same names, every tensor a view of one shared storage of 4.2M floats (16.8 MB)
"""
import os
import sys

try:
    import torch
except ImportError as error:
    sys.stderr.write(f"{sys.executable} cannot import torch ({error}); install Debian's python3-torch\n")
    sys.exit(3)


def vit_l_shapes(depth=24, d=1024, m=4096, classes=1000, patch=16, tokens=197):
    shapes = {"cls_token": (1, 1, d), "pos_embed": (1, tokens, d), "patch_embed.proj.weight": (d, 3, patch, patch), "patch_embed.proj.bias": (d,)}
    for i in range(depth):
        b = f"blocks.{i}."
        shapes.update({b + "norm1.weight": (d,), b + "norm1.bias": (d,), b + "attn.qkv.weight": (3 * d, d), b + "attn.qkv.bias": (3 * d,),
                       b + "attn.proj.weight": (d, d), b + "attn.proj.bias": (d,), b + "norm2.weight": (d,), b + "norm2.bias": (d,),
                       b + "mlp.fc1.weight": (m, d), b + "mlp.fc1.bias": (m,), b + "mlp.fc2.weight": (d, m), b + "mlp.fc2.bias": (d,)})
    shapes.update({"norm.weight": (d,), "norm.bias": (d,), "head.weight": (classes, d), "head.bias": (classes,)})
    return shapes


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    out = argv[1]
    os.makedirs(out, exist_ok=True)
    shapes = vit_l_shapes()
    one = torch.zeros(1)
    torch.save({k: one.expand(*s) for k, s in shapes.items()}, os.path.join(out, "expanded.pth"))
    big = torch.zeros(4_200_000)
    torch.save({k: big[:torch.Size(s).numel()].view(*s) for k, s in shapes.items()}, os.path.join(out, "shared.pth"))


if __name__ == "__main__":
    main(sys.argv)
