#!/usr/bin/env bash
# Headless-browser check of `sensprune report` on the digits demo.
#
#   benchmarks/report_screenshot.sh [SCREENSHOT.png]     (default: benchmarks/report_digits.png)
#
# 1. sensprune score --dataset digits --epochs 15 --seeds 2   (EPOCHS / SEEDS override, SCORE_ARGS adds options)
# 2. sensprune report on it
# 3. chromium --headless: a screenshot of the page, and --dump-dom; the page's inline script sets
#    <body data-images-ok="yes"> once every <img> has loaded (naturalWidth > 0). Exit 1 otherwise.
# Needs /usr/bin/chromium (CHROMIUM overrides). Runs in about a minute on 2 CPU cores.
set -euo pipefail
cd "$(dirname "$0")/.."
SHOT=$(realpath -m "${1:-benchmarks/report_digits.png}")
EPOCHS=${EPOCHS:-15}
SEEDS=${SEEDS:-2}
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
if [ -x .venv/bin/sensprune ]; then SENSPRUNE=.venv/bin/sensprune; else SENSPRUNE=sensprune; fi

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# shellcheck disable=SC2086
"$SENSPRUNE" score --dataset digits --epochs "$EPOCHS" --seeds "$SEEDS" --quiet ${SCORE_ARGS:-} \
    --out "$work/digits" > "$work/score.log"
"$SENSPRUNE" report "$work/digits" --quiet > /dev/null
html="$work/digits/report/report.html"

browse() {
    timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --disable-quic --no-first-run \
        --disable-background-networking --disable-component-update --disable-sync \
        --user-data-dir="$(mktemp -d -p "$work")" "$@" 2>>"$work/chromium.log"
}
browse --screenshot="$SHOT" --window-size=1280,2400 "file://$html" > /dev/null
browse --dump-dom "file://$html" > "$work/dom.html"

[ -s "$SHOT" ] || { echo "FAIL: no screenshot written to $SHOT" >&2; exit 1; }
n_img=$(grep -o '<img ' "$work/dom.html" | wc -l)
if grep -q 'data-images-ok="yes"' "$work/dom.html"; then
    echo "OK: all $n_img images loaded; screenshot $SHOT"
else
    echo "FAIL: not every image loaded ($(grep -o 'data-images-ok="[a-z]*"' "$work/dom.html" || echo 'no marker'))" >&2
    exit 1
fi
