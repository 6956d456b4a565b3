#!/usr/bin/env bash
# Coverage-guided fuzzing of the file readers: AFL++ (Debian's afl++) drives tools/Vit.Fuzz through SharpFuzz, on a
# copy of Vit.Torch.dll instrumented by SharpFuzz's command-line tool (pinned in .config/dotnet-tools.json). Formats:
# safetensors, model zips, model.json, Hugging Face config.json, torch.save .pth files, their pickles, CSV. Each format
# is one afl-fuzz run; per format a line with the executions, the rate, the corpus, the findings and peak memory.
#   bash eng/fuzz.sh                             # every format, 300 s each
#   TIME=60 bash eng/fuzz.sh csv pth             # some formats, 60 s each
#   INPUTS=1000000 TIME=0 bash eng/fuzz.sh       # ~1,000,000 executions per format (afl-fuzz -E), no time limit
# Also SEED (afl-fuzz -s, default 1), TIMEOUT_MS (an input running longer is a hang, default 10000), NICE (default 10),
# OUT (default fuzz-out/). Kept in OUT per format: the corpus (FORMAT/afl/default/queue: the next run starts from it
# and the seeds), afl-fuzz's log and fuzzer_stats, the harness's statistics; findings (inputs afl-fuzz saved as
# crashes or hangs, each replayed outside afl-fuzz with its stack) in OUT/findings/. Exit 1 when there is a finding.
set -euo pipefail
cd "$(dirname "$0")/.."
out=$(realpath -m "${OUT:-fuzz-out}")
time_limit=${TIME:-300}
seed=${SEED:-1}
formats=("$@")

bash eng/install-deps.sh >/dev/null
# AFL++ is a tool of this script alone, not a dependency of the library: installed here, as install-deps.sh would.
if ! command -v afl-fuzz >/dev/null 2>&1; then
  if [[ $(id -u) -ne 0 ]]; then
    echo "fuzz: afl-fuzz is missing. As root, run: apt-get update && apt-get install -y afl++" >&2
    exit 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q afl++ >/dev/null || { apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q afl++; }
fi

dotnet build tools/Vit.Fuzz -c Release -nologo -v q >/dev/null
dotnet tool restore >/dev/null
build=tools/Vit.Fuzz/bin/Release/net10.0

# The campaign runs from a copy of the build, with Vit.Torch.dll instrumented: hard links for the packages' files
# (libtorch alone is 490 MB), files of their own for ours. SharpFuzz rewrites the assembly in place (the build's
# Vit.Torch.dll is a hard link shared with src/Vit.Torch/bin), and a rebuild during the campaign must not reach it.
bin="$out/bin"
rm -rf "$bin"
mkdir -p "$out"
cp -al "$build" "$bin" 2>/dev/null || cp -a "$build" "$bin"
shopt -s nullglob
for own in "$build"/Vit.* "$build"/libvit_*; do
  rm "$bin/$(basename "$own")"
  cp "$own" "$bin/"
