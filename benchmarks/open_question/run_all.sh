#!/bin/sh
# Runs the committed open-question grids one dataset after the other (2 worker processes each) and
# logs command, machine, date and wall time to benchmarks/open_question/run.log. Resumable: rerun it.
set -e
cd "$(dirname "$0")/../.."
OQ=benchmarks/open_question
BIN=${BIN:-.venv/bin}
{
  echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
  echo "machine: $(uname -srm), $(nproc) CPU cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')), no GPU"
  echo "python: $($BIN/python -V 2>&1), torch $($BIN/python -c 'import torch; print(torch.__version__)'), sensprune $($BIN/python -c 'import sensprune; print(sensprune.__version__)')"
  echo "git: $(git rev-parse --short HEAD 2>/dev/null) (+ uncommitted work tree)"
} >> $OQ/run.log
for ds in ${DATASETS:-digits mnist1d fashion-mnist}; do
  start=$(date +%s)
  echo "command: sensprune bench --config $OQ/$ds.toml --out $OQ/$ds --jobs 2 --resume --quiet" >> $OQ/run.log
  $BIN/sensprune bench --config $OQ/$ds.toml --out $OQ/$ds --jobs 2 --resume --quiet > /dev/null
  echo "  $ds done in $(( $(date +%s) - start )) s at $(date -u +%H:%M:%SZ)" >> $OQ/run.log
done
$BIN/python $OQ/archive/make_table.py $OQ/digits $OQ/mnist1d $OQ/fashion-mnist > $OQ/TABLE.md
echo "table: $OQ/TABLE.md" >> $OQ/run.log
