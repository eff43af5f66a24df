#!/bin/sh
# Runs the six grids of the second answer one after the other (or, with V2=DIR, the grids of DIR: v3/run_all.sh),
# 2 worker processes each, and logs
# command, machine, date and wall time to benchmarks/open_question/v2/run.log. Resumable: rerun it (finished
# units are skipped; V2=DIR runs the grids of another folder, as small/run.sh does). Order: the short "epochs"
# grids first, then the "fit" grids (much longer, see
# README.md "v2: sizing"). Pick some with GRIDS="digits-epochs digits-fit" sh v2/run_all.sh.
# Start it in the background:  nohup sh benchmarks/open_question/v2/run_all.sh > /dev/null 2>&1 &
set -e
cd "$(dirname "$0")/../../.."
V2=${V2:-benchmarks/open_question/v2}
BIN=${BIN:-.venv/bin}
JOBS=${JOBS:-2}
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(uname -srm), $(nproc) CPU cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), load average $(cut -d' ' -f1 /proc/loadavg)"
  echo "python: $($BIN/python -V 2>&1), torch $($BIN/python -c 'import torch; print(torch.__version__)'), sensprune $($BIN/python -c 'import sensprune; print(sensprune.__version__)')"
  echo "git: $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (+ uncommitted work tree)')"
} >> $V2/run.log
for g in ${GRIDS:-digits-epochs mnist1d-epochs fashion-mnist-epochs digits-fit mnist1d-fit fashion-mnist-fit}; do
  start=$(date +%s)
  echo "command: sensprune bench --config $V2/$g.toml --out $V2/$g --jobs $JOBS --resume --quiet" >> $V2/run.log
  $BIN/sensprune bench --config $V2/$g.toml --out $V2/$g --jobs $JOBS --resume --quiet > /dev/null
  echo "  $g done in $(( $(date +%s) - start )) s at $(date -u +%H:%M:%SZ)" >> $V2/run.log
done
