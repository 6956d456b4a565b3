"""PyTorch peer of `Vit.Benchmarks dist-train`: the same training step as train_step.py over --world processes of
--threads threads each, joined by torch.distributed's gloo backend through DistributedDataParallel (bucketed
gradient allreduce overlapped with backward); the whole batch --batch is split over the processes. Prints rank 0's
images/s over the steps after the warmup."""
import os
import tempfile
import time

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from vit_model import arguments, model as build, trainer


def run(rank, a, store):
    torch.set_num_threads(a.threads)
    if a.world > 1:
        dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=a.world)
    model = build(a)
    net = torch.nn.parallel.DistributedDataParallel(model) if a.world > 1 else model
    step = trainer(net, a.precision)
    lo, hi = a.batch * rank // a.world, a.batch * (rank + 1) // a.world
    g = torch.Generator().manual_seed(1)
    x = torch.randn(a.batch, a.channels, a.image, a.image, generator=g)[lo:hi]
    y = (torch.arange(a.batch) % a.classes)[lo:hi]
    for s in range(a.warmup + a.steps):
        if s == a.warmup:
            start = time.perf_counter()
        step(x, y)
    elapsed = time.perf_counter() - start
    if rank == 0:
        print(f"pytorch-ddp dist-train images/s {a.batch * a.steps / elapsed:.1f} (processes {a.world} x threads {a.threads}, "
              f"batch {a.batch}, step {1000 * elapsed / a.steps:.1f} ms, {a.precision})", flush=True)
    if a.world > 1:
        dist.destroy_process_group()


if __name__ == "__main__":
    a = arguments(__doc__, {"batch": 64, "warmup": 2, "steps": 10, "world": 1})
    with tempfile.TemporaryDirectory() as d:
        store = os.path.join(d, "store")
        if a.world == 1:
            run(0, a, store)
        else:
            mp.spawn(run, args=(a, store), nprocs=a.world)
