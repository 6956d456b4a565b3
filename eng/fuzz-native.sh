#!/usr/bin/env bash
# Fuzzes the native image decoder (vit_image_decode_bytes in src/Vit.Torch/native/vit_imaging.cpp) with
# libFuzzer + AddressSanitizer + UndefinedBehaviorSanitizer, one run per format corpus (JPEG, PNG, BMP, WebP).
#
#   bash eng/fuzz-native.sh                 # 120 s per format
#   FUZZ_SECONDS=30 FUZZ_FORMATS="png bmp" bash eng/fuzz-native.sh
#   tools/fuzz-native/build/decode_fuzzer FILE...    # replay inputs (after a build)
#
# Environment: FUZZ_SECONDS (per format, default 120; 0 = build, make seeds and replay regressions only),
# FUZZ_FORMATS (default "jpeg png bmp webp"), FUZZ_MINIMIZE_SECONDS (per finding, default 60), FUZZ_ARGS (extra
# libFuzzer flags), FUZZ_BUILD_DIR (default tools/fuzz-native/build). Needs clang-14 with its sanitizer runtimes
# (libclang-rt-14-dev) and libopencv-dev; installs them when run as root.
#
# Builds the harness (tools/fuzz-native/decode_fuzzer.cpp, which compiles vit_imaging.cpp into the fuzzer; no
# libtorch), generates seed images (tools/fuzz-native/make_seeds.cpp), replays tools/fuzz-native/regressions, and
# fuzzes each format with -rss_limit_mb=1024 -timeout=2. Everything runs under nice, one process at a time.
# Findings (crash-*, leak-*, timeout-*, oom-* and their minimized-* versions) are kept in BUILD/artifacts/FORMAT/; a
# timeout is replayed alone three times and its wall time printed, to tell a slow input from a loaded machine.
# Exits 1 when anything was found, 0 otherwise. See tools/fuzz-native/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

seconds=${FUZZ_SECONDS:-120}
formats=${FUZZ_FORMATS:-"jpeg png bmp webp"}
minimize_seconds=${FUZZ_MINIMIZE_SECONDS:-60}
build=${FUZZ_BUILD_DIR:-$root/tools/fuzz-native/build}
src=$root/tools/fuzz-native
native=$root/src/Vit.Torch/native
CXX=${CXX_FUZZ:-clang++-14}
nice=(nice -n 19)

# --- toolchain -------------------------------------------------------------------------------------------
have_fuzzer() {
  command -v "$CXX" >/dev/null && [[ -f /usr/include/opencv4/opencv2/imgcodecs.hpp ]] &&
    [[ -n $("$CXX" -print-file-name=libclang_rt.fuzzer-x86_64.a 2>/dev/null | grep /) ]] &&
    [[ -f $("$CXX" -print-file-name=libclang_rt.fuzzer-x86_64.a) ]]
}
if ! have_fuzzer; then
  if [[ $(id -u) == 0 ]]; then
    echo "fuzz-native: installing clang-14, its sanitizer/libFuzzer runtimes and OpenCV (Debian packages)"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq clang-14 libclang-rt-14-dev libopencv-dev >/dev/null
  fi
  have_fuzzer || {
    echo "fuzz-native: libFuzzer for $CXX not found; run: sudo apt-get install clang-14 libclang-rt-14-dev libopencv-dev" >&2
    exit 2
  }
fi

# --- build -----------------------------------------------------------------------------------------------
mkdir -p "$build/obj"
opencv_cflags=$(pkg-config --cflags opencv4 2>/dev/null || echo -I/usr/include/opencv4)
cflags=(-std=c++17 -g -O1 -fno-omit-frame-pointer -D_GLIBCXX_ASSERTIONS -I"$native" $opencv_cflags)
san=(-fsanitize=address,undefined -fno-sanitize-recover=undefined)

echo "fuzz-native: building the harness in $build"
"${nice[@]}" "$CXX" "${cflags[@]}" "${san[@]}" -fsanitize=fuzzer-no-link -Wall -Wextra \
  -c "$native/vit_imaging.cpp" -o "$build/obj/vit_imaging.o"
