#!/usr/bin/env bash
# Installs what Vit for .NET needs from Debian's packages. Idempotent: when everything is present it only
# checks and exits (well under a second), as any user. Run as root it installs what is missing; as another user it
# prints the line to run as root.
#
# The engine itself (libtorch 2.10) comes from NuGet with TorchSharp-cpu; nothing here is the engine.
#   libopencv-dev         image decoding and resizing (libvit_imaging.so, src/Vit.Torch/native)
#   libgloo-dev           Gloo, the collective library of data-parallel training (libvit_gloo.so; optional: without
#                         it everything else builds and runs, and --nproc / WORLD_SIZE > 1 say what to install)
#   cmake g++             to build those two native libraries during `dotnet build`
#   dataset-fashion-mnist real images for the main example and tests
#   python3-torch         PyTorch, the reference for parity tests and the peer in benchmarks
#   python3-torchvision   torchvision's VisionTransformer: checkpoint parity tests, the FineTunePretrained example
#   python3-onnx          onnx.checker for the ONNX exports (tests)
#   chromium              the browser the web app's tests drive (through Playwright, headless, never downloaded)
set -euo pipefail

packages=(libopencv-dev libgloo-dev cmake g++ make dataset-fashion-mnist python3-torch python3-torchvision python3-numpy python3-onnx chromium)

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
    echo "install-deps: not root, so nothing was installed. As root (for instance through sudo), run:" >&2
    echo "  apt-get update && apt-get install -y ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q "${missing[@]}"
fi

if ! command -v dotnet >/dev/null 2>&1; then
  echo "install-deps: the .NET SDK (10.0) is not on PATH; install it (https://dot.net) and re-run." >&2
  exit 1
fi
