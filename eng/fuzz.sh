#!/usr/bin/env bash
# The file readers under a seeded mutation fuzzer (tools/Vit.Fuzz): safetensors, model zips, model.json, Hugging Face
# config.json, torch.save .pth files, their pickles, CSV. Each format in its own process; per format a line with the
# inputs, the rate, how many loaded / were refused with a named error, the findings, peak memory.
#   bash eng/fuzz.sh                 # 1,000,000 inputs per format (~25 minutes on one core)
#   INPUTS=20000 SEED=7 bash eng/fuzz.sh
# Findings (inputs that escaped as another exception, hung or crashed the process) are saved in fuzz-findings/.
# The native image decoders have their own libFuzzer run: eng/fuzz-native.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
bash eng/install-deps.sh >/dev/null
dotnet build tools/Vit.Fuzz -c Release -nologo -v q >/dev/null
dotnet tools/Vit.Fuzz/bin/Release/net10.0/Vit.Fuzz.dll all --inputs "${INPUTS:-1000000}" --seed "${SEED:-1}" --out "${OUT:-fuzz-findings}"
