#!/usr/bin/env bash
# Reliability runs of issue 13 (tools/Vit.Stress), each ending with a line of figures:
#   save-kill: 100 trials of SIGKILL at a random moment of mlContext.Model.SaveAtomic and of checkpoint writes; each time the file
#              must load and predict exactly as one whole version did.
#   serve:     16 threads x 10,000 predictions through the prediction pool while the model file is replaced every
#              second; 0 errors, every answer equal to its version's sequential answer, RSS within 5% after warm-up.
#   bash eng/stress.sh                  # both (~5 minutes on 2 cores)
#   TRIALS=20 PREDICTIONS=1000 bash eng/stress.sh
set -euo pipefail
cd "$(dirname "$0")/.."
bash eng/install-deps.sh >/dev/null
dotnet build tools/Vit.Stress -c Release -nologo -v q >/dev/null
stress="dotnet tools/Vit.Stress/bin/Release/net10.0/Vit.Stress.dll"
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
status=0
$stress save-kill --trials "${TRIALS:-100}" | tail -2 || status=1
$stress serve --threads "${THREADS:-16}" --predictions "${PREDICTIONS:-10000}" || status=1
exit $status
