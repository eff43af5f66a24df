#!/bin/sh
# The equal-steps variant of the open-question grids (benchmarks/open_question/archive/steps/*.toml); resumable.
set -e
cd "$(dirname "$0")/../../.."
OQ=benchmarks/open_question/archive
BIN=${BIN:-.venv/bin}
echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ) (steps budget; same machine)" >> $OQ/steps/run.log
for ds in ${DATASETS:-digits mnist1d fashion-mnist}; do
  start=$(date +%s)
  echo "command: sensprune bench --config $OQ/steps/$ds.toml --out $OQ/steps/$ds --jobs 2 --resume --quiet" >> $OQ/steps/run.log
  $BIN/sensprune bench --config $OQ/steps/$ds.toml --out $OQ/steps/$ds --jobs 2 --resume --quiet > /dev/null
  echo "  $ds done in $(( $(date +%s) - start )) s at $(date -u +%H:%M:%SZ)" >> $OQ/steps/run.log
done
$BIN/python $OQ/make_table.py $OQ/steps/digits $OQ/steps/mnist1d $OQ/steps/fashion-mnist > $OQ/steps/TABLE.md
echo "table: $OQ/steps/TABLE.md" >> $OQ/steps/run.log
