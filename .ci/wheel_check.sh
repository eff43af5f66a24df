#!/usr/bin/env bash
# The installed package, not the checkout: build the wheel from a copy of the source tree, install it into a
# fresh virtual environment (torch and torchvision pinned as the Makefile pins them), then, from a folder
# outside the checkout (so the source tree is not importable), run `sensprune --help` and a one-epoch score.
# Usage: .ci/wheel_check.sh   (PY=python3.x to choose the interpreter; KEEP=1 keeps the temporary folder)
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
PY=${PY:-python3}
TMP=$(mktemp -d "${TMPDIR:-/tmp}/sensprune-wheel.XXXXXX")
if [ -z "${KEEP:-}" ]; then trap 'rm -rf "$TMP"' EXIT; fi
echo "wheel check in $TMP"

# a copy, so that no stale build/ folder of the checkout leaks old modules into the wheel
mkdir "$TMP/src"
tar -C "$REPO" --exclude=./.venv --exclude=./.git --exclude=./build --exclude=./dist --exclude='*.egg-info' \
    --exclude=__pycache__ --exclude=.hypothesis --exclude=.pytest_cache --exclude=./demo-out --exclude=./runs \
    -cf - . | tar -C "$TMP/src" -xf -

"$PY" -m venv "$TMP/venv"
BIN=$TMP/venv/bin
"$BIN/python" -m pip install -q --upgrade pip
"$BIN/pip" wheel -q --no-deps -w "$TMP/dist" "$TMP/src"
WHEEL=$(ls "$TMP"/dist/sensprune-*.whl)
"$BIN/python" - "$WHEEL" <<'EOF'
import sys
import zipfile

extra = [n for n in zipfile.ZipFile(sys.argv[1]).namelist() if not n.startswith(("sensprune/", "sensprune-"))]
assert not extra, f"the wheel holds files outside the package: {extra[:10]}"
EOF
printf 'torch==2.14.1\ntorchvision==0.29.1\n' > "$TMP/constraints.txt"  # as the Makefile installs them
"$BIN/pip" install -q -c "$TMP/constraints.txt" "$WHEEL"

cd "$TMP"  # outside the checkout: `import sensprune` must find the installed wheel
"$BIN/python" - "$REPO" <<'EOF'
import sys
from pathlib import Path

import sensprune

where = Path(sensprune.__file__).resolve()
assert Path(sys.argv[1]).resolve() not in where.parents, f"sensprune imported from the checkout: {where}"
print(f"sensprune {sensprune.__version__} from {where.parent}")
EOF
"$BIN/sensprune" --help
"$BIN/sensprune" score --dataset digits --epochs 1 --seeds 1 --measures loss --out "$TMP/s"
test -s "$TMP/s/scores.csv" && test -s "$TMP/s/meta.json"
echo "wheel_check: OK ($(basename "$WHEEL"))"