done
shopt -u nullglob
dotnet tool run sharpfuzz "$bin/Vit.Torch.dll" >/dev/null
[[ ${#formats[@]} -gt 0 ]] || mapfile -t formats < <(dotnet "$bin/Vit.Fuzz.dll" list)

# afl-fuzz runs `dotnet`, which it cannot check for instrumentation; core dumps and CPU frequency are the machine's
# business; the cores are shared, so no pinning; plain lines in the log.
export AFL_SKIP_BIN_CHECK=1 AFL_I_DONT_CARE_ABOUT_MISSING_CRASHES=1 AFL_SKIP_CPUFREQ=1 AFL_NO_AFFINITY=1 AFL_NO_UI=1

stat_of() { awk -v k="$1" '$1 == k { print $3 }' "$2"; }
harness_of() { awk -v k="$1" '$1 == k { print $2 }' "$2" 2>/dev/null | grep . || echo 0; }
mkdir -p "$out/findings"
summary=()
total_findings=0
for f in "${formats[@]}"; do
  dir="$out/$f"
  work=/dev/shm/vit-fuzz-$f
  [[ -d /dev/shm ]] || work="$dir/work"
  rm -rf "$dir/in" "$work"
  mkdir -p "$dir"
  dotnet "$bin/Vit.Fuzz.dll" corpus "$f" --work "$work" --in "$dir/in" --dict "$dir/dict"
  if [[ -d "$dir/afl/default/queue" ]]; then
    # The corpus of the last run joins the seeds (afl-fuzz drops what adds no coverage).
    find "$dir/afl/default/queue" -maxdepth 1 -type f -name 'id:*' -exec cp {} "$dir/in/" \;
  fi
  rm -rf "$dir/afl" "$dir/stats"
  limits=()
  [[ $time_limit -gt 0 ]] && limits+=(-V "$time_limit")
  [[ -n ${INPUTS:-} ]] && limits+=(-E "$INPUTS")
  echo "fuzz: $f: $(find "$dir/in" -type f | wc -l) inputs to start from; afl-fuzz ${limits[*]}; log in $dir/afl.log"
  rc=0
  nice -n "${NICE:-10}" afl-fuzz -i "$dir/in" -o "$dir/afl" -x "$dir/dict" -t "${TIMEOUT_MS:-10000}" -m none -s "$seed" "${limits[@]}" \
    -- dotnet "$bin/Vit.Fuzz.dll" afl "$f" --work "$work" --stats "$dir/stats" >"$dir/afl.log" 2>&1 || rc=$?
  st="$dir/afl/default/fuzzer_stats"
  if [[ $rc -ne 0 || ! -f $st ]]; then
    echo "fuzz: $f: afl-fuzz failed (exit $rc); the end of $dir/afl.log:" >&2
    tail -n 15 "$dir/afl.log" >&2
    summary+=("$f: afl-fuzz failed")
    total_findings=$((total_findings + 1))
    continue
  fi
  execs=$(stat_of execs_done "$st"); run_time=$(stat_of run_time "$st")
  crashes=$(stat_of saved_crashes "$st"); hangs=$(stat_of saved_hangs "$st")
  kept=()
  for kind in crashes hangs; do
    for input in "$dir/afl/default/$kind"/id:*; do
      [[ -e $input ]] || continue
      id=$(basename "$input"); id=${id%%,*}
      name="$out/findings/$f-$kind-${id#id:}"
      cp "$input" "$name"
      kept+=("$name")
    done
  done
  if [[ ${#kept[@]} -gt 0 ]]; then
    # Each finding again, outside afl-fuzz, with its stack (ten minutes for them all: a hang ends there).
    timeout 600 dotnet "$bin/Vit.Fuzz.dll" replay "$f" --work "$work" "${kept[@]}" >"$out/findings/$f.txt" 2>&1 || true
    echo "fuzz: $f: ${#kept[@]} finding(s) in $out/findings/ (replayed, with stacks: $out/findings/$f.txt)"
    grep -h FINDING "$out/findings/$f.txt" | cut -c1-300 || true
    total_findings=$((total_findings + ${#kept[@]}))
  fi
  line=$(printf '%s: %s executions in %s s (%s/s); corpus %s (%s of the map); loaded %s, refused %s (%s without the file'"'"'s name); findings: %s crashes, %s hangs; peak RSS %s MB (%s MB after start-up, %s start(s)); largest allocation for one input %s KB (input %s bytes)' \
    "$f" "$execs" "$run_time" "$((execs / (run_time > 0 ? run_time : 1)))" "$(stat_of corpus_count "$st")" "$(stat_of bitmap_cvg "$st")" \
    "$(harness_of loaded "$dir/stats")" "$(harness_of refused "$dir/stats")" "$(harness_of refused_unnamed "$dir/stats")" "$crashes" "$hangs" \
    "$(($(harness_of peak_rss_kb "$dir/stats") / 1024))" "$(($(harness_of start_rss_kb "$dir/stats") / 1024))" "$(harness_of children "$dir/stats")" \
    "$(($(harness_of largest_alloc_bytes "$dir/stats") / 1024))" "$(harness_of largest_alloc_input_bytes "$dir/stats")")
  echo "fuzz: $line"
  summary+=("$line")
  rm -rf "$work"
done
echo "fuzz: summary (SharpFuzz 2.3.0 + afl-fuzz $(afl-fuzz -h 2>&1 | grep -o '++[0-9.a-z]*' | head -1), seed $seed)"
printf '  %s\n' "${summary[@]}"
[[ $total_findings -eq 0 ]]
