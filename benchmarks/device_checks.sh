#!/usr/bin/env bash
# The one prepared script for a lent GPU machine (one GPU, 16 CPU cores), from the repository root:
#   bash benchmarks/device_checks.sh        # outputs into $OUT if set, else benchmarks/device/
# Needs python3 with torch, numpy, scipy, scikit-learn, click, tqdm, matplotlib (PY=... to choose another).
# Optional, carried from the session machine: .data/fashion-mnist (the Debian package's files, for the
# paper-like setting and the Fashion-MNIST overhead setting) and .whl/ (the mnist1d wheel).
#   1. background, CPU (12 processes x 1 torch thread): benchmarks/unrolled_accuracy/run.py, every setting;
#   2. GPU: benchmarks/unrolled_accuracy/gpu_scale.py (the default loss_sensitivity at the digits size and 10x);
#   3. GPU: benchmarks/gpu_check.sh (online-measure ratios on CUDA, CIFAR-10-sized ResNet-18 with and without
#      --amp bf16, examples/s, CUDA paths of distributed and checkpoint).
set -uo pipefail
cd "$(dirname "$0")/.."
OUTDIR=${OUT:-benchmarks/device}
mkdir -p "$OUTDIR"
PY=${PY:-python3}
CPU_LIMIT=${CPU_LIMIT:-540}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -d .data/fashion-mnist ]; then export SENSPRUNE_FASHION_MNIST_DIR="$PWD/.data/fashion-mnist"; fi
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
{ nproc; nvidia-smi -L 2>/dev/null; $PY -c "import torch; print('torch', torch.__version__)"; } > "$OUTDIR/machine.txt" 2>&1
timeout "$CPU_LIMIT" $PY benchmarks/unrolled_accuracy/run.py --jobs "${CPU_JOBS:-12}" --threads 1 \
  ${UA_ARGS:-} --save "$OUTDIR/unrolled_accuracy.json" > "$OUTDIR/unrolled_accuracy.txt" 2> "$OUTDIR/unrolled_accuracy.err" &
cpu=$!
$PY benchmarks/unrolled_accuracy/gpu_scale.py ${GPU_SCALE_ARGS:-} > "$OUTDIR/gpu_scale.txt" 2>&1
PY=$PY OUT="$OUTDIR" bash benchmarks/gpu_check.sh > /dev/null 2>&1  # writes $OUTDIR/gpu_check.txt
wait $cpu
echo "done: $(ls "$OUTDIR")"
