#!/usr/bin/env python3
"""Published-checkpoint fixtures and their reference outputs, for PretrainedParityTests.cs.

Builds real torchvision VisionTransformer models (Debian's python3-torchvision), gives every parameter random values
of order one (so that every weight visibly shapes the output), and writes the same weights in every layout that
PretrainedVit.Load reads, converted here, independently of the C# name maps:

    python3 pretrained_reference.py OUTDIR

OUTDIR/<model>/ for model in "custom" (image 32, patch 8, 2 layers, 4 heads at hidden size 96: heads != D/64) and
"b32" (torchvision.models.vit_b_32, 88M parameters):
    tv.pth                  torch.save(model.state_dict()), torchvision names
    tv.safetensors          the same tensors as safetensors (custom only)
    timm.safetensors        timm names, no metadata (custom only)
    hf/                     Hugging Face ViTForImageClassification folder: config.json (id2label), model.safetensors,
                            preprocessor_config.json
    hf_bin/                 the same with pytorch_model.bin (torch.save of the HF-named state dict) (custom only)
    hf_sharded/             model.safetensors.index.json + two shards (custom only)
    io.safetensors          "images" (B, 3, H, W) and "logits" = torchvision's forward in eval mode (float32),
                            "logits64" the same in float64; for b32 also "pos_160", "pos_288": the position
                            embedding resampled to 5x5 and 9x9 grids by torch.nn.functional.interpolate as timm's
                            resample_abs_pos_embed calls it (bicubic, align_corners=False, antialias=True, in
                            both directions), class position kept.
"""
import json
import os
import sys

try:
    import torch
    import torch.nn.functional as F
    import torchvision
    from torchvision.models.vision_transformer import VisionTransformer
except ImportError as error:
    sys.stderr.write(f"{sys.executable} cannot import torch/torchvision ({error}); install Debian's python3-torchvision\n")
    sys.exit(3)

from safetensors_io import write_safetensors

LABELS = ["apple", "bee", "cat", "dune", "eel"]


def randomize(model):
    """Order-one random values: LayerNorm scales around 1, vectors and embeddings N(0, 0.5^2), matrices with
    unit-variance outputs."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln" in name or name.startswith("encoder.ln"):
                p.copy_(1 + 0.3 * torch.randn_like(p) if name.endswith("weight") else 0.3 * torch.randn_like(p))
            elif p.dim() == 1 or name in ("class_token", "encoder.pos_embedding"):
                p.copy_(0.5 * torch.randn_like(p))
            else:
                p.copy_(torch.randn_like(p) / (p[0].numel() ** 0.5))


def to_timm(sd, depth):
    """torchvision names -> timm names (in_proj is already timm's fused qkv: rows q, then k, then v)."""
    out = {
        "cls_token": sd["class_token"],
        "pos_embed": sd["encoder.pos_embedding"],
        "patch_embed.proj.weight": sd["conv_proj.weight"],
        "patch_embed.proj.bias": sd["conv_proj.bias"],
    }
    for i in range(depth):
        t, o = f"encoder.layers.encoder_layer_{i}.", f"blocks.{i}."
        for a, b in (("ln_1", "norm1"), ("ln_2", "norm2"), ("self_attention.out_proj", "attn.proj"),
                     ("mlp.0", "mlp.fc1"), ("mlp.3", "mlp.fc2")):
            for w in ("weight", "bias"):
                out[f"{o}{b}.{w}"] = sd[f"{t}{a}.{w}"]
        out[o + "attn.qkv.weight"] = sd[t + "self_attention.in_proj_weight"]
        out[o + "attn.qkv.bias"] = sd[t + "self_attention.in_proj_bias"]
    out["norm.weight"], out["norm.bias"] = sd["encoder.ln.weight"], sd["encoder.ln.bias"]
    out["head.weight"], out["head.bias"] = sd["heads.head.weight"], sd["heads.head.bias"]
    return out


def to_hf(sd, depth, d):
    """torchvision names -> transformers' ViTForImageClassification names (query, key, value split apart)."""
    out = {
        "vit.embeddings.cls_token": sd["class_token"],
        "vit.embeddings.position_embeddings": sd["encoder.pos_embedding"],
        "vit.embeddings.patch_embeddings.projection.weight": sd["conv_proj.weight"],
        "vit.embeddings.patch_embeddings.projection.bias": sd["conv_proj.bias"],
    }
    for i in range(depth):
        t, h = f"encoder.layers.encoder_layer_{i}.", f"vit.encoder.layer.{i}."
        w, b = sd[t + "self_attention.in_proj_weight"], sd[t + "self_attention.in_proj_bias"]
        for k, part in enumerate(("query", "key", "value")):
            out[f"{h}attention.attention.{part}.weight"] = w[k * d:(k + 1) * d]
            out[f"{h}attention.attention.{part}.bias"] = b[k * d:(k + 1) * d]
        for a, c in (("self_attention.out_proj", "attention.output.dense"), ("ln_1", "layernorm_before"),
                     ("ln_2", "layernorm_after"), ("mlp.0", "intermediate.dense"), ("mlp.3", "output.dense")):
            for x in ("weight", "bias"):
                out[f"{h}{c}.{x}"] = sd[f"{t}{a}.{x}"]
    out["vit.layernorm.weight"], out["vit.layernorm.bias"] = sd["encoder.ln.weight"], sd["encoder.ln.bias"]
    out["classifier.weight"], out["classifier.bias"] = sd["heads.head.weight"], sd["heads.head.bias"]
    return {k: v.contiguous() for k, v in out.items()}


def hf_config(model, labels):
    d = model.hidden_dim
    return {
        "architectures": ["ViTForImageClassification"],
        "model_type": "vit",
        "hidden_size": d,
        "num_hidden_layers": len(model.encoder.layers),
        "num_attention_heads": model.encoder.layers[0].self_attention.num_heads,
        "intermediate_size": model.mlp_dim,
        "hidden_act": "gelu",
        "hidden_dropout_prob": 0.0,
        "attention_probs_dropout_prob": 0.0,
        "layer_norm_eps": 1e-6,  # torchvision's; transformers' default would be 1e-12
        "image_size": model.image_size,
        "patch_size": model.patch_size,
        "num_channels": 3,
        "qkv_bias": True,
        "id2label": {str(i): l for i, l in enumerate(labels)},
        "label2id": {l: i for i, l in enumerate(labels)},
    }


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=2)


