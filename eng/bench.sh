#!/usr/bin/env bash
# Training-step throughput of Vit for .NET next to PyTorch eager (Debian's python3-torch), same model, sizes,
# data and machine, run one after the other, for several thread settings. Prints images/s and the ratio.
#   bash eng/bench.sh            # Fashion-MNIST example model and ViT-Ti/16 at 224
set -euo pipefail
cd "$(dirname "$0")/.."
bash eng/install-deps.sh >/dev/null
dotnet build benchmarks/Vit.Benchmarks -c Release -nologo -v q >/dev/null
py=/usr/bin/python3
echo "CPU: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores"
dn="dotnet benchmarks/Vit.Benchmarks/bin/Release/net10.0/Vit.Benchmarks.dll train-step"
configs=(
  "fashion-mnist example|--image 28 --channels 1 --patch 7 --dim ${FM_DIM:-96} --depth ${FM_DEPTH:-4} --heads 4 --mlp $(( ${FM_DIM:-96} * 2 )) --classes 10 --batch 128 --steps 20"
  "ViT-Ti/16 @224|--image 224 --channels 3 --patch 16 --dim 192 --depth 12 --heads 3 --mlp 768 --classes 1000 --batch 32 --steps 5"
)
threads=${THREADS:-"2/1 2/2 1/1"}
printf '%-22s %-8s %12s %12s %8s\n' model threads "vit-dotnet" "pytorch" ratio
for entry in "${configs[@]}"; do
  name=${entry%%|*}; args=${entry#*|}
  for tb in $threads; do
    t=${tb%/*}; b=${tb#*/}
    ours=$($dn $args --threads "$t" --blas-threads "$b" | sed -E 's/.*images\/s ([0-9.]+).*/\1/')
    peer=$(OPENBLAS_NUM_THREADS=$b $py benchmarks/peer/train_step.py $args --threads "$t" --blas-threads "$b" | sed -E 's/.*images\/s ([0-9.]+).*/\1/')
    printf '%-22s %-8s %12s %12s %8s\n' "$name" "$tb" "$ours" "$peer" "$(awk -v a="$ours" -v b="$peer" 'BEGIN{printf "%.2f", a/b}')"
  done
done

# Does the image loader keep up with training? Decode + resize + Standard augmentation of 224x224 JPEGs with the
# default worker count, next to the ViT-Ti/16 training step at 224 (default threads).
loader=$(dotnet benchmarks/Vit.Benchmarks/bin/Release/net10.0/Vit.Benchmarks.dll loader --images 256 --epochs 2)
train=$($dn --image 224 --channels 3 --patch 16 --dim 192 --depth 12 --heads 3 --mlp 768 --classes 1000 --batch 32 --steps 5)
echo "$loader"
echo "$train"
l=$(sed -E 's/.*images\/s ([0-9.]+).*/\1/' <<<"$loader"); t=$(sed -E 's/.*images\/s ([0-9.]+).*/\1/' <<<"$train")
echo "loader / ViT-Ti/16 training consumption: $(awk -v a="$l" -v b="$t" 'BEGIN{printf "%.1fx", a/b}') (needs >= 2x)"

# Serving: single-image latency through PredictionEngine (JPEG decode + resize + forward) and batch scoring,
# next to PyTorch eager's forward on ready tensors (a lower bound: no decoding).
dotnet benchmarks/Vit.Benchmarks/bin/Release/net10.0/Vit.Benchmarks.dll predict --requests 200 --images 256
OPENBLAS_NUM_THREADS=1 $py benchmarks/peer/infer.py 2

# Batch scoring on ready tensors, ViT-Ti/16 at 224, batch 64: our forward, and our ONNX export of the same model in
# ONNX Runtime (onnxruntime-node, CPU, 2 intra-op threads), one after the other.
onnx_dir=$(mktemp -d)
ours=$(dotnet benchmarks/Vit.Benchmarks/bin/Release/net10.0/Vit.Benchmarks.dll onnx --out "$onnx_dir/vit-ti16.onnx" --batch 64 --seconds 10)
ort=$(node eng/onnxruntime/run.js --bench "$onnx_dir/vit-ti16.onnx" 64,3,224,224 10 "$(nproc)")
rm -rf "$onnx_dir"
echo "$ours"
echo "onnxruntime forward ViT-Ti/16@224 batch 64: $ort"
o=$(sed -E 's/.*images\/s ([0-9.]+).*/\1/' <<<"$ours"); r=$(sed -E 's/.*"images_per_second":([0-9.]+).*/\1/' <<<"$ort")
echo "batch-64 scoring, vit-dotnet / ONNX Runtime: $(awk -v a="$o" -v b="$r" 'BEGIN{printf "%.2f", a/b}')"
