"""Rename the measure ``loss_sensitivity`` to ``loss_sensitivity_h1`` in the archived first-round grids' CSVs.

These grids were scored when ``loss_sensitivity`` meant the horizon-1 proxy (the one-step influence surrogate);
the name now means the paper's full-horizon measure (Arpit et al. 2017, §3), so the archived rows take the
proxy's name. Every cell equal to ``loss_sensitivity``, and that field of a ``|``-joined key
(``dataset|corruption|measure|rule|fraction``), is renamed; nothing else changes. Idempotent (a second run
finds nothing to rename); each file is rewritten atomically (temp file, then rename).

    .venv/bin/python benchmarks/open_question/archive/rename_h1.py     # run once; prints the rows renamed
"""

from __future__ import annotations

import csv
import os
import tempfile
from pathlib import Path

OLD, NEW = "loss_sensitivity", "loss_sensitivity_h1"


def rename_cell(cell: str) -> str:
    return "|".join(NEW if part == OLD else part for part in cell.split("|"))


def rename_file(path: Path) -> int:
    """Rename in one CSV; returns the number of rows changed (the file is left untouched when 0)."""
    text = path.read_text()
    rows = list(csv.reader(text.splitlines()))
    new = [[rename_cell(c) for c in row] for row in rows]
    changed = sum(a != b for a, b in zip(rows, new))
    if changed:
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        with os.fdopen(fd, "w", newline="") as f:
            csv.writer(f, lineterminator="\n").writerows(new)
        os.replace(tmp, path)
    return changed


def main() -> None:
    here = Path(__file__).resolve().parent
    total = 0
    for path in sorted(here.rglob("*.csv")):
        n = rename_file(path)
        if n:
            print(f"{path.relative_to(here)}: {n} rows")
        total += n
    print(f"{total} rows renamed {OLD} -> {NEW}")


if __name__ == "__main__":
    main()