"${nice[@]}" "$CXX" "${cflags[@]}" "${san[@]}" -fsanitize=fuzzer-no-link -Wall -Wextra \
  -c "$src/decode_fuzzer.cpp" -o "$build/obj/decode_fuzzer.o"
"${nice[@]}" "$CXX" "${san[@]}" -fsanitize=fuzzer "$build/obj/decode_fuzzer.o" "$build/obj/vit_imaging.o" \
  -lopencv_imgcodecs -lopencv_imgproc -lopencv_core -o "$build/decode_fuzzer"
# The seed generator is an ordinary program (no sanitizers).
"${nice[@]}" "$CXX" -std=c++17 -O1 $opencv_cflags "$src/make_seeds.cpp" \
  -lopencv_imgcodecs -lopencv_core -o "$build/make_seeds"

rm -rf "$build/seeds"
"${nice[@]}" "$build/make_seeds" "$build/seeds"

# Inputs that once crashed (tools/fuzz-native/regressions, with the harness's two selector bytes): each must now
# run clean. Any that fails counts as a finding.
found=0
regressions=("$src"/regressions/*)
if [[ -f ${regressions[0]} ]]; then
  set +e
  "${nice[@]}" "$build/decode_fuzzer" -rss_limit_mb=1024 -timeout=2 "${regressions[@]}" >"$build/regressions.log" 2>&1
  rc=$?
  set -e
  if ((rc != 0)); then
    found=1
    echo "fuzz-native: FINDING: a regression input fails again (see $build/regressions.log):"
    grep -aE '^(==[0-9]+==ERROR|SUMMARY|==FUZZ CHECK FAILED==)|runtime error|^Running: ' "$build/regressions.log" | head -20 | sed 's/^/    /'
  else
    echo "fuzz-native: ${#regressions[@]} regression input(s) run clean"
  fi
fi

if [[ $seconds == 0 ]]; then
  echo "fuzz-native: FUZZ_SECONDS=0: built $build/decode_fuzzer and the seeds only"
  exit "$found"
fi

# --- fuzz ------------------------------------------------------------------------------------------------
# One value from a libFuzzer log: a final stat ("stat::peak_rss_mb: 93") or a field of a status line.
final_stat() { sed -nE "s/^stat::$1: *([0-9]+).*/\1/p" "$2" | tail -1; }
field() { # field LOG LINE-REGEX NAME -> the value of "NAME: N" on the last matching status line
  grep -E "$2" "$1" | tail -1 | sed -nE "s/.* $3: ([0-9]+).*/\1/p"
}

noise='^$|^(libpng (error|warning): |imdecode_\(.*\): can.t read header: |Corrupt JPEG data: |Premature end of JPEG|Invalid SOS parameters|Unsupported marker type|Warning: unknown JFIF revision|Inconsistent progression sequence)'
summary=()
for fmt in $formats; do
  [[ -d $build/seeds/$fmt ]] || { echo "fuzz-native: no seeds for format '$fmt'" >&2; exit 2; }
  corpus=$build/corpus/$fmt
  art=$build/artifacts/$fmt
  log=$build/logs/$fmt.log
  mkdir -p "$corpus" "$art" "$build/logs"
  echo
  echo "fuzz-native: $fmt for ${seconds}s (corpus $corpus, seeds $build/seeds/$fmt)"
  findings_in() { ls "$art" | grep -E '^(crash|leak|timeout|oom)-' | sort || true; }
  before=$(findings_in)
  set +e
  # New units go into the first directory (the growing corpus); the seeds are read only.
  # shellcheck disable=SC2086
  # The decoders' own complaints about bad data (libpng, libjpeg, OpenCV's header errors) are dropped from
  # the log: they are the expected answer, and there are thousands a second. Sanitizer reports are kept.
  "${nice[@]}" "$build/decode_fuzzer" -rss_limit_mb=1024 -timeout=2 -max_total_time="$seconds" \
    -print_final_stats=1 -dict="$src/decode.dict" -artifact_prefix="$art/" ${FUZZ_ARGS:-} \
    "$corpus" "$build/seeds/$fmt" 2>&1 | grep -avE "$noise" >"$log"
  rc=${PIPESTATUS[0]}
  set -e

  new_findings=()
  while IFS= read -r f; do [[ -n $f ]] && new_findings+=("$f"); done < <(comm -13 <(echo "$before") <(findings_in))
  if ((rc != 0)) && ((${#new_findings[@]} == 0)); then
    echo "fuzz-native: libFuzzer exited $rc without an artifact; see $log" >&2
    found=1
    new_findings+=("(exit $rc, no artifact)")
  fi

  execs=$(final_stat number_of_executed_units "$log")
  eps=$(final_stat average_exec_per_sec "$log")
  units=$(final_stat new_units_added "$log")
  rss=$(final_stat peak_rss_mb "$log")
  cov0=$(field "$log" 'INITED' cov)
  ft0=$(field "$log" 'INITED' ft)
  cov1=$(field "$log" '^#[0-9]+.* cov: ' cov)
  ft1=$(field "$log" '^#[0-9]+.* ft: ' ft)
  corp=$(grep -E '^#[0-9]+.* corp: ' "$log" | tail -1 | sed -nE 's/.* corp: ([0-9]+\/[0-9]+[a-zA-Z]*).*/\1/p')
  printf 'fuzz-native: %s: %s execs, %s exec/s, coverage cov %s -> %s, features ft %s -> %s, %s new units (corpus %s), peak RSS %s MB, %d finding(s)\n' \
    "$fmt" "${execs:-?}" "${eps:-?}" "${cov0:-?}" "${cov1:-?}" "${ft0:-?}" "${ft1:-?}" "${units:-?}" "${corp:-?}" "${rss:-?}" "${#new_findings[@]}"
  summary+=("$(printf '%-5s %10s %8s %6s %6s %6s %6s %6s %8s %3d' "$fmt" "${execs:-?}" "${eps:-?}" "${cov0:-?}" "${cov1:-?}" "${ft0:-?}" "${ft1:-?}" "${units:-?}" "${rss:-?}" "${#new_findings[@]}")")

  for f in "${new_findings[@]}"; do
    [[ -f $art/$f ]] || continue
    found=1
    echo "fuzz-native: FINDING $art/$f"
    grep -E '^(==[0-9]+==ERROR|SUMMARY|==FUZZ CHECK FAILED==)|runtime error|^    #[0-9]+ ' "$log" | head -30 | sed 's/^/    /'
    if [[ $f == timeout-* ]]; then
      # A timeout can be the machine's load rather than the input: replay it alone, at normal priority, and say how long
      # it takes (libFuzzer's limit is 2 s of wall time).
      for try in 1 2 3; do
        t0=$(date +%s%N)
        set +e
        "$build/decode_fuzzer" -rss_limit_mb=1024 -timeout=30 "$art/$f" >/dev/null 2>&1
        replay_rc=$?
        set -e
        echo "fuzz-native: $f replayed alone: $(( ($(date +%s%N) - t0) / 1000000 )) ms, exit $replay_rc (try $try)"
      done
    fi
    if ((minimize_seconds > 0)); then
      echo "fuzz-native: minimizing $f (${minimize_seconds}s)"
      set +e
      "${nice[@]}" "$build/decode_fuzzer" -minimize_crash=1 -rss_limit_mb=1024 -timeout=2 \
        -max_total_time="$minimize_seconds" -exact_artifact_path="$art/minimized-$f" "$art/$f" \
        >"$build/logs/$fmt-minimize-$f.log" 2>&1
      set -e
      [[ -f $art/minimized-$f ]] && echo "fuzz-native: minimized: $art/minimized-$f ($(wc -c <"$art/minimized-$f") bytes)"
    fi
  done
done

echo
echo "fuzz-native: summary (${seconds}s per format; cov = edges, ft = features, at start -> at end)"
printf '%-5s %10s %8s %6s %6s %6s %6s %6s %8s %3s\n' format execs exec/s cov0 cov ft0 ft units rss_mb bad
printf '%s\n' "${summary[@]}"
if ((found)); then
  echo "fuzz-native: findings saved under $build/artifacts (replay: $build/decode_fuzzer FILE)"
  exit 1
fi
echo "fuzz-native: no findings"
