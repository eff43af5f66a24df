#!/usr/bin/env bash
# GPU check (issues 7 and 14): ONE script, about 4-5 minutes on one H100/H200 with 16 CPU cores (the section
# limits below add up to 8 minutes at most).
# Run from anywhere on a machine with a CUDA device. Python: $PY if set, else the repository's .venv if it
# exists, else python3 (a machine with torch, torchvision, click, tqdm, numpy, scipy, scikit-learn installed;
# the source tree is put on PYTHONPATH, no install needed):
#   bash benchmarks/gpu_check.sh                  # prints the report
#   OUT=/some/folder bash benchmarks/gpu_check.sh # also writes it to /some/folder/gpu_check.txt
#   GPU_CHECK_TINY=1 bash benchmarks/gpu_check.sh # dry run on CPU, tiny sizes (what the tests run)
# Sections are functions called in order at the bottom; each runs under its own time limit and a failing
# section is reported and does not stop the others. To add a section: define section_NAME and append
# `run_section "title" LIMIT_S section_NAME` at the end of the file.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1  # a section stopped at its limit still shows what it printed
TINY=${GPU_CHECK_TINY:-0}
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  exec > >(tee "$OUT/gpu_check.txt") 2>&1
  TEE_PID=$!
  # at exit, close our end of the pipe and wait until tee has written the whole report
  trap 'rm -rf "$TMP"; exec 1>&- 2>&-; wait "$TEE_PID" 2>/dev/null' EXIT
fi
START=$(date +%s)

run_section() {  # run_section "title" LIMIT_S function
  local title=$1 limit=$2 fn=$3 t0 rc
  echo; echo "## $title"
  t0=$(date +%s)
  export -f "$fn"
  timeout --kill-after=10 "$limit" bash -c "$fn"
  rc=$?
  [ $rc -eq 124 ] && echo "  (section stopped at its ${limit} s limit)"
  [ $rc -ne 0 ] && [ $rc -ne 124 ] && echo "  (section failed, exit $rc)"
  echo "  [section: $(( $(date +%s) - t0 )) s; total so far $(( $(date +%s) - START )) s]"
}
export PY TINY TMP

section_machine() {
  echo "date $(date -u +%Y-%m-%dT%H:%MZ); $(nproc) CPU cores; load average $(cut -d' ' -f1-3 /proc/loadavg)"
  echo "python: $PY ($($PY -c 'import sys; print(sys.version.split()[0])'))"
  nvidia-smi -L 2>/dev/null || echo "nvidia-smi: not available"
  $PY -c "import torch; print('torch', torch.__version__, '| CUDA', torch.version.cuda, '| GPUs:',
torch.cuda.device_count(), '|', torch.cuda.get_device_name() if torch.cuda.is_available() else 'no CUDA device')"
  if [ "$TINY" != 1 ] && ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)"; then
    echo "Error: torch sees no CUDA device; use GPU_CHECK_TINY=1 for a CPU dry run."; exit 1
  fi
}

section_cifar() {  # issue 14 item 5: online measures ÷ plain training, with and without --amp bf16
  if [ "$TINY" = 1 ]; then
    $PY benchmarks/gpu_check.py --tiny
  else
    $PY benchmarks/gpu_check.py --n 50000 --epochs 2 --repeats 2
  fi
}

section_overhead() {  # the committed CPU settings of benchmarks/overhead.py, on the device
  if [ "$TINY" = 1 ]; then
    $PY benchmarks/overhead.py --quick --repeats 1 --settings digits --device cpu
    return
  fi
  settings=digits
  [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && settings=digits,fashion-mnist \
    || echo "  (Fashion-MNIST files absent on this machine: digits only)"
  $PY benchmarks/overhead.py --device cuda --repeats 3 --fmnist-repeats 2 --settings $settings
}

section_scale() {  # throughput of scoring on the 1M synthetic set (benchmarks/scale)
  if [ "$TINY" = 1 ]; then
    $PY benchmarks/scale/run.py --sizes 20000 --epochs 1 --device cpu
  else
    $PY benchmarks/scale/run.py --sizes 1000000 --epochs 2 --device cuda
  fi
}

section_ddp() {  # data-parallel equivalence, only with more than one GPU
  n=$($PY -c "import torch; print(torch.cuda.device_count())")
  if [ "$TINY" = 1 ] || [ "$n" -lt 2 ]; then echo "  skipped: $n GPU(s)"; return; fi
  $PY - "$TMP/cifar.npz" <<'PYEOF'
import sys, numpy as np
rng = np.random.default_rng(0)
c = rng.integers(0, 256, size=(10, 3, 32, 32))
def split(n):
    y = rng.integers(0, 10, n)
    return np.clip(c[y] * 0.5 + rng.integers(0, 128, size=(n, 3, 32, 32)), 0, 255).astype(np.uint8), y
(xt, yt), (xs, ys) = split(20000), split(2000)
np.savez(sys.argv[1], x_train=xt, y_train=yt, x_test=xs, y_test=ys)
PYEOF
  $PY -m sensprune score --dataset "npz:$TMP/cifar.npz" --model cnn --epochs 2 --device cuda --quiet --out "$TMP/one" >/dev/null
  $PY -m torch.distributed.run --nproc_per_node 2 -m sensprune score --dataset "npz:$TMP/cifar.npz" --model cnn --epochs 2 \
    --device cuda --quiet --out "$TMP/two" >/dev/null
  $PY - "$TMP/one" "$TMP/two" <<'PYEOF'
import sys, numpy as np
from sensprune.scoring.table import load_scores
a, b = load_scores(sys.argv[1]), load_scores(sys.argv[2])
for m in a.measures:
    d = np.abs(a.scores[m] - b.scores[m]).max() / (np.abs(a.scores[m]).max() + 1e-12)
    print(f"  {m:<12} max relative difference 1 GPU vs 2 GPUs: {d:.2e}")
PYEOF
}

echo "# sensprune GPU check$([ "$TINY" = 1 ] && echo ' — TINY CPU dry run, numbers meaningless')"
run_section "0. machine" 30 section_machine
run_section "1. CIFAR-10-sized synthetic (50 000 x 3x32x32): online measures ÷ plain, amp none/bf16" 300 section_cifar
run_section "2. committed overhead settings on the device (benchmarks/overhead.py)" 60 section_overhead
run_section "3. throughput at 1M examples (benchmarks/scale/run.py)" 60 section_scale
run_section "4. DDP equivalence (torchrun)" 30 section_ddp
# --- further sections (appended by others) go below this line --------------------------------------------
