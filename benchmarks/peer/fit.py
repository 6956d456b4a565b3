"""PyTorch peer of `Vit.Benchmarks fit`: training from a folder of JPEGs as a PyTorch user writes it. torchvision's
ImageFolder decodes (PIL), resizes and centre-crops to 224 (our ResizeImages), then RandomResizedCrop(224, scale
0.5-1), a horizontal flip and ColorJitter(0.2, 0.2, 0.2) (our Light preset), normalised with ImageNet's statistics, in
one DataLoader worker; the training step of vit_model.trainer (the one train_step.py times: cross-entropy with label smoothing 0.1, clipping,
AdamW), float32 or bfloat16 autocast. Prints the images/s of the last epoch, its data waits included."""
import sys
import time

import torch
import torchvision.transforms as T
from torchvision.datasets import ImageFolder

from vit_model import arguments, model as build, trainer

folder = sys.argv.pop(sys.argv.index("--dir") + 1); sys.argv.remove("--dir")
a = arguments(__doc__, {"batch": 32, "epochs": 2, "workers": 1})
data = ImageFolder(folder, T.Compose([
    T.Resize(224), T.CenterCrop(224), T.RandomResizedCrop(224, scale=(0.5, 1.0)), T.RandomHorizontalFlip(),
    T.ColorJitter(0.2, 0.2, 0.2), T.ToTensor(), T.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])]))
a.classes = len(data.classes)
loader = torch.utils.data.DataLoader(data, batch_size=a.batch, shuffle=True, num_workers=a.workers)
model = build(a)
step = trainer(model, a.precision)
for epoch in range(a.epochs):
    start, seen = time.perf_counter(), 0
    for x, y in loader:
        step(x, y)
        seen += len(y)
    elapsed = time.perf_counter() - start
print(f"pytorch-eager fit images/s {seen / elapsed:.1f} (threads {a.threads}, batch {a.batch}, {len(data)} JPEGs, "
      f"epoch {a.epochs} of {a.epochs}, {a.workers} DataLoader worker, {a.precision})")
