#!/usr/bin/env bash
# GPU check (issue 7): run on a machine with a CUDA device, from the repository root, after `make venv`.
#   bash benchmarks/gpu_check.sh            # writes benchmarks/gpu_check.txt
# Measures: the scoring overhead ratios on CUDA, a CIFAR-10-sized synthetic run (50k x 3x32x32, cnn and
# resnet18, plain and --amp bf16), and, with more than one GPU, torchrun DDP equivalence to one process.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
OUT=${OUT:-benchmarks/gpu_check.txt}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
{
  echo "# sensprune GPU check, $(date -u +%Y-%m-%dT%H:%MZ)"
  $PY -c "import torch; print('torch', torch.__version__, '| GPUs:', torch.cuda.device_count(), '|', torch.cuda.get_device_name())"
  nproc | sed 's/^/CPU cores: /'

  echo; echo "## 1. scoring overhead ratios on CUDA"
  [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] || apt-get install -y dataset-fashion-mnist >/dev/null 2>&1 || true
  $PY benchmarks/overhead.py --device cuda --repeats 3

  echo; echo "## 2. CIFAR-10-sized synthetic data (50 000 x 3x32x32, 10 classes), 3 epochs"
  $PY - "$TMP/cifar.npz" <<'PYEOF'
import sys, numpy as np
rng = np.random.default_rng(0)
c = rng.integers(0, 256, size=(10, 3, 32, 32))
def split(n):
    y = rng.integers(0, 10, n)
    x = np.clip(c[y] * 0.5 + rng.integers(0, 128, size=(n, 3, 32, 32)), 0, 255).astype(np.uint8)
    return x, y
xt, yt = split(50000); xs, ys = split(10000)
np.savez(sys.argv[1], x_train=xt, y_train=yt, x_test=xs, y_test=ys)
PYEOF
  for model in cnn resnet18; do
    for amp in none bf16; do
      extra=""; [ "$model" = resnet18 ] && extra="--at-checkpoints 3"
      start=$(date +%s.%N)
      $PY -m sensprune score --dataset "npz:$TMP/cifar.npz" --model $model --epochs 3 --batch-size 256 \
        --device cuda --amp $amp $extra --quiet --out "$TMP/s-$model-$amp" | grep -E "seed 0|wrote"
      echo "  $model amp=$amp: $(echo "$(date +%s.%N) - $start" | bc) s wall"
    done
  done

  n=$($PY -c "import torch; print(torch.cuda.device_count())")
  echo; echo "## 3. DDP equivalence (torchrun, $n GPUs)"
  if [ "$n" -gt 1 ]; then
    $PY -m sensprune score --dataset "npz:$TMP/cifar.npz" --model cnn --epochs 2 --device cuda --quiet --out "$TMP/one" >/dev/null
    .venv/bin/torchrun --nproc_per_node 2 -m sensprune score --dataset "npz:$TMP/cifar.npz" --model cnn --epochs 2 \
      --device cuda --quiet --out "$TMP/two" >/dev/null
    $PY - "$TMP/one" "$TMP/two" <<'PYEOF'
import sys, numpy as np
from sensprune.score_table import load_scores
a, b = load_scores(sys.argv[1]), load_scores(sys.argv[2])
for m in a.measures:
    d = np.abs(a.scores[m] - b.scores[m]).max() / (np.abs(a.scores[m]).max() + 1e-12)
    print(f"  {m:<12} max relative difference 1 GPU vs 2 GPUs: {d:.2e}")
PYEOF
  else
    echo "  skipped: one GPU"
  fi
} 2>&1 | tee "$OUT"

# issue 13, item 10: collectives under NCCL get tensors on devices the backend takes; checkpoints restore the
# CUDA RNG (dropout resume is exact). Appended to the same output file.
{ echo; echo "## 4. CUDA paths (benchmarks/cuda_paths_check.py)"; $PY benchmarks/cuda_paths_check.py; } 2>&1 | tee -a "$OUT"
