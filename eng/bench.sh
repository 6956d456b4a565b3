#!/usr/bin/env bash
# Speed of Vit for .NET next to PyTorch eager (Debian's python3-torch 1.13) and, for ViT-Ti/16@224's training step and
# batch scoring, the plain TorchSharp ViT a .NET user would write (benchmarks/peer/torchsharp-vit), on this machine, in
# one run: the same models, sizes and data, each measurement repeated ROUNDS times with ours and the peers' interleaved,
# medians compared as ratios (a shared VM's timing drifts; only ratios measured in the same run mean anything).
#   bash eng/bench.sh               # everything (~15 minutes on 2 cores)
#   ROUNDS=5 bash eng/bench.sh      # more rounds, steadier medians
# Sections: training step; batch scoring; training through the pipeline; single-image latency and scoring through the
# pipeline; ML.NET model files (our transformer against ApplyOnnxModel); model FLOP/s as a share of the measured peak matmul; ATEN_CPU_CAPABILITY; ONNX Runtime; data-parallel processes; whether the image
# loader keeps up.
set -euo pipefail
cd "$(dirname "$0")/.."
bash eng/install-deps.sh >/dev/null
dotnet build benchmarks/Vit.Benchmarks -c Release -nologo -v q -p:VitGloo=true >/dev/null   # with libvit_gloo.so: the data-parallel row
# The plain TorchSharp ViT a .NET user would write (TorchSharp-cpu only; not in Vit.sln, so built here).
dotnet build benchmarks/peer/torchsharp-vit -c Release -nologo -v q >/dev/null
py=/usr/bin/python3
rounds=${ROUNDS:-3}
bench="dotnet benchmarks/Vit.Benchmarks/bin/Release/net10.0/Vit.Benchmarks.dll"
torchsharp="dotnet benchmarks/peer/torchsharp-vit/bin/Release/net10.0/torchsharp-vit.dll"
export OPENBLAS_NUM_THREADS=1   # both sides: 2 intra-op threads, single-threaded BLAS inside them (no oversubscription)
threads="--threads $(nproc) --blas-threads 1"   # --blas-threads: the PyTorch peer's; ours has one pool

echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
echo "CPU flags: $(grep -o -w -E 'avx2|fma|avx512f|avx512bw|avx512vl|avx512_vnni|avx512_bf16|amx_bf16|amx_tile|amx_int8' /proc/cpuinfo | sort -u | tr '\n' ' ')"
echo "ours: libtorch $(ls ~/.nuget/packages/libtorch-cpu-linux-x64 2>/dev/null | tail -1) via TorchSharp-cpu $(ls ~/.nuget/packages/torchsharp-cpu 2>/dev/null | tail -1); PyTorch $($py -c 'import torch; print(torch.__version__)'), $rounds rounds"

