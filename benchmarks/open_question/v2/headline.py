"""The headline table of the second answer (README): per budget and noise, the full set's accuracy, how well each
measure finds the corrupted examples, and what dropping the top-ranked examples does against random pruning.

Every number is read from DIR/summary.csv or DIR/detection.csv of a bench grid; nothing is recomputed.
Cells: test-accuracy change in points vs `random` at the same fraction (drop-high) or vs `full` (reweighting),
mean ± 95% paired-t half-width over seeds; **bold** = significant after the Benjamini–Hochberg adjustment over
all cells of that grid (`sig_bh`).

    .venv/bin/python benchmarks/open_question/v2/headline.py LABEL=DIR [LABEL=DIR ...]
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tables import cell  # noqa: E402  (the one cell format: bold = sig_bh)

MEASURES = ("loss_sensitivity", "loss_sensitivity_h1", "aum")
FRACTIONS = ("0.2", "0.5")


def read(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def table(label: str, folder: Path) -> list[str]:
    summary = {r["key"]: r for r in read(folder / "summary.csv")}
    det = {(r["corruption"], r["measure"]): r for r in read(folder / "detection.csv")} \
        if (folder / "detection.csv").exists() else {}
    corruptions = list(dict.fromkeys(r["corruption"] for r in summary.values()))
    ds = next(iter(summary.values()))["dataset"]
    head = ["noise", "full acc %", *(f"AUROC {m}" for m in MEASURES),
            *(f"drop-high {int(float(f) * 100)}% {m}" for m in MEASURES for f in FRACTIONS),
            "reweight:softmax loss_sensitivity vs full"]
    out = [f"**{label}** ({folder})", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in corruptions:
        full = summary.get(f"{ds}|{c}|full|none|0") or summary.get(f"{ds}|{c}|full|none|1.0")
        acc = f"{100 * float(full['test_acc_mean']):.1f} ± {100 * float(full['test_acc_ci95']):.1f}" if full else "–"
        aurocs = [f"{float(det[(c, m)]['auroc_mean']):.3f}" if (c, m) in det else "–" for m in MEASURES]
        drops = [cell(summary.get(f"{ds}|{c}|{m}|drop-high|{f}"), "random") for m in MEASURES for f in FRACTIONS]
        rew = cell(summary.get(f"{ds}|{c}|loss_sensitivity|reweight:softmax|0"), "full")
        out.append("| " + " | ".join([c, acc, *aurocs, *drops, rew]) + " |")
    return out + [""]


def main(args: list[str]) -> None:
    print(__doc__.split("\n\n")[1].replace("\n", " "))
    print()
    for a in args:
        label, _, folder = a.partition("=")
        print("\n".join(table(label, Path(folder))))


if __name__ == "__main__":
    main(sys.argv[1:])
