#!/usr/bin/env bash
# Installs the Debian packages a job of this repository needs. The library itself needs none: the engine (TorchSharp
# with libtorch 2.10), imaging (SkiaSharp), Microsoft.ML and the rest are NuGet packages `dotnet build` restores.
# What is here is optional, per job:
#   bash eng/install-deps.sh main    the main job: the Fashion-MNIST data set only
#   bash eng/install-deps.sh         everything the tests and benchmarks use (the default)
# Idempotent: when everything is present it only checks and exits (well under a second), as any user. Run as root it
# installs what is missing; as another user it prints the one line to run as root.
#
#   dataset-fashion-mnist   real images for the main job, examples and tests
#   libgloo-dev cmake g++ make
#                           Gloo, the collective library of multi-process training, and the tools that build
#                           libvit_gloo.so over it (dotnet build -p:VitGloo=true); one process needs none of them
#   python3-torch           PyTorch, the reference for parity tests and the peer in benchmarks
#   python3-torchvision     torchvision's VisionTransformer: checkpoint parity tests, the FineTunePretrained example
#   python3-onnx            onnx.checker for the ONNX exports (tests)
#   chromium                the browser the web app's tests drive (through Playwright, headless, never downloaded)
set -euo pipefail

case "${1:-tests}" in
  main) packages=(dataset-fashion-mnist) ;;
  tests) packages=(dataset-fashion-mnist libgloo-dev cmake g++ make python3-torch python3-torchvision python3-numpy python3-onnx chromium) ;;
  *) echo "usage: bash eng/install-deps.sh [main|tests]" >&2; exit 2 ;;
esac

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
