"""The answer in two tables (README): every dataset and noise, one table per budget, drop-high 20%.

For each dataset (an ``epochs`` grid and a ``fit`` grid of the same data, noise and warmups): the full set's test
accuracy under both budgets, how well the paper's measure, its one-step proxy and AUM find the corrupted examples
(AUROC over the seeds of the table's grid; a seed's warmup is the same under both budgets), and, under the table's
budget, what removing the top 20% by each does against removing 20% at random, and what reweighting by the paper's
measure does against the full set.
Every number is read from summary.csv / detection.csv; **bold** = significant after the Benjamini–Hochberg
adjustment over all cells of that grid.

    .venv/bin/python benchmarks/open_question/v2/answer.py DATASET=EPOCHS_DIR,FIT_DIR [...]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from headline import MEASURES, cell, read  # noqa: E402  (the same cells as the per-grid tables)


def full_acc(summary: dict, ds: str, c: str) -> str:
    row = summary.get(f"{ds}|{c}|full|none|0")
    return f"{100 * float(row['test_acc_mean']):.1f} ± {100 * float(row['test_acc_ci95']):.1f}" if row else "–"


def rows(ds: str, epochs_dir: Path, fit_dir: Path, budget: str) -> list[str]:
    ep = {r["key"]: r for r in read(epochs_dir / "summary.csv")}
    fit = {r["key"]: r for r in read(fit_dir / "summary.csv")}
    arms, grid = (fit, fit_dir) if budget == "fit" else (ep, epochs_dir)
    det = {(r["corruption"], r["measure"]): r for r in read(grid / "detection.csv")}  # that grid's seeds
    out = []
    for c in dict.fromkeys(r["corruption"] for r in fit.values()):
        auroc = " / ".join(f"{float(det[(c, m)]['auroc_mean']):.3f}" if (c, m) in det else "–" for m in MEASURES)
        drops = [cell(arms.get(f"{ds}|{c}|{m}|drop-high|0.2"), "random") for m in MEASURES]
        rew = cell(arms.get(f"{ds}|{c}|loss_sensitivity|reweight:softmax|0"), "full")
        out.append(f"| {ds} | {c} | {full_acc(ep, ds, c)} | {full_acc(fit, ds, c)} | {auroc} | "
                   + " | ".join(drops) + f" | {rew} |")
    return out


def main(args: list[str]) -> None:
    grids = [(a.partition("=")[0], *(Path(d) for d in a.partition("=")[2].split(","))) for a in args]
    for budget, title in (("fit", "Trained until the data is fit (`fit`: 99% training accuracy, or the cap)"),
                          ("epochs", "Short training (`epochs`: 15 / 20 / 10 epochs, cosine)")):
        head = ["dataset", "noise", "full acc %, epochs", "full acc %, fit",
                "AUROC " + " / ".join(MEASURES), *(f"{budget}: drop-high 20% {m} vs random" for m in MEASURES),
                f"{budget}: reweight:softmax loss_sensitivity vs full"]
        print(f"**{title}**\n")
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for ds, epochs_dir, fit_dir in grids:
            print("\n".join(rows(ds, epochs_dir, fit_dir, budget)))
        print()


if __name__ == "__main__":
    main(sys.argv[1:])
