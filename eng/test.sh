#!/usr/bin/env bash
# Runs the whole test suite on a fresh machine: installs what is missing (eng/install-deps.sh: the test references,
# Gloo, the data set), builds everything in Release (with the optional libvit_gloo.so, which the multi-process tests
# need), runs the MSTest suite, and ends with "N passed, N failed".
set -euo pipefail
cd "$(dirname "$0")/.."

bash eng/install-deps.sh
dotnet build Vit.sln -c Release -nologo -v q -p:VitGloo=true

log=$(mktemp)
set +e
dotnet test Vit.sln -c Release --no-build -nologo 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# Sum the per-assembly summaries ("Failed: 0, Passed: 12, Skipped: 0, Total: 12").
read -r passed failed skipped < <(grep -E 'Failed: +[0-9]+, Passed: +[0-9]+' "$log" |
  sed -E 's/.*Failed: +([0-9]+), Passed: +([0-9]+), Skipped: +([0-9]+).*/\2 \1 \3/' |
  awk '{p+=$1; f+=$2; s+=$3} END {print p+0, f+0, s+0}')
rm -f "$log"
if ((status != 0 && failed == 0)); then failed=1; fi   # a crash or build error counts as a failure
echo "${passed} passed, ${failed} failed, ${skipped} skipped"
exit "$status"
