#!/usr/bin/env bash
# Runs one or more v2 grids on a lent machine's CPU cores (16 there), from the repository root:
#   GRIDS="mnist1d-epochs fashion-mnist-epochs" JOBS=16 LIMIT=520 bash benchmarks/open_question/v2/device_grid.sh
# The grids run one after the other with --resume, all within LIMIT seconds (each under `timeout` for what is
# left); whatever finished (units, warmups) is tarred into
# $OUT/v2_device.tgz, to be unpacked on the session machine and resumed there (finished units are skipped).
# Needs python3 with torch, numpy, scipy, scikit-learn, click, tqdm, matplotlib; .whl/ (the mnist1d wheel) and
# .data/fashion-mnist (the Debian package's files) carried from the session machine.
set -uo pipefail
cd "$(dirname "$0")/../../.."
V2=benchmarks/open_question/v2
OUTDIR=${OUT:-/tmp/v2_device}
mkdir -p "$OUTDIR"
PY=${PY:-python3}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
if [ -d .data/fashion-mnist ]; then export SENSPRUNE_FASHION_MNIST_DIR="$PWD/.data/fashion-mnist"; fi
if ls .whl/*.whl >/dev/null 2>&1; then
  $PY -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && export PYTHONPATH="$PYTHONPATH:/tmp/site"
fi
LOG="$OUTDIR/device_run.log"
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(uname -srm), $(nproc) CPU cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), GPU unused: $(nvidia-smi -L 2>/dev/null | head -1)"
  echo "python: $($PY -V 2>&1), torch $($PY -c 'import torch; print(torch.__version__)'), sensprune $($PY -c 'import sensprune; print(sensprune.__version__)')"
} >> "$LOG"
deadline=$(( $(date +%s) + ${LIMIT:-520} ))
for g in ${GRIDS:?name the grids}; do
  start=$(date +%s)
  left=$(( deadline - start ))
  [ "$left" -gt 30 ] || { echo "  $g skipped: no time left" >> "$LOG"; continue; }
  echo "command: timeout $left sensprune bench --config $V2/$g.toml --out $V2/$g --jobs ${JOBS:-16} --resume --quiet" >> "$LOG"
  timeout "$left" $PY -m sensprune bench --config "$V2/$g.toml" --out "$V2/$g" --jobs "${JOBS:-16}" --resume --quiet \
    > "$OUTDIR/${g//\//_}.out" 2>&1
  echo "  $g exit $? after $(( $(date +%s) - start )) s; $(ls "$V2/$g/units" 2>/dev/null | wc -l) unit entries" >> "$LOG"
done
tar czf "$OUTDIR/v2_device.tgz" $(for g in $GRIDS; do [ -d "$V2/$g" ] && echo "$V2/$g"; done) $V2/warmups 2>/dev/null
ls -la "$OUTDIR"
