#!/bin/bash
# CLI start-up wall time (issue 14 item 3: under 1 s on an idle machine; no torch import for --help, usage
# errors, info, prune, bench-merge, report -- checked by tests/test_cli_startup.py, not timed there).
# Usage: benchmarks/cli_startup.sh > benchmarks/cli_startup.txt   (7 runs per command, median and min)
cd "$(dirname "$0")/.."
BIN=${BIN:-.venv/bin}
echo "command: benchmarks/cli_startup.sh"
echo "date: $(date -u '+%Y-%m-%d %H:%M UTC'); $(nproc) CPU cores, $(uname -m), no GPU; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
for cmd in "--help" "prune --help" "score --help" "info --help" "prune" "nope"; do
  ts=()
  for _ in 1 2 3 4 5 6 7; do
    s=$(date +%s.%N); $BIN/sensprune $cmd >/dev/null 2>&1; e=$(date +%s.%N)
    ts+=("$(echo "$e - $s" | bc)")
  done
  sorted=$(printf '%s\n' "${ts[@]}" | sort -n)
  printf 'sensprune %-14s median %.3f s  min %.3f s\n' "$cmd" "$(sed -n 4p <<<"$sorted")" "$(sed -n 1p <<<"$sorted")"
done
s=$(date +%s.%N); $BIN/python -c "import torch"; e=$(date +%s.%N)
printf 'for comparison, python -c "import torch": %.3f s (once)\n' "$(echo "$e - $s" | bc)"
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
