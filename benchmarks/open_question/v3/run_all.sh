#!/bin/sh
# Runs the grids of the third answer one after the other, 2 worker processes each, and logs command, machine,
# date and wall time to benchmarks/open_question/v3/run.log. Resumable: rerun it (finished units are skipped).
# Pick some with GRIDS="digits-fit digits-fitsteps" sh benchmarks/open_question/v3/run_all.sh.
# Start it in the background:  nohup sh benchmarks/open_question/v3/run_all.sh > /dev/null 2>&1 &
set -e
cd "$(dirname "$0")/../../.."
V3=benchmarks/open_question/v3
BIN=${BIN:-.venv/bin}
JOBS=${JOBS:-2}
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(uname -srm), $(nproc) CPU cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), no GPU, load average $(cut -d' ' -f1 /proc/loadavg)"
  echo "python: $($BIN/python -V 2>&1), torch $($BIN/python -c 'import torch; print(torch.__version__)')"
  echo "git: $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (+ uncommitted work tree)')"
} >> $V3/run.log
for g in ${GRIDS:-digits-fitsteps digits-fit digits-fitsteps-warmfit mnist1d-fitsteps mnist1d-fit mnist1d-fitsteps-warmfit}; do
  start=$(date +%s)
  echo "command: sensprune bench --config $V3/$g.toml --out $V3/$g --jobs $JOBS --resume --quiet" >> $V3/run.log
  $BIN/sensprune bench --config $V3/$g.toml --out $V3/$g --jobs $JOBS --resume --quiet > /dev/null
  echo "  $g done in $(( $(date +%s) - start )) s at $(date -u +%H:%M:%SZ)" >> $V3/run.log
done
