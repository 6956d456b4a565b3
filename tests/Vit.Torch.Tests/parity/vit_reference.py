#!/usr/bin/env python3
"""Reference Vision Transformer in plain PyTorch, for Vit.Torch's parity tests (ParityTests.cs).

Written independently of the C# model from the paper (Dosovitskiy et al. 2020, eq. 1-4) and timm's parameter
names: patch convolution, class token, position embedding, pre-norm blocks (LayerNorm eps 1e-6, fused qkv with
bias, exact GELU), final LayerNorm, class-token pooling, linear head.

    python3 vit_reference.py WEIGHTS INPUTS OUTPUT

WEIGHTS  safetensors written by Vit.Torch: timm names; "__metadata__" holds "heads" (the only hyper-parameter
         that the weight shapes do not tell) and optionally "layer_norm_eps" and "pooling" ("token" or "mean").
INPUTS   safetensors with "images" (B, C, H, W) and "w" (B, classes).
OUTPUT   safetensors written here. For each precision s in (f32, f64) the model runs with weights and inputs
         cast to that precision and writes, in that precision:
           logits_s           (B, classes)
           grad_pos_embed_s   d sum(logits * w) / d pos_embed
           grad_qkv0_s        d sum(logits * w) / d blocks.0.attn.qkv.weight
         and the same three for s = bf16: float32 weights and inputs under PyTorch's CPU autocast to bfloat16
         (torch.autocast("cpu", dtype=torch.bfloat16)), written as float32.

Safetensors is read and written by safetensors_io.py (json + struct only: the `safetensors` package is not a
dependency).
"""
import math
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError as error:
    # Exit code 3 tells the C# test to try another interpreter (a pyenv or venv python3 may lack torch).
    sys.stderr.write(f"{sys.executable} cannot import torch ({error}); install Debian's python3-torch\n")
    sys.exit(3)

from safetensors_io import read_safetensors, write_safetensors


def attention(x, p, prefix, heads):
    """Multi-head self-attention (B, N, D) -> (B, N, D). qkv.weight (3D, D) stacks W_q, W_k, W_v; within each,
    head h owns rows h*Dh .. (h+1)*Dh."""
    b, n, d = x.shape
    dh = d // heads
    qkv = F.linear(x, p[prefix + "qkv.weight"], p[prefix + "qkv.bias"])  # (B, N, 3D)
    q, k, v = qkv.split(d, dim=-1)                                         # 3 x (B, N, D)
    q, k, v = (t.reshape(b, n, heads, dh).transpose(1, 2) for t in (q, k, v))  # (B, H, N, Dh)
    scores = (q * (1.0 / math.sqrt(dh))) @ k.transpose(-2, -1)             # (B, H, N, N)
    out = scores.softmax(dim=-1) @ v                                       # (B, H, N, Dh)
    out = out.transpose(1, 2).reshape(b, n, d)                             # heads concatenated
    return F.linear(out, p[prefix + "proj.weight"], p[prefix + "proj.bias"])


def vit(p, images, heads, eps, pooling):
    """Logits (B, classes) of images (B, C, H, W). The class token is optional; pooling is "token" (the class
    token's state, eq. 4) or "mean" (of the patch tokens); the final LayerNorm is either "norm" on every token
    before pooling, or "fc_norm" on the pooled vector (timm's average-pool variants)."""
    w = p["patch_embed.proj.weight"]                                       # (D, C, P, P)
    d, patch = w.shape[0], w.shape[-1]
    x = F.conv2d(images, w, p["patch_embed.proj.bias"], stride=patch)      # (B, D, H/P, W/P)
    x = x.flatten(2).transpose(1, 2)                                       # (B, N, D)
    prefix = 0
    if "cls_token" in p:
        cls = p["cls_token"].expand(x.shape[0], -1, -1)                    # (B, 1, D)
        x = torch.cat([cls, x], dim=1)
        prefix = 1
    x = x + p["pos_embed"]                                                 # eq. 1
    depth = len({k.split(".")[1] for k in p if k.startswith("blocks.")})
    for i in range(depth):
        b = f"blocks.{i}."
        h = F.layer_norm(x, (d,), p[b + "norm1.weight"], p[b + "norm1.bias"], eps)
        x = x + attention(h, p, b + "attn.", heads)                        # eq. 2
        h = F.layer_norm(x, (d,), p[b + "norm2.weight"], p[b + "norm2.bias"], eps)
        h = F.gelu(F.linear(h, p[b + "mlp.fc1.weight"], p[b + "mlp.fc1.bias"]), approximate="none")
        x = x + F.linear(h, p[b + "mlp.fc2.weight"], p[b + "mlp.fc2.bias"])  # eq. 3
    if "norm.weight" in p:
        x = F.layer_norm(x, (d,), p["norm.weight"], p["norm.bias"], eps)  # eq. 4
    x = x[:, 0] if pooling == "token" else x[:, prefix:].mean(dim=1)
    if "fc_norm.weight" in p:
        x = F.layer_norm(x, (d,), p["fc_norm.weight"], p["fc_norm.bias"], eps)
    return F.linear(x, p["head.weight"], p["head.bias"])


def main(argv):
    if len(argv) != 4:
        sys.exit(__doc__)
    weights, meta = read_safetensors(argv[1])
    inputs, _ = read_safetensors(argv[2])
    heads = int(meta["heads"])
    eps = float(meta.get("layer_norm_eps", "1e-6"))
    pooling = meta.get("pooling", "token")
    out = {}
    for suffix, dtype in (("f32", torch.float32), ("f64", torch.float64)):
        wanted = ("pos_embed", "blocks.0.attn.qkv.weight")
        p = {k: v.to(dtype).detach().requires_grad_(k in wanted) for k, v in weights.items()}  # fresh leaves
        logits = vit(p, inputs["images"].to(dtype), heads, eps, pooling)
        (logits * inputs["w"].to(dtype)).sum().backward()
        out["logits_" + suffix] = logits.detach()
        out["grad_pos_embed_" + suffix] = p["pos_embed"].grad
        out["grad_qkv0_" + suffix] = p["blocks.0.attn.qkv.weight"].grad
    wanted = ("pos_embed", "blocks.0.attn.qkv.weight")
    p = {k: v.float().detach().requires_grad_(k in wanted) for k, v in weights.items()}
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits = vit(p, inputs["images"].float(), heads, eps, pooling)
    (logits.float() * inputs["w"].float()).sum().backward()
    out["logits_bf16"] = logits.detach().float()
    out["grad_pos_embed_bf16"] = p["pos_embed"].grad.float()
    out["grad_qkv0_bf16"] = p["blocks.0.attn.qkv.weight"].grad.float()
    write_safetensors(argv[3], out)


if __name__ == "__main__":
    main(sys.argv)
