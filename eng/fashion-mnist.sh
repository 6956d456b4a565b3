#!/usr/bin/env bash
# The main job: installs what is missing, then trains a ViT from scratch on Fashion-MNIST and prints the
# test accuracy. Extra arguments go to the example (e.g. --epochs 30; --help lists them).
set -euo pipefail
cd "$(dirname "$0")/.."
bash eng/install-deps.sh main
dotnet build examples/FashionMnist -c Release -nologo -v q
exec dotnet examples/FashionMnist/bin/Release/net10.0/FashionMnist.dll "$@"
