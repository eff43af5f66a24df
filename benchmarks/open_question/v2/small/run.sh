#!/bin/sh
# The small digits grids of the second answer, both budgets; logs command, machine, date, wall time to run.log
# (the logging and the loop are ../run_all.sh's, pointed at this folder).
cd "$(dirname "$0")" && V2=benchmarks/open_question/v2/small GRIDS=${GRIDS:-"digits-epochs digits-fit"} exec sh ../run_all.sh
