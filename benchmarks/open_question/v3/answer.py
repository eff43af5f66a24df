"""The third answer (README, docs/open-question.md), generated from the three-way calls of the v3 grids.

Per dataset, three grids of the same seeds (``run_all.sh``):

* ``DS-fitsteps``: equal compute — the full set trains until it fits; every other run of its seed trains
  exactly the SGD steps that took (``[bench] budget = "fit-steps"``); warmup 15 (digits) / 20 (MNIST-1D)
  epochs, as in the earlier answers;
* ``DS-fit``: every run trained to fit its own training set (unequal compute; reweighting arms the full
  run's steps);
* ``DS-fitsteps-warmfit``: as ``fitsteps``, but the warmup that scores the examples trains until it fits
  its noisy labels and the measures are averaged over that whole run (``[score] budget = "fit"``).

Every table cell is read from a grid's ``summary.csv`` (the call, the paired difference, its 95% interval,
the one-sided 95% upper bound ``upper_95`` = the largest gain the data do not rule out) or
``detection.csv`` / ``detection_per_seed.csv`` (AUROC, the warmup's training accuracy on the noisy labels).
The paragraph counts the calls of the question's arm and says nothing beyond them.

    .venv/bin/python benchmarks/open_question/v3/answer.py > benchmarks/open_question/v3/answer.md
"""

from __future__ import annotations

import csv
import functools
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DATASETS = ("digits", "mnist1d", "fashion-mnist")   # fashion-mnist: fitsteps only (MLP 512-512, Adam: it fits)
GRIDS = (("fitsteps", "equal steps (`fit-steps`)", "short"), ("fit", "each to fit (`fit`)", "short"),
         ("fitsteps-warmfit", "equal steps (`fit-steps`)", "to fit"))
ARMS = (("loss_sensitivity", "drop-high", "0.2", "random"), ("aum", "drop-high", "0.2", "random"),
        ("loss_sensitivity", "reweight:softmax", "0", "full"), ("aum", "reweight:softmax", "0", "full"))


