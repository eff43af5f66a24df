#!/usr/bin/env bash
# The device check: ONE script for a lent GPU machine (one GPU, 16 CPU cores), its parts as arguments.
#   bash benchmarks/device_check.sh [PART ...]      # default: machine cifar overhead scale ddp (about 4-5 min)
#   bash benchmarks/device_check.sh all             # every part below, unrolled-cpu in the background
#   OUT=/some/folder bash benchmarks/device_check.sh   # also writes the report to /some/folder/device_check.txt
#   GPU_CHECK_TINY=1 bash benchmarks/device_check.sh   # dry run on CPU, tiny sizes (what the tests run)
# Without a CUDA device (and without GPU_CHECK_TINY=1) it refuses with one line and writes nothing.
# Python: $PY if set, else the repository's .venv if it exists, else python3 (torch, torchvision, click, tqdm,
# numpy, scipy, scikit-learn, matplotlib; the source tree is put on PYTHONPATH, no install needed). Optional,
# carried from the session machine: .data/fashion-mnist (the Debian package's files) and .whl/ (the mnist1d wheel).
# Parts (each under its own time limit; a failing part is reported and does not stop the others), with the
# committed output each one made:
#   machine       card, torch, cores
#   cifar         benchmarks/device_check/cifar.py: online measures / plain training, CIFAR-10-sized, amp none/bf16
#   overhead      benchmarks/overhead.py online on the device            (these five: benchmarks/gpu_check.txt)
#   scale         benchmarks/scale/run.py at 1M examples
#   ddp           1 GPU vs 2 GPUs through torchrun (skipped with one GPU)
#   api           benchmarks/device_check/api_cuda.py: train() RNG and sp.score vs the Tracker on CUDA
#                 (benchmarks/api_cuda_check.txt)
#   cuda-paths    benchmarks/device_check/cuda_paths.py: NCCL collectives, CUDA RNG in checkpoints
#                 (benchmarks/cuda_paths_check.txt)
#   gpu-scale     benchmarks/unrolled_accuracy/gpu_scale.py -> $OUT/gpu_scale.txt
#                 (benchmarks/unrolled_accuracy/gpu_scale.txt)
#   engine        benchmarks/engine/run.py --part time on CUDA: resnet18 + AdamW + crop-flip, 50 000 x 3x32x32,
#                 10 epochs, K = 16; ratio to plain training and peak GPU memory -> $OUT/engine_gpu.txt
#                 (no committed output yet)
#   unrolled-cpu  benchmarks/unrolled_accuracy/run.py on the CPU cores (12 processes x 1 thread), in the
#                 background while the GPU parts run -> $OUT/unrolled_accuracy.{txt,json}
#                 (benchmarks/unrolled_accuracy/results.txt)
# To add a part: define section_NAME, add its name to PARTS and a line to the case at the bottom.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${PY:-}" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1  # a section stopped at its limit still shows what it printed
TINY=${GPU_CHECK_TINY:-0}
PARTS="machine cifar overhead scale ddp api cuda-paths gpu-scale engine unrolled-cpu"
case "${1:-}" in -h|--help) sed -n '2,/^# To add/p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;; esac
if [ $# -eq 0 ]; then set -- machine cifar overhead scale ddp; fi
if [ "$*" = all ]; then set -- $PARTS; fi
for p in "$@"; do
  case " $PARTS " in *" $p "*) ;; *) echo "Error: PART must be one of all, ${PARTS// /, }; got $p" >&2; exit 2 ;; esac
done
if [ "$TINY" != 1 ] && ! $PY -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "Error: torch sees no CUDA device; GPU_CHECK_TINY=1 runs a CPU dry run at toy sizes." >&2; exit 1
fi
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
if [ -n "${OUT:-}" ]; then
  mkdir -p "$OUT"
  exec > >(tee "$OUT/device_check.txt") 2>&1
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
}

section_cifar() {  # online measures ÷ plain training, with and without --amp bf16
  if [ "$TINY" = 1 ]; then
    $PY benchmarks/device_check/cifar.py --tiny
  else
    $PY benchmarks/device_check/cifar.py --n 50000 --epochs 2 --repeats 2
  fi
}

