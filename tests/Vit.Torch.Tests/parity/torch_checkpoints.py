#!/usr/bin/env python3
"""Writes real torch.save files for Vit.Torch's TorchCheckpoint tests (TorchCheckpointTests.cs), each with the
tensors it must read back, written independently of torch.save.

    python3 torch_checkpoints.py OUTDIR

For each checkpoint NAME (the file names below), OUTDIR/NAME.expected.safetensors (but for legacy.pt) holds the tensors that reading
NAME must give: the names after unwrapping, in the state dict's order, each as a contiguous copy of its stored dtype,
so that the test compares them bit for bit. The safetensors files are written here with json + struct only (the
`safetensors` package is not a dependency), from each tensor's bytes as torch holds them.

  tensors.pt          every storage class Vit reads, a 0-d tensor, an empty tensor, a transposed view, an expanded
                      view (stride 0), two tensors that share one storage at different offsets, and one tensor
                      under two names
  pytorch_model.bin   dict(module.named_parameters()) of a small module (each value an nn.Parameter)
  vit_b_16.pth        the state_dict() of a small torchvision VisionTransformer (an OrderedDict with _metadata)
  wrapped.pt          {'model': state_dict, 'epoch': 3, 'optimizer': AdamW state_dict after one step}
  ddp.pt              a state dict whose names all start with 'module.' (DistributedDataParallel)
  protocol4.pt        tensors.pt's state dict pickled with protocol 4 instead of torch.save's default 2
  legacy.pt           a state dict saved in the legacy (pre-1.6) format, which the reader refuses
"""
import collections
import os
import sys

try:
    import torch
except ImportError as error:
    # Exit code 3 tells the C# test to try another interpreter (a pyenv or venv python3 may lack torch).
    sys.stderr.write(f"{sys.executable} cannot import torch ({error}); install Debian's python3-torch\n")
    sys.exit(3)

from safetensors_io import write_safetensors


def save(outdir, name, obj, expected=None, **kwargs):
    torch.save(obj, os.path.join(outdir, name), **kwargs)
    if expected is not None:
        write_safetensors(os.path.join(outdir, name + ".expected.safetensors"), expected)


def every_kind():
    g = torch.Generator().manual_seed(11)
    base = torch.arange(40, dtype=torch.float32) * 0.25 - 3  # shared by two views below
    matrix = torch.randn(4, 5, generator=g)
    sd = collections.OrderedDict()
    sd["f32"] = torch.randn(3, 4, generator=g)
    sd["f64"] = torch.randn(2, 3, generator=g, dtype=torch.float64)
    sd["f16"] = torch.randn(5, generator=g).half()
    sd["bf16"] = torch.randn(2, 2, 2, generator=g).bfloat16()
    sd["i64"] = torch.tensor([[-(2 ** 63), -1], [0, 2 ** 63 - 1]], dtype=torch.int64)
    sd["i32"] = torch.tensor([-(2 ** 31), 7, 2 ** 31 - 1], dtype=torch.int32)
    sd["i16"] = torch.tensor([-32768, 5, 32767], dtype=torch.int16)
    sd["i8"] = torch.tensor([-128, -1, 127], dtype=torch.int8)
    sd["u8"] = torch.tensor([0, 128, 255], dtype=torch.uint8)
    sd["bool"] = torch.tensor([[True, False, True], [False, False, True]])
    sd["scalar"] = torch.tensor(-2.5)
    sd["empty"] = torch.empty(0, 3)
    sd["transposed"] = matrix.t()                        # (5, 4), stride (1, 5)
    sd["expanded"] = torch.randn(3, generator=g).expand(2, 3)  # stride (0, 1)
    sd["shared_a"] = base[3:9]                           # offset 3 of a 40-element storage
    sd["shared_b"] = base[10:40].view(5, 6)[:, 1:5]      # offset 11, stride (6, 1): a strided window
    sd["tied"] = sd["f32"]                               # the same tensor object again: a memo reference in the pickle
    assert not sd["transposed"].is_contiguous() and not sd["shared_b"].is_contiguous()
    assert sd["shared_a"].storage().data_ptr() == sd["shared_b"].storage().data_ptr()
    return sd


def small_vit():
    from torchvision.models.vision_transformer import VisionTransformer
    torch.manual_seed(5)
    model = VisionTransformer(image_size=32, patch_size=8, num_layers=2, num_heads=4, hidden_dim=48, mlp_dim=96, num_classes=5)
    with torch.no_grad():  # torchvision zero-initialises the head and biases: make every value visible
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    return model


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    outdir = sys.argv[1]
    os.makedirs(outdir, exist_ok=True)

    sd = every_kind()
    save(outdir, "tensors.pt", sd, sd)

    torch.manual_seed(3)
    module = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3), torch.nn.Linear(3, 2, bias=False))
    params = dict(module.named_parameters())
    assert all(isinstance(p, torch.nn.Parameter) for p in params.values())
    save(outdir, "pytorch_model.bin", params, params)

    vit = small_vit().state_dict()
    assert hasattr(vit, "_metadata")
    save(outdir, "vit_b_16.pth", vit, vit)

    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=0.01)
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    save(outdir, "wrapped.pt", {"model": net.state_dict(), "epoch": 3, "optimizer": opt.state_dict()}, net.state_dict())

    plain = collections.OrderedDict((k, v) for k, v in list(sd.items())[:3])
    save(outdir, "ddp.pt", collections.OrderedDict(("module." + k, v) for k, v in plain.items()), plain)

    save(outdir, "protocol4.pt", sd, sd, pickle_protocol=4)  # FRAME, SHORT_BINUNICODE, MEMOIZE, STACK_GLOBAL

    save(outdir, "legacy.pt", plain, _use_new_zipfile_serialization=False)


if __name__ == "__main__":
    main()
