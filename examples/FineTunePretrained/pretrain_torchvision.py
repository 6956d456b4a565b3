#!/usr/bin/env python3
"""Makes the "published checkpoints" of the FineTunePretrained example on the spot, with nothing downloaded.

Trains a torchvision VisionTransformer (image 28, patch 7, 4 layers, 3 heads, hidden size 192) on Fashion-MNIST
classes 0-4 (Debian's dataset-fashion-mnist), as torchvision's recipes feed it: the gray image replicated into RGB
and normalised with ImageNet's mean and std. Then writes the trained weights the two ways they are published:

    OUT/vit_fmnist04.pth    torch.save(model.state_dict()), as torchvision's vit_b_16 weights are
    OUT/hf/                 a Hugging Face ViTForImageClassification folder: config.json (with id2label),
                            preprocessor_config.json, pytorch_model.bin (transformers' names)

    python3 pretrain_torchvision.py DATA_DIR OUT [EPOCHS]
"""
import gzip
import json
import math
import os
import sys
import time

try:
    import torch
    import torch.nn.functional as F
    from torchvision.models.vision_transformer import VisionTransformer
except ImportError as error:
    sys.stderr.write(f"{sys.executable} cannot import torch/torchvision ({error}); install Debian's python3-torchvision\n")
    sys.exit(3)

CLASSES = ["T-shirt-top", "Trouser", "Pullover", "Dress", "Coat"]
MEAN, STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]


def idx(path):
    with gzip.open(path, "rb") as f:
        data = f.read()
    dims = data[3]
    shape = [int.from_bytes(data[4 + 4 * i:8 + 4 * i], "big") for i in range(dims)]
    return torch.frombuffer(bytearray(data[4 + 4 * dims:]), dtype=torch.uint8).reshape(shape)


def split(data_dir, prefix):
    images, labels = idx(os.path.join(data_dir, f"{prefix}-images-idx3-ubyte.gz")), idx(os.path.join(data_dir, f"{prefix}-labels-idx1-ubyte.gz"))
    keep = labels < 5
    return images[keep], labels[keep].long()


def to_input(images):
    """(B, 28, 28) uint8 -> (B, 3, 28, 28) float, RGB replicated, ImageNet-normalised."""
    x = (images.float() / 255).unsqueeze(1).expand(-1, 3, -1, -1)
    return (x - torch.tensor(MEAN).view(1, 3, 1, 1)) / torch.tensor(STD).view(1, 3, 1, 1)


def accuracy(model, images, labels):
    model.eval()
    with torch.no_grad():
        correct = sum((model(to_input(images[i:i + 500])).argmax(1) == labels[i:i + 500]).sum().item() for i in range(0, len(labels), 500))
    return correct / len(labels)


def hf_names(sd, depth, d):
    out = {
        "vit.embeddings.cls_token": sd["class_token"],
        "vit.embeddings.position_embeddings": sd["encoder.pos_embedding"],
        "vit.embeddings.patch_embeddings.projection.weight": sd["conv_proj.weight"],
        "vit.embeddings.patch_embeddings.projection.bias": sd["conv_proj.bias"],
        "vit.layernorm.weight": sd["encoder.ln.weight"], "vit.layernorm.bias": sd["encoder.ln.bias"],
        "classifier.weight": sd["heads.head.weight"], "classifier.bias": sd["heads.head.bias"],
    }
    for i in range(depth):
        t, h = f"encoder.layers.encoder_layer_{i}.", f"vit.encoder.layer.{i}."
        w, b = sd[t + "self_attention.in_proj_weight"], sd[t + "self_attention.in_proj_bias"]
        for k, part in enumerate(("query", "key", "value")):
            out[f"{h}attention.attention.{part}.weight"] = w[k * d:(k + 1) * d].clone()
            out[f"{h}attention.attention.{part}.bias"] = b[k * d:(k + 1) * d].clone()
        for a, c in (("self_attention.out_proj", "attention.output.dense"), ("ln_1", "layernorm_before"),
                     ("ln_2", "layernorm_after"), ("mlp.0", "intermediate.dense"), ("mlp.3", "output.dense")):
            for x in ("weight", "bias"):
                out[f"{h}{c}.{x}"] = sd[f"{t}{a}.{x}"]
    return out


def main(argv):
    if len(argv) not in (3, 4):
        sys.exit(__doc__)
    data_dir, out = argv[1], argv[2]
    epochs = int(argv[3]) if len(argv) == 4 else 3
    torch.manual_seed(0)
    torch.set_num_threads(os.cpu_count() or 1)
    train_x, train_y = split(data_dir, "train")
    test_x, test_y = split(data_dir, "t10k")
    model = VisionTransformer(image_size=28, patch_size=7, num_layers=4, num_heads=3, hidden_dim=192, mlp_dim=384, num_classes=5)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.05)
    steps = epochs * math.ceil(len(train_y) / 128)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=1e-3, total_steps=steps, pct_start=0.1)
    start = time.time()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train_y))
        for i in range(0, len(order), 128):
            b = order[i:i + 128]
            x = to_input(train_x[b])
            flip = torch.rand(len(b)) < 0.5
            x[flip] = x[flip].flip(-1)
            loss = F.cross_entropy(model(x), train_y[b], label_smoothing=0.1)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
        print(f"  PyTorch pretraining epoch {epoch + 1}/{epochs}: loss {loss.item():.3f}, test accuracy on classes 0-4 "
              f"{accuracy(model, test_x, test_y):.2%} ({time.time() - start:.0f} s)", flush=True)
    model.eval()
    sd = model.state_dict()
    os.makedirs(out, exist_ok=True)
    torch.save(sd, os.path.join(out, "vit_fmnist04.pth"))
    hf = os.path.join(out, "hf")
    os.makedirs(hf, exist_ok=True)
    with open(os.path.join(hf, "config.json"), "w") as f:
        json.dump({
            "architectures": ["ViTForImageClassification"], "model_type": "vit", "hidden_size": 192, "num_hidden_layers": 4,
            "num_attention_heads": 3, "intermediate_size": 384, "hidden_act": "gelu", "layer_norm_eps": 1e-6,
            "image_size": 28, "patch_size": 7, "num_channels": 3, "qkv_bias": True,
            "id2label": {str(i): c for i, c in enumerate(CLASSES)}, "label2id": {c: i for i, c in enumerate(CLASSES)},
        }, f, indent=2)
    with open(os.path.join(hf, "preprocessor_config.json"), "w") as f:
        json.dump({"image_processor_type": "ViTImageProcessor", "do_resize": True, "size": {"height": 28, "width": 28}, "resample": 2,
                   "do_rescale": True, "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": MEAN, "image_std": STD}, f, indent=2)
    torch.save(hf_names(sd, 4, 192), os.path.join(hf, "pytorch_model.bin"))
    print(f"  wrote {os.path.join(out, 'vit_fmnist04.pth')} and {hf}/; PyTorch's test accuracy on classes 0-4: {accuracy(model, test_x, test_y):.2%}")


if __name__ == "__main__":
    main(sys.argv)
