"""Print the README's markdown tables from bench output folders (summary.csv and detection.csv).

Usage: python benchmarks/open_question/archive/make_table.py [--headline] DIR [DIR ...] > TABLE.md
(--headline: only the loss_sensitivity_h1 table and the detection table, as pasted into README.md)
Every number is read from a row of DIR/summary.csv or DIR/detection.csv; nothing is recomputed.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tables import cell  # noqa: E402  (the one cell format: bold = sig_bh)


def read(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def main(dirs: list[str], headline: bool = False) -> None:
    summary = [r for d in dirs for r in read(Path(d) / "summary.csv")]
    detection = [r for d in dirs for r in read(Path(d) / "detection.csv")]
    by_key = {r["key"]: r for r in summary}
    # the archived grids name their one-step proxy loss_sensitivity_h1; a grid run today, loss_sensitivity
    QUESTION = "loss_sensitivity_h1" if any(r["measure"] == "loss_sensitivity_h1" for r in summary) \
        else "loss_sensitivity"
    settings = list(dict.fromkeys((r["dataset"], r["corruption"]) for r in summary))
    fractions = sorted({r["fraction"] for r in summary if r["measure"] not in ("full", "oracle")}, key=float)
    measures = list(dict.fromkeys(r["measure"] for r in summary if r["measure"] not in ("full", "oracle", "random")))
    rules = list(dict.fromkeys(r["rule"] for r in summary if r["measure"] in measures))
    fr = [f"{100 * float(f):g}%" for f in fractions]
    n = sorted({r["n"] for r in summary if r["measure"] == "full"})

    def key(ds, corr, m, rule, f):
        return f"{ds}|{corr}|{m}|{rule}|{float(f):g}"

    print(f"Test-accuracy change in points vs `random` at the same removed fraction: mean ± 95% CI half-width of the "
          f"paired per-seed difference (n = {', '.join(n)} seeds); **bold** = significant after the "
          "Benjamini–Hochberg adjustment (`sig_bh`; none in a summary.csv without that column). "
          "`full` = test accuracy without pruning; `oracle` = dropping exactly the corrupted examples, vs full.\n")
    print(f"### The question: drop the most sensitive examples by `{QUESTION}` (drop-high)\n")
    print("| dataset | noise | full acc % | " + " | ".join(fr) + " | oracle vs full |")
    print("|---|---|---|" + "---|" * len(fr) + "---|")
    for ds, corr in settings:
        full = by_key.get(key(ds, corr, "full", "none", 0))
        oracle = next((r for r in summary if r["dataset"] == ds and r["corruption"] == corr
                       and r["measure"] == "oracle"), None)
        acc = f"{100 * float(full['test_acc_mean']):.1f} ± {100 * float(full['test_acc_ci95']):.1f}" if full else "–"
        cells = [cell(by_key.get(key(ds, corr, QUESTION, "drop-high", f))) for f in fractions]
        print(f"| {ds} | {corr} | {acc} | " + " | ".join(cells) + f" | {cell(oracle, 'full')} |")
    for rule in [] if headline else rules:
        print(f"\n### All measures, {rule}\n")
        print("| dataset | noise | measure | " + " | ".join(fr) + " |")
        print("|---|---|---|" + "---|" * len(fr))
        for ds, corr in settings:
            for m in measures:
                cells = [cell(by_key.get(key(ds, corr, m, rule, f))) for f in fractions]
                print(f"| {ds} | {corr} | {m} | " + " | ".join(cells) + " |")
    det_measures = list(dict.fromkeys(r["measure"] for r in detection))
    if det_measures:
        print("\n### Detecting the corrupted examples: AUROC (mean ± std over seeds)\n")
        print("| dataset | noise | " + " | ".join(det_measures) + " |")
        print("|---|---|" + "---|" * len(det_measures))
        det = {(r["dataset"], r["corruption"], r["measure"]): r for r in detection}
        for ds, corr in dict.fromkeys((r["dataset"], r["corruption"]) for r in detection):
            vals = []
            for m in det_measures:
                r = det.get((ds, corr, m))
                vals.append("–" if r is None or r["n"] == "0" else
                            f"{float(r['auroc_mean']):.3f} ± {float(r['auroc_std']):.3f}")
            print(f"| {ds} | {corr} | " + " | ".join(vals) + " |")


if __name__ == "__main__":
    args = sys.argv[1:]
    main([a for a in args if a != "--headline"], headline="--headline" in args)