def hf_folder(path, model, sd_hf, labels, weights="safetensors"):
    os.makedirs(path, exist_ok=True)
    write_json(os.path.join(path, "config.json"), hf_config(model, labels))
    write_json(os.path.join(path, "preprocessor_config.json"), {
        "image_processor_type": "ViTImageProcessor", "do_resize": True, "size": {"height": model.image_size, "width": model.image_size},
        "resample": 2, "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True,
        "image_mean": [0.5, 0.5, 0.5], "image_std": [0.5, 0.5, 0.5],
    })
    if weights == "safetensors":
        write_safetensors(os.path.join(path, "model.safetensors"), sd_hf, {"format": "pt"})
    elif weights == "bin":
        torch.save(sd_hf, os.path.join(path, "pytorch_model.bin"))
    else:
        names = list(sd_hf)
        half = len(names) // 2
        shards = {"model-00001-of-00002.safetensors": names[:half], "model-00002-of-00002.safetensors": names[half:]}
        weight_map = {}
        for shard, keys in shards.items():
            write_safetensors(os.path.join(path, shard), {k: sd_hf[k] for k in keys}, {"format": "pt"})
            weight_map.update({k: shard for k in keys})
        total = sum(t.numel() * t.element_size() for t in sd_hf.values())
        write_json(os.path.join(path, "model.safetensors.index.json"), {"metadata": {"total_size": total}, "weight_map": weight_map})


def reference(model, images):
    model.eval()
    with torch.no_grad():
        logits = model(images)
        logits64 = model.double()(images.double())
        model.float()
    return logits, logits64


def main(argv):
    if len(argv) != 2:
        sys.exit(__doc__)
    out = argv[1]
    torch.manual_seed(7)
    torch.set_num_threads(2)

    custom = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=96, mlp_dim=192,
                               num_classes=len(LABELS))
    randomize(custom)
    images = torch.randn(3, 3, 32, 32)
    logits, logits64 = reference(custom, images)
    sd = custom.state_dict()
    d = os.path.join(out, "custom")
    os.makedirs(d, exist_ok=True)
    torch.save(sd, os.path.join(d, "tv.pth"))
    write_safetensors(os.path.join(d, "tv.safetensors"), sd)
    write_safetensors(os.path.join(d, "timm.safetensors"), to_timm(sd, 2))
    sd_hf = to_hf(sd, 2, 96)
    hf_folder(os.path.join(d, "hf"), custom, sd_hf, LABELS)
    hf_folder(os.path.join(d, "hf_bin"), custom, sd_hf, LABELS, weights="bin")
    hf_folder(os.path.join(d, "hf_sharded"), custom, sd_hf, LABELS, weights="sharded")
    write_safetensors(os.path.join(d, "io.safetensors"), {"images": images, "logits": logits, "logits64": logits64})

    b32 = torchvision.models.vit_b_32()  # the standard factory (random weights: nothing is downloaded)
    randomize(b32)
    images = torch.randn(2, 3, 224, 224)
    logits, logits64 = reference(b32, images)
    sd = b32.state_dict()
    d = os.path.join(out, "b32")
    os.makedirs(d, exist_ok=True)
    torch.save(sd, os.path.join(d, "tv.pth"))
    labels = [f"class {i}" for i in range(1000)]
    hf_folder(os.path.join(d, "hf"), b32, to_hf(sd, 12, 768), labels)
    pos = sd["encoder.pos_embedding"]                                     # (1, 1 + 7*7, 768)
    grid = pos[:, 1:].reshape(1, 7, 7, 768).permute(0, 3, 1, 2)           # (1, D, 7, 7)
    resampled = {}
    for size, n in (("160", 5), ("288", 9)):
        g = F.interpolate(grid, size=(n, n), mode="bicubic", align_corners=False, antialias=True)  # timm's defaults
        resampled["pos_" + size] = torch.cat([pos[:, :1], g.permute(0, 2, 3, 1).reshape(1, n * n, 768)], dim=1)
    write_safetensors(os.path.join(d, "io.safetensors"), {"images": images, "logits": logits, "logits64": logits64, **resampled})


if __name__ == "__main__":
    main(sys.argv)