def read(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


@functools.cache
def summary(ds: str, grid: str) -> dict[str, dict] | None:
    """A grid's ``summary.csv`` by row key, read once; None when the grid has not run yet."""
    path = HERE / f"{ds}-{grid}" / "summary.csv"
    return {r["key"]: r for r in read(path)} if path.exists() else None


def pts(x: str | float, sign: bool = False) -> str:
    v = 100 * float(x)
    return f"{v:+.1f}" if sign else f"{v:.1f}"


def table_rows(ds: str, grid: str, budget: str, warm: str) -> tuple[list[str], list[str]]:
    """(markdown rows, calls of the question's arm) of one grid; empty when it has not run yet."""
    summ = summary(ds, grid)
    if summ is None:
        return [], []
    out, calls = [], []
    for c in dict.fromkeys(r["corruption"] for r in summ.values()):
        for m, rule, frac, vs in ARMS:
            r = summ.get(f"{ds}|{c}|{m}|{rule}|{frac}")
            if r is None or not r["call"]:
                continue
            lo, hi = float(r[f"d_{vs}_lo"]), float(r[f"d_{vs}_hi"])
            arm = f"{rule} 20% by {m} vs {vs}" if rule == "drop-high" else f"{rule} by {m} vs {vs}"
            out.append(f"| {ds} | {c} | {budget} | {warm} | {arm} | **{r['call']}** | "
                       f"{pts(r[f'd_{vs}_mean'], True)} | [{pts(lo, True)}, {pts(hi, True)}] | "
                       f"{pts(r['upper_95'], True)} | {r[f'd_{vs}_n']} |")
            if (m, rule) == ("loss_sensitivity", "drop-high"):
                calls.append(r["call"])
    return out, calls


def power_rows(ds: str, grid: str, budget: str, warm: str) -> list[str]:
    """Per headline cell of the question's arm and its reweighting twin: the 95% half-width (target <= 1.5
    points), and the share of the seed's full runs that reached the fit threshold."""
    summ = summary(ds, grid)
    if summ is None:
        return []
    out = []
    for c in dict.fromkeys(r["corruption"] for r in summ.values()):
        full = summ.get(f"{ds}|{c}|full|none|0")
        fit = f"{float(full['fit_reached_frac']):.0%} of {full['n']}" if full else "–"
        for m, rule, frac, vs in ARMS[:1] + ARMS[2:3]:
            r = summ.get(f"{ds}|{c}|{m}|{rule}|{frac}")
            if r is None or not r["call"]:
                continue
            hw = 100 * float(r[f"d_{vs}_ci95"])
            out.append(f"| {ds} | {c} | {budget} | {warm} | {rule} by {m} | {hw:.2f} | "
                       f"{'yes' if hw <= 1.5 else '**no**'} | {r[f'd_{vs}_n']} | {fit} |")
    return out


def detection_rows(ds: str) -> list[str]:
    """AUROC for the corrupted examples, short warmup vs warmup to fit (with its training accuracy)."""
    out = []
    short, fit = HERE / f"{ds}-fitsteps", HERE / f"{ds}-fitsteps-warmfit"
    if not (short / "detection.csv").exists():
        return out
    a = {(r["corruption"], r["measure"]): r for r in read(short / "detection.csv")}
    b = {(r["corruption"], r["measure"]): r for r in read(fit / "detection.csv")} \
        if (fit / "detection.csv").exists() else {}
    acc = {}
    for name, d in (("short", short), ("fit", fit)):
        if (d / "detection_per_seed.csv").exists():
            for r in read(d / "detection_per_seed.csv"):
                if r.get("warmup_train_acc"):
                    acc.setdefault((name, r["corruption"]), []).append(float(r["warmup_train_acc"]))
    for (c, m), r in a.items():
        if m not in ("loss_sensitivity", "aum"):
            continue
        f = b.get((c, m))
        tr = {k: f"{min(acc[(k, c)]):.3f}–{max(acc[(k, c)]):.3f}" for k in ("short", "fit") if (k, c) in acc}
        out.append(f"| {ds} | {c} | {m} | {float(r['auroc_mean']):.3f} ± {float(r['auroc_ci95']):.3f} | "
                   + (f"{float(f['auroc_mean']):.3f} ± {float(f['auroc_ci95']):.3f}" if f else "–")
                   + f" | {tr.get('short', '–')} | {tr.get('fit', '–')} |")
    return out


def main() -> None:
    rows, calls = [], {}
    for ds in DATASETS:
        for grid, budget, warm in GRIDS:
            r, c = table_rows(ds, grid, budget, warm)
            rows += r
            calls.setdefault((budget, warm), []).extend(c)
    print("# The open question, third answer: equal compute, equivalence, a warmup that memorizes\n")
    print("Generated by `answer.py` from the v3 grids' `summary.csv` and `detection.csv` (commands, machine and "
          "dates: `run.log`). Call: **better** / **worse** = the paired difference is significant after the "
          "Benjamini–Hochberg adjustment over the grid; **equivalent** = within ±1 accuracy point by two "
          "one-sided tests (TOST, BH-adjusted); **inconclusive** = neither. Difference and interval: test "
          "accuracy points, paired by seed (95% t interval); largest gain not ruled out: the one-sided 95% upper "
          "bound.\n")
    for (budget, warm), cs in calls.items():
        if cs:
            counts = ", ".join(f"{cs.count(k)} {k}" for k in ("better", "equivalent", "worse", "inconclusive")
                               if cs.count(k))
            print(f"- Under {budget}, {warm} warmup: dropping the top 20% by the paper's `loss_sensitivity` vs "
                  f"20% at random — {counts} (of {len(cs)} dataset × noise cells).")
    print("\n| dataset | noise | budget | warmup | arm | call | difference | 95% CI | largest gain not ruled out "
          "| seeds |\n|---|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows))
    power = [r for ds in DATASETS for grid, budget, warm in GRIDS for r in power_rows(ds, grid, budget, warm)]
    if power:
        print("\n## Power and fit: half-widths of the headline cells, full runs that fit\n")
        print("95% half-width of the paired difference (test-accuracy points; the target is <= 1.5), seeds, and "
              "the share of the `full` runs of the same noise that reached 0.99 training accuracy on their own "
              "labels (`fit_reached_frac`).\n")
        print("| dataset | noise | budget | warmup | arm | half-width | <= 1.5 | seeds | full runs that fit |\n"
              "|---|---|---|---|---|---|---|---|---|")
        print("\n".join(power))
    det = [r for ds in DATASETS for r in detection_rows(ds)]
    if det:
        print("\n## Finding the corrupted examples: short warmup vs a warmup that memorizes\n")
        print("AUROC for the corrupted examples (mean ± 95% half-width over seeds), and the warmup's final "
              "eval-mode accuracy on the noisy training labels (range over seeds).\n")
        print("| dataset | noise | measure | AUROC, short warmup | AUROC, warmup to fit | train acc, short | "
              "train acc, to fit |\n|---|---|---|---|---|---|---|")
        print("\n".join(det))


if __name__ == "__main__":
    sys.exit(main())
