"""Compare an ``epochs`` grid with a ``fit`` grid of the same datasets, noise and seeds (markdown on stdout).

For each dataset and noisy corruption: the full set's test accuracy under each budget, what the noise
costs it (clean minus noisy, per seed: units of one seed share init and batch order, and the same seed
gives the same noise under both budgets) and the paired difference of those costs between the budgets
(fit − epochs, paired t interval over seeds, ``sensprune.benchmark.stats.paired_t``); then how many ``fit`` rows
reached the threshold and their epochs.

    .venv/bin/python benchmarks/open_question/v2/compare_budgets.py EPOCHS_DIR FIT_DIR
"""

from __future__ import annotations

import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from sensprune.benchmark.grid import read_rows
from sensprune.benchmark.stats import mean_ci, paired_t


def pts(m: float, h: float) -> str:
    return f"{100 * m:.1f} ± {100 * h:.1f}" if np.isfinite(h) else f"{100 * m:.1f}"


def main(epochs_dir: str, fit_dir: str) -> None:
    runs = {name: read_rows(Path(d) / "results.csv") for name, d in (("epochs", epochs_dir), ("fit", fit_dir))}
    full = {name: defaultdict(dict) for name in runs}
    for name, rows in runs.items():
        for r in rows:
            if r["measure"] == "full" and r["status"] == "ok":
                full[name][(r["dataset"], r["corruption"])][r["seed"]] = r["test_acc"]
    print("Full training set, test accuracy % (mean ± 95% CI over seeds) and what the noise costs it "
          "(clean − noisy, points, per seed):\n")
    print("| dataset | noise | full, epochs | full, fit | cost, epochs | cost, fit | fit − epochs (paired) |")
    print("|---|---|---|---|---|---|---|")
    for ds, corr in full["fit"]:
        if corr == "none" or (ds, corr) not in full["epochs"]:
            continue
        cells, costs = [], {}
        for name in ("epochs", "fit"):
            noisy, clean = full[name][(ds, corr)], full[name].get((ds, "none"), {})
            cells.append(pts(*_mh(noisy.values())))
            costs[name] = {s: clean[s] - noisy[s] for s in noisy if s in clean}
        seeds = sorted(set(costs["epochs"]) & set(costs["fit"]))
        m, h, n, p = paired_t([costs["fit"][s] for s in seeds], [costs["epochs"][s] for s in seeds])
        print(f"| {ds} | {corr} | {cells[0]} | {cells[1]} | {pts(*_mh(costs['epochs'].values()))} | "
              f"{pts(*_mh(costs['fit'].values()))} | {pts(m, h)} (n={n}, p={p:.2g}) |")
    fit_rows = [r for r in runs["fit"] if r["status"] == "ok"]
    reached = [r for r in fit_rows if r.get("fit_reached") == 1]
    print(f"\n`fit` rows that reached the threshold: {len(reached)} of {len(fit_rows)}; epochs used: "
          f"median {np.median([r['epochs'] for r in fit_rows]):.0f}, range {min(r['epochs'] for r in fit_rows)}–"
          f"{max(r['epochs'] for r in fit_rows)}.")
    by_corr = defaultdict(list)
    for r in fit_rows:
        by_corr[(r["dataset"], r["corruption"])].append(r)
    for (ds, corr), rs in by_corr.items():
        print(f"- {ds} {corr}: {sum(r.get('fit_reached') == 1 for r in rs)}/{len(rs)} reached, epochs median "
              f"{np.median([r['epochs'] for r in rs]):.0f} (full set: "
              f"{', '.join(str(r['epochs']) for r in rs if r['measure'] == 'full')})")


def _mh(values) -> tuple[float, float]:
    m, _, _, h = mean_ci(list(values))
    return m, h


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2])
