"""Few-images peer in plain PyTorch: our Fashion-MNIST ViT (benchmarks/peer/vit_model.py: image 28, 1 channel, patch 7,
D 96, depth 4, 4 heads, MLP 192, class token, pre-norm blocks, exact GELU) trained from scratch on 500 images.

Split: Fashion-MNIST classes 5-9 (sandal, shirt, sneaker, bag, ankle boot); training = the first 100 images of each of
those classes in the order of the official training file, test = every test image of those classes (5,000).

Training: --epochs (60) at batch 64 (reshuffled each epoch, last batch smaller), AdamW lr 1e-3 with weight decay 0.05
on matrices but the position embedding (as vit_model.trainer), linear warmup over the first 10% of the steps then a
cosine to 1e-5 per step (Vit.Torch's LearningRateSchedule), cross-entropy with label smoothing 0.1, gradients clipped
to norm 1, augmentation: random horizontal flips and random shifts of up to 2 pixels (black fill). Pixels normalised
with the training set's mean 0.2860 and std 0.3530 (Vit.Torch's FashionMnist). float32, --threads (2) threads.

Prints each seed's test accuracy, their mean and standard deviation, and one JSON line.
Usage: /usr/bin/python3 benchmarks/peer/few-images/vit_from_scratch.py [--epochs 60] [--seeds 0 1 2]"""
import argparse
import gzip
import json
import math
import os
import statistics
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from vit_model import ViT  # noqa: E402  (benchmarks/peer/vit_model.py)

CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
FIRST_CLASS, PER_CLASS = 5, 100
MEAN, STD = 0.2860, 0.3530


def idx(path, magic):
    with gzip.open(path, "rb") as f:
        data = f.read()
    if int.from_bytes(data[:4], "big") != magic:
        raise ValueError(f"{path}: not an IDX file with magic {magic:#x}")
    if magic == 0x803:
        n, rows, cols = (int.from_bytes(data[4 * k:4 * k + 4], "big") for k in (1, 2, 3))
        return np.frombuffer(data, np.uint8, n * rows * cols, 16).reshape(n, rows, cols)
    return np.frombuffer(data, np.uint8, int.from_bytes(data[4:8], "big"), 8)


def split(folder):
    """(train x, train y, test x, test y): x float tensors N x 1 x 28 x 28 in [0, 1], y = class - 5."""
    train_x, train_y = idx(f"{folder}/train-images-idx3-ubyte.gz", 0x803), idx(f"{folder}/train-labels-idx1-ubyte.gz", 0x801)
    test_x, test_y = idx(f"{folder}/t10k-images-idx3-ubyte.gz", 0x803), idx(f"{folder}/t10k-labels-idx1-ubyte.gz", 0x801)
    picked = np.concatenate([np.flatnonzero(train_y == c)[:PER_CLASS] for c in range(FIRST_CLASS, len(CLASSES))])
    picked.sort()  # file order
    tested = np.flatnonzero(test_y >= FIRST_CLASS)

    def tensors(x, y, rows):
        return (torch.from_numpy(x[rows].astype(np.float32) / 255).unsqueeze(1),
                torch.from_numpy(y[rows].astype(np.int64) - FIRST_CLASS))
    return (*tensors(train_x, train_y, picked), *tensors(test_x, test_y, tested))


def augment(x, generator, shift=2):
    """Random horizontal flip (p 0.5) and a random integer shift of up to `shift` pixels on each axis, black fill."""
    n, _, h, w = x.shape
    flip = torch.rand(n, generator=generator) < 0.5
    x = torch.where(flip[:, None, None, None], x.flip(3), x)
    padded = F.pad(x, (shift, shift, shift, shift))
    dy, dx = (torch.randint(0, 2 * shift + 1, (n,), generator=generator) for _ in range(2))
    return torch.stack([padded[i, :, dy[i]:dy[i] + h, dx[i]:dx[i] + w] for i in range(n)])


def normalise(x):
    return (x - MEAN) / STD


def learning_rate(step, total, peak, warmup, floor):
    if step < warmup:
        return peak * (step + 1) / warmup
    t = min(1.0, (step - warmup) / max(1, total - warmup))
    return floor + (peak - floor) * 0.5 * (1 + math.cos(math.pi * t))


def run(seed, data, a):
    train_x, train_y, test_x, test_y = data
    torch.manual_seed(seed)
    model = ViT(28, 1, 7, 96, 4, 4, 192, len(CLASSES) - FIRST_CLASS)
    decay = [p for n, p in model.named_parameters() if p.dim() > 1 and n != "pos"]
    no_decay = [p for n, p in model.named_parameters() if not (p.dim() > 1 and n != "pos")]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}], lr=a.lr)
    generator = torch.Generator().manual_seed(seed)
    steps_per_epoch = math.ceil(len(train_y) / a.batch)
    total = a.epochs * steps_per_epoch
    warmup = max(1, round(a.warmup * total))
    step, start = 0, time.perf_counter()
    for epoch in range(a.epochs):
        model.train()
        order = torch.randperm(len(train_y), generator=generator)
        for b in range(steps_per_epoch):
            rows = order[b * a.batch:(b + 1) * a.batch]
            x, y = normalise(augment(train_x[rows], generator)), train_y[rows]
            for group in opt.param_groups:
                group["lr"] = learning_rate(step, total, a.lr, warmup, a.min_lr)
            loss = F.cross_entropy(model(x), y, label_smoothing=a.smoothing)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
    train_seconds = time.perf_counter() - start
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(normalise(test_x[i:i + 500])).argmax(1) for i in range(0, len(test_y), 500)])
    accuracy = (predicted == test_y).float().mean().item()
    return accuracy, train_seconds, step, loss.item()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default="/usr/share/datasets/fashion-mnist")
    p.add_argument("--epochs", type=int, default=60)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--min-lr", type=float, default=1e-5)
    p.add_argument("--weight-decay", type=float, default=0.05)
    p.add_argument("--warmup", type=float, default=0.1, help="share of all steps")
    p.add_argument("--smoothing", type=float, default=0.1)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--threads", type=int, default=2)
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    data = split(a.data)
    print(f"split: train {len(data[1])} images {np.bincount(data[1].numpy()).tolist()}, "
          f"test {len(data[3])} images {np.bincount(data[3].numpy()).tolist()} (classes {', '.join(CLASSES[FIRST_CLASS:])})")
    results = []
    for seed in a.seeds:
        accuracy, seconds, steps, loss = run(seed, data, a)
        results.append({"seed": seed, "accuracy": round(accuracy, 6), "train_seconds": round(seconds, 1)})
        print(f"seed {seed}: test accuracy {accuracy:.2%} ({a.epochs} epochs, {steps} steps, last loss {loss:.3f}, "
              f"trained in {seconds:.1f} s)")
    accuracies = [r["accuracy"] for r in results]
    mean = statistics.mean(accuracies)
    std = statistics.stdev(accuracies) if len(accuracies) > 1 else 0.0
    print(f"mean test accuracy {mean:.2%} (std {std:.2%}, {len(accuracies)} seeds)")
    print(json.dumps({"peer": "pytorch-vit-from-scratch", "epochs": a.epochs, "batch": a.batch, "train": len(data[1]),
                      "test": len(data[3]), "runs": results, "mean_accuracy": round(mean, 6), "std": round(std, 6)}))


if __name__ == "__main__":
    main()
