"""Multiply-add work of the ViT of vit_model.py, counted from its sizes (2 FLOPs per multiply-add, matrix products
only: patch embedding, qkv, attention scores and values, projection, MLP, head). Prints forward FLOPs per image;
a training step costs three times that (forward, and the two products of each backward)."""
from vit_model import arguments

a = arguments(__doc__, {})
t = (a.image // a.patch) ** 2 + 1
embed = (t - 1) * a.channels * a.patch * a.patch * a.dim
block = t * a.dim * 3 * a.dim + 2 * t * t * a.dim + t * a.dim * a.dim + 2 * t * a.dim * a.mlp
print(2 * (embed + a.depth * block + a.dim * a.classes))
