#!/bin/sh
# Runs the grids of the third answer one after the other, 2 worker processes each, logging command, machine,
# date, commit and wall time to benchmarks/open_question/v3/run.log: the second answer's runner
# (../v2/run_all.sh) pointed at this folder. Resumable: rerun it (finished units are skipped).
# Pick some with GRIDS="digits-fit digits-fitsteps" sh benchmarks/open_question/v3/run_all.sh.
# Start it in the background:  nohup sh benchmarks/open_question/v3/run_all.sh > /dev/null 2>&1 &
set -e
cd "$(dirname "$0")/../../.."
V2=benchmarks/open_question/v3 \
GRIDS=${GRIDS:-"digits-fitsteps digits-fit digits-fitsteps-warmfit mnist1d-fitsteps mnist1d-fit mnist1d-fitsteps-warmfit fashion-mnist-fitsteps"} \
  exec sh benchmarks/open_question/v2/run_all.sh
