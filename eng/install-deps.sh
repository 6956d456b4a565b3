#!/usr/bin/env bash
# Installs what Vit for .NET needs from Debian's packages. Idempotent: when everything is present it only
# checks and exits (well under a second). Run as root (or with sudo); as another user it prints what to run.
#
#   libtorch-dev          libtorch 1.13 (CPU): the tensor engine, autograd, kernels
#   libdnnl-dev           oneDNN 2.6 headers (libtorch links the same library): bfloat16 kernels of the fused ops
#   libgloo-dev           Gloo's headers: libtorch's c10d/Gloo process groups (data-parallel training) in the shim
#   libopenblas0-pthread  the BLAS libtorch calls for matrix products (without it: ~45x slower sgemm)
#   libopencv-dev         image decoding and resizing (the native shim's imaging)
#   cmake g++             to build the native shim (src/Vit.Torch/native) during `dotnet build`
#   dataset-fashion-mnist real images for the main example and tests
#   python3-torch         PyTorch, the reference for parity tests and the peer in benchmarks
#   python3-torchvision   torchvision's VisionTransformer: checkpoint parity tests, the FineTunePretrained example
#   python3-onnx          onnx.checker for the ONNX exports (tests)
#   chromium              the browser the web app's tests drive (through Playwright, headless, never downloaded)
set -euo pipefail

packages=(libtorch-dev libdnnl-dev libgloo-dev libopenblas0-pthread libopencv-dev cmake g++ make dataset-fashion-mnist python3-torch python3-torchvision python3-numpy python3-onnx chromium)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  echo "install-deps: all dependencies present (${packages[*]})"
else
  echo "install-deps: missing: ${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "install-deps: not root. Run:" >&2
    echo "  sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
fi

# OpenBLAS must be the BLAS libtorch resolves (Debian's alternatives pick it when installed; check anyway).
blas=$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)
if [[ "$blas" != *openblas* ]]; then
  echo "install-deps: warning: libblas.so.3 resolves to '${blas:-nothing}', not OpenBLAS; matrix products will be very slow." >&2
  echo "  Fix: sudo update-alternatives --set libblas.so.3-x86_64-linux-gnu /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3" >&2
fi

if ! command -v dotnet >/dev/null 2>&1; then
  echo "install-deps: the .NET SDK (10.0) is not on PATH; install it (https://dot.net) and re-run." >&2
  exit 1
fi