section_overhead() {  # the committed CPU settings of benchmarks/overhead.py, on the device
  if [ "$TINY" = 1 ]; then
    $PY benchmarks/overhead.py online --quick --repeats 1 --settings digits --device cpu
    return
  fi
  settings=digits
  [ -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && settings=digits,fashion-mnist \
    || echo "  (Fashion-MNIST files absent on this machine: digits only)"
  $PY benchmarks/overhead.py online --device cuda --repeats 3 --fmnist-repeats 2 --settings $settings
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

section_api() {  # train() RNG on CUDA, sp.score vs the Tracker on CUDA
  $PY benchmarks/device_check/api_cuda.py "$([ "$TINY" = 1 ] && echo cpu || echo cuda)"
}

section_cuda_paths() {  # NCCL collectives, CUDA RNG in checkpoints (prints SKIP without CUDA)
  $PY benchmarks/device_check/cuda_paths.py
}

section_gpu_scale() {  # the default loss_sensitivity at the digits size and 10x
  local out=${OUT:-$TMP}
  $PY benchmarks/unrolled_accuracy/gpu_scale.py $([ "$TINY" = 1 ] && echo "--tiny --device cpu") ${GPU_SCALE_ARGS:-} \
    > "$out/gpu_scale.txt" 2>&1; rc=$?
  tail -n 20 "$out/gpu_scale.txt"; return $rc
}

section_engine() {  # the loss_sensitivity engine on a CIFAR-10-sized resnet18 (the engine's prepared GPU check)
  if [ "$TINY" = 1 ]; then
    $PY benchmarks/engine/run.py --part time --device cpu --n 256 --hw 8 --epochs 1 --batch-size 64 --probe-size 64 \
      --threads 1
    return
  fi
  $PY benchmarks/engine/run.py --part time --device cuda --n 50000 --hw 32 --epochs 10 --batch-size 128 \
    --probe-size 2048 --threads 8 | tee "${OUT:-$TMP}/engine_gpu.txt"
}

start_unrolled_cpu() {  # background: not a timed section; it runs beside the GPU parts, under CPU_LIMIT
  local out=${OUT:-$TMP}
  timeout "${CPU_LIMIT:-540}" $PY benchmarks/unrolled_accuracy/run.py --jobs "${CPU_JOBS:-12}" --threads 1 \
    ${UA_ARGS:-} --save "$out/unrolled_accuracy.json" > "$out/unrolled_accuracy.txt" 2> "$out/unrolled_accuracy.err" &
  CPU_PID=$!
  echo; echo "## unrolled-cpu: benchmarks/unrolled_accuracy/run.py started in the background -> $out/unrolled_accuracy.txt"
}

if [ -d .data/fashion-mnist ]; then export SENSPRUNE_FASHION_MNIST_DIR="$PWD/.data/fashion-mnist"; fi
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --target "$TMP/site" .whl/*.whl && export PYTHONPATH="$PYTHONPATH:$TMP/site"
fi
export OUT="${OUT:-}"
echo "# sensprune device check$([ "$TINY" = 1 ] && echo ' — TINY CPU dry run, numbers meaningless'): $*"
CPU_PID=
case " $* " in *" unrolled-cpu "*) start_unrolled_cpu ;; esac
for p in "$@"; do
  case $p in
    machine) run_section "0. machine" 30 section_machine ;;
    cifar) run_section "1. CIFAR-10-sized synthetic (50 000 x 3x32x32): online measures ÷ plain, amp none/bf16" \
      300 section_cifar ;;
    overhead) run_section "2. committed overhead settings on the device (benchmarks/overhead.py online)" 60 section_overhead ;;
    scale) run_section "3. throughput at 1M examples (benchmarks/scale/run.py)" 60 section_scale ;;
    ddp) run_section "4. DDP equivalence (torchrun)" 30 section_ddp ;;
    api) run_section "5. api: train() RNG and sp.score vs the Tracker on the device" 60 section_api ;;
    cuda-paths) run_section "6. cuda-paths: NCCL collectives, CUDA RNG in checkpoints" 60 section_cuda_paths ;;
    gpu-scale) run_section "7. gpu-scale: the default loss_sensitivity at the digits size and 10x" 120 section_gpu_scale ;;
    engine) run_section "8. engine: resnet18 CIFAR-10-sized, ratio to plain and peak GPU memory" 300 section_engine ;;
    unrolled-cpu) ;;
  esac
done
if [ -n "$CPU_PID" ]; then wait "$CPU_PID"; echo "## unrolled-cpu finished (exit $?)"; fi