ips() { sed -E 's/.*images\/s ([0-9.]+).*/\1/'; }
median() { tr ' ' '\n' | grep . | sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2fx", a / b}'; }

fm="--image 28 --channels 1 --patch 7 --dim 96 --depth 4 --heads 4 --mlp 192 --classes 10"
ti="--image 224 --channels 3 --patch 16 --dim 192 --depth 12 --heads 3 --mlp 768 --classes 1000"
declare -A med   # "<what> <model> <who> <precision>" -> median images/s

# One measurement, ROUNDS times, ours and PyTorch's (and the plain TorchSharp ViT's, when given its arguments: it is
# ViT-Ti/16@224 only) in fp32 and bf16 interleaved; medians into med[].
measure() {  # what(train-step|score) model-name peer-script "args" ["torchsharp-vit args"]
  local what=$1 name=$2 script=$3 args=$4 ts=${5:-} r who p
  declare -A runs=()
  for ((r = 0; r < rounds; r++)); do
    for p in float32 bfloat16; do
      runs[ours $p]+=" $($bench "$what" $args $threads --precision $p | ips)"
      runs[pytorch $p]+=" $($py "benchmarks/peer/$script" $args $threads --precision $p | ips)"
      [[ -z $ts ]] || runs[torchsharp $p]+=" $($torchsharp "$what" $ts --threads "$(nproc)" --precision $p | ips)"
    done
  done
  for who in ours pytorch ${ts:+torchsharp}; do for p in float32 bfloat16; do
    med[$what $name $who $p]=$(median <<<"${runs[$who $p]}")
  done; done
}

# One row per "model peer": peer pytorch is PyTorch eager (bf16: its autocast), peer torchsharp the plain TorchSharp
# ViT of benchmarks/peer/torchsharp-vit (bf16: casts in each Linear and the patch Conv2d, fp32 master weights).
table() {  # what title "model peer"...
  local what=$1 title=$2 row name peer; shift 2
  echo
  echo "## $title (images/s, median of $rounds)"
  printf '%-16s %-10s %9s %9s %9s %9s | %-14s %-14s %-14s\n' model peer "ours fp32" "ours bf16" "peer fp32" "peer bf16" \
    "ours/peer fp32" "ours bf16/peer" "ours bf16/peer"
  printf '%-16s %-10s %9s %9s %9s %9s | %-14s %-14s %-14s\n' "" "" "" "" "" "" "" "fp32" "bf16"
  for row in "$@"; do
    read -r name peer <<<"$row"
    local of=${med[$what $name ours float32]} ob=${med[$what $name ours bfloat16]}
    local pf=${med[$what $name $peer float32]} pb=${med[$what $name $peer bfloat16]}
    printf '%-16s %-10s %9s %9s %9s %9s | %-14s %-14s %-14s\n' "$name" "$peer" "$of" "$ob" "$pf" "$pb" \
      "$(ratio "$of" "$pf")" "$(ratio "$ob" "$pf")" "$(ratio "$ob" "$pb")"
  done
}

measure train-step fashion-mnist train_step.py "$fm --batch 128 --steps 20"
measure train-step vit-ti16@224 train_step.py "$ti --batch 32 --steps 5" "--batch 32 --steps 5"
table train-step "Training step: forward, loss, backward, clipping, AdamW, on ready tensors" "fashion-mnist pytorch" \
  "vit-ti16@224 pytorch" "vit-ti16@224 torchsharp"
echo "(issue 21: ours bf16 / the plain TorchSharp ViT's bf16 needs >= 1.5x)"

# Thread settings: above, both sides run 2 libtorch threads. PyTorch 1.13's OpenBLAS may start a thread per core too
# (its default); ours has one pool (libtorch 2.10's OpenMP, which its MKL and oneDNN share), so only PyTorch is run so.
echo
echo "## Threads: PyTorch with OpenBLAS at a thread per core (its default) against one, ViT-Ti/16@224 float32 train-step"
p=""
for ((r = 0; r < rounds; r++)); do
  p+=" $(OPENBLAS_NUM_THREADS=$(nproc) $py benchmarks/peer/train_step.py $ti --batch 32 --steps 5 --threads "$(nproc)" | ips)"
done
pm=$(median <<<"$p")
echo "PyTorch: $pm images/s with BLAS threads $(nproc) ($(ratio "$pm" "${med[train-step vit-ti16@224 pytorch float32]}") of BLAS 1)"
best=$(awk -v a="$pm" -v b="${med[train-step vit-ti16@224 pytorch float32]}" 'BEGIN {print (a > b) ? a : b}')
echo "ours fp32 / PyTorch fp32 at its better thread setting: $(ratio "${med[train-step vit-ti16@224 ours float32]}" "$best") (issue 21: >= 1.3x)"
echo "ours bf16 / PyTorch bf16: $(ratio "${med[train-step vit-ti16@224 ours bfloat16]}" "${med[train-step vit-ti16@224 pytorch bfloat16]}") (issue 21: >= 1.2x)"

measure score fashion-mnist score.py "$fm --batch 500 --runs 20"
measure score vit-ti16@224 score.py "$ti --batch 64 --runs 4" "--batch 64 --runs 4"
table score "Batch scoring: forward + softmax without autograd (PyTorch: no_grad; TorchSharp: inference_mode), on ready tensors" \
  "fashion-mnist pytorch" "vit-ti16@224 pytorch" "vit-ti16@224 torchsharp"
echo "(issue 21: ours bf16 / the plain TorchSharp ViT's bf16 needs >= 1.5x)"

# Training as users run it, on the same folder of JPEGs: ours LoadImages -> ResizeImages -> VitEstimator (its loader
# decoding and augmenting on the same cores); PyTorch's ImageFolder + DataLoader (one worker) + the same step.
echo
echo "## Training through the pipeline: 320 JPEGs 256x256 -> 224, Light augmentation, ViT-Ti/16, batch 32, last of 2 epochs"
fit_dir=$(mktemp -d)
for p in float32 bfloat16; do
  rm -rf "$fit_dir"/*
  line=$($bench fit --precision $p --images 320 --dir "$fit_dir")
  peer=$($py benchmarks/peer/fit.py --dir "$fit_dir" $threads --precision $p)
  v=$(ips <<<"$line"); med[fit ours $p]=$v; med[fit pytorch $p]=$(ips <<<"$peer")
  echo "$line"
  echo "$peer"
done
rm -rf "$fit_dir"
for p in float32 bfloat16; do
  echo "ours $p through the pipeline / PyTorch: its pipeline fp32 $(ratio "${med[fit ours $p]}" "${med[fit pytorch float32]}"), bf16 autocast $(ratio "${med[fit ours $p]}" "${med[fit pytorch bfloat16]}"); its train-step on ready tensors fp32 $(ratio "${med[fit ours $p]}" "${med[train-step vit-ti16@224 pytorch float32]}"), bf16 autocast $(ratio "${med[fit ours $p]}" "${med[train-step vit-ti16@224 pytorch bfloat16]}")"
  echo "ours $p through the ML.NET pipeline / ours on ready tensors (train-step above): $(ratio "${med[fit ours $p]}" "${med[train-step vit-ti16@224 ours $p]}") (needs >= 0.90)"
done

echo
echo "## Single-image latency, ViT-Ti/16@224 (ours: PredictionEngine.Predict with JPEG decode and resize; PyTorch: forward on a ready tensor),"
echo "## and batch scoring through the ML.NET pipeline (Transform over 512 JPEGs, warm) against ours on ready tensors"
for p in float32 bfloat16; do
  runs=""
  for ((r = 0; r < rounds; r++)); do
    line=$($bench predict --requests 200 --images 512 --precision $p)
    echo "$line"
    runs+=" $(ips <<<"$line")"
  done
  $py benchmarks/peer/score.py $ti $threads --batch 1 --runs 1 --latency 200 --precision $p | sed 's/.*; single-image/pytorch-eager single-image/'
  echo "ours $p scoring through the pipeline (median $(median <<<"$runs")) / on ready tensors: $(ratio "$(median <<<"$runs")" "${med[score vit-ti16@224 ours $p]}") (needs >= 0.50)"
done

# How a fitted ViT lives in an ML.NET model file: ours (the VitTransformer saved through ML.NET's ICanSaveModel) or
# ML.NET's own ONNX scorer over our export; each loaded with ml.Model.Load in a fresh context and measured.
echo
echo "## ML.NET model files: our transformer against ApplyOnnxModel on our export (ViT-Ti/16@224, 512 JPEGs)"
for p in float32 bfloat16; do
  $bench save-routes --images 512 --requests 100 --precision $p
done

# Model FLOP/s: the matrix products' FLOPs (benchmarks/peer/flops.py, x3 for a training step) times images/s, as a
# share of this machine's best square matmul in the same precision (fp32: BLAS sgemm; bf16: oneDNN).
echo
peak=$(OPENBLAS_NUM_THREADS=$(nproc) $py benchmarks/peer/peak.py --threads "$(nproc)")
echo "## Model FLOP/s as a share of peak matmul ($peak)"
pf32=$(sed -E 's/.*float32 ([0-9.]+).*/\1/' <<<"$peak"); pbf16=$(sed -E 's/.*bfloat16 ([0-9.]+).*/\1/' <<<"$peak")
printf '%-16s %-11s %-9s %12s %12s %14s\n' model work precision "GFLOP/image" "GFLOP/s ours" "share of peak"
for name in fashion-mnist vit-ti16@224; do
  [[ $name == fashion-mnist ]] && args=$fm || args=$ti
  f=$($py benchmarks/peer/flops.py $args)
  for what in train-step score; do
    [[ $what == train-step ]] && mult=3 || mult=1
    for p in float32 bfloat16; do
      [[ $p == float32 ]] && pk=$pf32 || pk=$pbf16
      awk -v f="$f" -v m=$mult -v ips="${med[$what $name ours $p]}" -v pk="$pk" -v n="$name" -v w="$what" -v p="$p" \
        'BEGIN {g = f * m / 1e9; printf "%-16s %-11s %-9s %12.3f %12.1f %13.0f%%\n", n, w, p, g, g * ips, 100 * g * ips / pk}'
    done
  done
done

# ATen's own kernels (LayerNorm, softmax, GELU, AdamW's pointwise ops) default to AVX2 in libtorch 1.13; the switch:
echo
echo "## ATEN_CPU_CAPABILITY=avx512 against the default (ours, ViT-Ti/16@224 train-step, median of $rounds)"
for p in float32 bfloat16; do
  d=""; a=""
  for ((r = 0; r < rounds; r++)); do
    d+=" $($bench train-step $ti --batch 32 --steps 5 $threads --precision $p | ips)"
    a+=" $(ATEN_CPU_CAPABILITY=avx512 $bench train-step $ti --batch 32 --steps 5 $threads --precision $p | ips)"
  done
  dm=$(median <<<"$d"); am=$(median <<<"$a")
  echo "$p: default $dm images/s, avx512 $am images/s, ratio $(ratio "$am" "$dm")"
done

# Batch scoring of our ONNX export in ONNX Runtime (Microsoft.ML.OnnxRuntime, CPU, intra-op threads = cores, in a
# process of its own), float32.
echo
echo "## ONNX Runtime on our export, ViT-Ti/16@224 batch 64 float32"
onnx_dir=$(mktemp -d)
ours=$($bench onnx --out "$onnx_dir/vit-ti16.onnx" --batch 64 --seconds 10)
ort=$($bench onnxruntime --model "$onnx_dir/vit-ti16.onnx" --batch 64 --seconds 10 --threads "$(nproc)")
rm -rf "$onnx_dir"
echo "$ours"
echo "$ort"
r=$(ips <<<"$ort")
echo "ONNX Runtime fp32 / ours: fp32 $(ratio "$r" "${med[score vit-ti16@224 ours float32]}"), bf16 $(ratio "$r" "${med[score vit-ti16@224 ours bfloat16]}")"

# Data-parallel training (issue 12): the Trainer on random in-memory images, one process with every core against one
# process per core joined by c10d/Gloo (loss scaled per rank, fp32 bucketed gradient allreduce each step); the whole
# batch is the same in both. Then what N hosts would give, from the measured step and allreduce times.
echo
echo "## Data parallel: 1 process x $(nproc) threads against $(nproc) processes x 1 thread (Trainer, median of $rounds)"
echo "(PyTorch: the same step under DistributedDataParallel over torch.distributed's gloo, benchmarks/peer/ddp_train.py)"
n=$(nproc)
printf '%-14s %-9s %10s %10s %7s %11s %9s %11s %15s\n' model precision "1x$n img/s" "${n}x1 img/s" ratio "pt ${n}x1" "ours/pt" "step ms 1x$n" "allreduce ms"
declare -A dist
for name in fashion-mnist vit-ti16@224; do
  [[ $name == fashion-mnist ]] && args="$fm --batch 256 --steps 20" || args="$ti --batch 32 --steps 5 --warmup 1"
  for p in bfloat16 float32; do
    one=""; many=""; peer=""; step=""; ar=""
    for ((r = 0; r < rounds; r++)); do
      l1=$($bench dist-train $args --world 1 --threads "$n" --precision $p)
      l2=$($bench dist-train $args --world "$n" --threads 1 --precision $p)
      l3=$($py benchmarks/peer/ddp_train.py $args --world "$n" --threads 1 --precision $p)
      one+=" $(ips <<<"$l1")"; many+=" $(ips <<<"$l2")"; peer+=" $(ips <<<"$l3")"
      step+=" $(sed -E 's/.*step ([0-9.]+) ms.*/\1/' <<<"$l1")"; ar+=" $(sed -E 's/.*allreduce ([0-9.]+) ms.*/\1/' <<<"$l2")"
    done
    o=$(median <<<"$one"); m=$(median <<<"$many"); q=$(median <<<"$peer"); s1=$(median <<<"$step"); a=$(median <<<"$ar")
    dist[$name $p]="$s1 $a"
    printf '%-14s %-9s %10s %10s %7s %11s %9s %11s %15s\n' "$name" "$p" "$o" "$m" "$(ratio "$m" "$o")" "$q" "$(ratio "$m" "$q")" "$s1" "$a"
  done
done
echo "Expected speedup on N hosts of $(nproc) cores each, T / (T/N + A * 2(N-1)/N): T the 1x$(nproc) step time, A the allreduce"
echo "time per step measured here between $(nproc) processes, grown as a ring allreduce's traffic (a network as fast as this one):"
for key in "fashion-mnist bfloat16" "vit-ti16@224 bfloat16"; do
  read -r s1 a <<<"${dist[$key]}"
  awk -v t="$s1" -v a="$a" -v k="$key" 'BEGIN {
    printf "%-24s", k;
    for (n = 2; n <= 16; n *= 2) { ring = a * 2 * (n - 1) / n; printf "  N=%d: %.2fx", n, t / (t / n + ring) }
    printf "\n" }'
done

# Does the image loader keep up? Decode + resize + Standard augmentation of 224x224 JPEGs with the default worker
# count, against what the fastest training (bf16) consumes.
echo
echo "## Image loader"
loader=$($bench loader --images 256 --epochs 2)
echo "$loader"
echo "loader / ViT-Ti/16 bf16 training consumption: $(ratio "$(ips <<<"$loader")" "${med[train-step vit-ti16@224 ours bfloat16]}") (needs >= 2x)"
