#!/usr/bin/env python3
"""Logits of a Hugging Face ViT folder, computed in plain PyTorch from transformers' names (not with our maps), for
HuggingFaceExportTests.cs: what transformers' ViTForImageClassification does, written out from its modelling code's
structure (embeddings, pre-norm layers with separate query/key/value, final layernorm, classifier on [CLS]).

    python3 hf_reference.py FOLDER INPUTS OUTPUT

FOLDER   config.json + model.safetensors
INPUTS   safetensors with "pixel_values" (B, C, H, W), already normalised
OUTPUT   safetensors with "logits" (B, classes), float32
"""
import json
import math
import os
import sys

try:
    import torch
    import torch.nn.functional as F
except ImportError as error:
    sys.stderr.write(f"{sys.executable} cannot import torch ({error}); install Debian's python3-torch\n")
    sys.exit(3)

from safetensors_io import read_safetensors, write_safetensors


def main(argv):
    if len(argv) != 4:
        sys.exit(__doc__)
    with open(os.path.join(argv[1], "config.json")) as f:
        config = json.load(f)
    w, meta = read_safetensors(os.path.join(argv[1], "model.safetensors"))
    assert meta.get("format") == "pt", meta
    x = read_safetensors(argv[2])[0]["pixel_values"]
    d, heads, eps = config["hidden_size"], config["num_attention_heads"], config["layer_norm_eps"]
    patch = config["patch_size"]
    e = "vit.embeddings."
    h = F.conv2d(x, w[e + "patch_embeddings.projection.weight"], w[e + "patch_embeddings.projection.bias"], stride=patch)
    h = h.flatten(2).transpose(1, 2)                                              # (B, N, D)
    h = torch.cat([w[e + "cls_token"].expand(h.shape[0], -1, -1), h], dim=1) + w[e + "position_embeddings"]
    b, n, _ = h.shape
    for i in range(config["num_hidden_layers"]):
        l = f"vit.encoder.layer.{i}."
        y = F.layer_norm(h, (d,), w[l + "layernorm_before.weight"], w[l + "layernorm_before.bias"], eps)

        def project(name):
            bias = w[l + f"attention.attention.{name}.bias"] if config.get("qkv_bias", True) else None
            t = F.linear(y, w[l + f"attention.attention.{name}.weight"], bias)
            return t.view(b, n, heads, d // heads).permute(0, 2, 1, 3)           # (B, H, N, Dh)

        q, k, v = project("query"), project("key"), project("value")
        scores = torch.matmul(q, k.transpose(-1, -2)) / math.sqrt(d // heads)
        context = torch.matmul(scores.softmax(-1), v).permute(0, 2, 1, 3).reshape(b, n, d)
        h = h + F.linear(context, w[l + "attention.output.dense.weight"], w[l + "attention.output.dense.bias"])
        y = F.layer_norm(h, (d,), w[l + "layernorm_after.weight"], w[l + "layernorm_after.bias"], eps)
        y = F.gelu(F.linear(y, w[l + "intermediate.dense.weight"], w[l + "intermediate.dense.bias"]))
        h = h + F.linear(y, w[l + "output.dense.weight"], w[l + "output.dense.bias"])
    h = F.layer_norm(h, (d,), w["vit.layernorm.weight"], w["vit.layernorm.bias"], eps)
    logits = F.linear(h[:, 0], w["classifier.weight"], w["classifier.bias"])
    assert logits.shape[1] == len(config["id2label"]), (logits.shape, len(config["id2label"]))
    write_safetensors(argv[3], {"logits": logits})


if __name__ == "__main__":
    main(sys.argv)
