#!/usr/bin/env bash
# The GPU check of the loss_sensitivity engine (prepared; run it when a device is lent):
# resnet18 + AdamW + crop-flip, 50 000 x 3x32x32 (CIFAR-10-sized synthetic data), 10 epochs, K = 16; prints the
# time ratio against plain training and the peak GPU memory. Output: benchmarks/engine/gpu.txt (or $OUT/gpu.txt).
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-benchmarks/engine}
$PY benchmarks/engine/run.py --part time --device cuda --n 50000 --hw 32 --epochs 10 --batch-size 128 \
    --probe-size 2048 --threads 8 | tee "$OUT/gpu.txt"
