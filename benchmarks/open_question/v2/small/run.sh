#!/bin/sh
# The small digits grids of the second answer, both budgets; logs command, machine, date, wall time to run.log.
set -e
cd "$(dirname "$0")/../../../.."
S=benchmarks/open_question/v2/small
BIN=${BIN:-.venv/bin}
JOBS=${JOBS:-2}
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(uname -srm), $(nproc) CPU cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), no GPU, load average $(cut -d' ' -f1 /proc/loadavg) (shared with other jobs)"
  echo "python: $($BIN/python -V 2>&1), torch $($BIN/python -c 'import torch; print(torch.__version__)'), sensprune $($BIN/python -c 'import sensprune; print(sensprune.__version__)')"
  echo "git: $(git rev-parse --short HEAD 2>/dev/null)$(git diff --quiet 2>/dev/null || echo ' (+ uncommitted work tree)')"
} >> $S/run.log
for g in ${GRIDS:-digits-epochs digits-fit}; do
  start=$(date +%s)
  echo "command: sensprune bench --config $S/$g.toml --out $S/$g --jobs $JOBS --resume --quiet" >> $S/run.log
  $BIN/sensprune bench --config $S/$g.toml --out $S/$g --jobs $JOBS --resume --quiet > /dev/null
  echo "  $g done in $(( $(date +%s) - start )) s at $(date -u +%H:%M:%SZ)" >> $S/run.log
done
