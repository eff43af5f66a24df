"""Experiment 5 — dropout vs memorization (Arpit et al. 2017, §5, Fig. 7/8).

For each dropout rate p: the memorization MLP trained on randY (100% random labels) — training
accuracy (eval mode, whole training set) after the last epoch — and on real data — best validation
accuracy over the epochs. Claim: dropout hinders the memorization of random labels while keeping
the validation accuracy on real data.
Numbers: memorization above chance m(p) = train_acc_randY(p) − 1/K; validation v(p).
Verdict: *reproduced* if m(0) ≥ 0.3 and some p > 0 has m(p) ≤ 0.5·m(0) with v(p) ≥ v(0) − 0.02;
*not reproduced* if no p > 0 lowers m below 0.9·m(0), or every p > 0 that halves m costs more than
0.05 validation accuracy; otherwise *inconclusive*.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from sensprune.data.noise import apply_corruption
from sensprune.io import write_csv
from sensprune.reproduce.common import (FitTracker, Outcome, Scale, fit, fmt, mem_train, paper_data, plt,
                                        save_png, three_way)

TITLE = "dropout vs memorization of random labels (§5, Fig. 7/8)"
KEEP_VAL = 0.02   # "keeps validation accuracy": within this of no dropout
LOST_VAL = 0.05   # clearly lost validation accuracy


def run(out: Path, scale: Scale, seed: int, progress: bool = True) -> Outcome:
    real = paper_data(scale.n, scale.n_test)
    rand = apply_corruption(real, "randY", 1.0, seed)[0]
    tc = mem_train(scale.dropout_epochs, seed)
    chance = 1.0 / real.num_classes
    rows = []
    for p in tqdm(scale.dropouts, desc="5 dropout: rates", disable=not progress, dynamic_ncols=True):
        tracker = FitTracker()
        fit(rand, scale.mem_widths, tc, dropout=p, hooks=[tracker], validate=False, progress=progress,
            desc=f"randY p={p:g}")
        res = fit(real, scale.mem_widths, tc, dropout=p, progress=progress, desc=f"real p={p:g}")
        val = [h["test_acc"] for h in res.history]
        rows.append((p, tracker.rows[-1][0], max(r[0] for r in tracker.rows), max(val), val[-1]))
    ps = np.array([r[0] for r in rows])
    m = np.array([r[1] for r in rows]) - chance
    v = np.array([r[3] for r in rows])
    i0 = int(np.flatnonzero(ps == 0)[0]) if (ps == 0).any() else None
    if i0 is None:
        word, detail = three_way(False, False), "no p = 0 baseline was run"
    else:
        others = [i for i in range(len(ps)) if i != i0]
        halves = [i for i in others if m[i] <= 0.5 * m[i0]]
        good = [i for i in halves if v[i] >= v[i0] - KEEP_VAL]
        bad = (not any(m[i] < 0.9 * m[i0] for i in others)
               or (bool(halves) and all(v[i] < v[i0] - LOST_VAL for i in halves)))
        word = three_way(m[i0] >= 0.3 and bool(good), bad)
        best = good[-1] if good else (halves[0] if halves else int(np.argmin(m)))
        detail = (f"randY training accuracy {fmt(rows[i0][1])} at p=0 vs {fmt(rows[best][1])} at p={ps[best]:g}, "
                  f"best real validation accuracy {fmt(v[i0])} vs {fmt(v[best])}; "
                  f"{len(good)} of {len(others)} dropout rates at least halve memorization above chance while "
                  f"keeping validation within {KEEP_VAL}")
        if m[i0] < 0.3:
            detail += f" (random labels barely memorized without dropout: {fmt(rows[i0][1])})"
    sentence = f"{detail}; after {tc.epochs} epochs, rates {', '.join(f'{p:g}' for p in ps)}"

    csv = out / "exp5_dropout.csv"
    write_csv(csv, ["dropout", "randY_train_acc_final", "randY_train_acc_max", "real_val_acc_best",
                    "real_val_acc_final"], rows)
    png = out / "exp5_dropout.png"
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ax.plot(ps, [r[1] for r in rows], "o-", color="tab:red", label="training accuracy, 100% randY")
    ax.plot(ps, v, "s-", color="tab:blue", label="best validation accuracy, real data")
    ax.axhline(chance, color="gray", ls=":", label="chance")
    ax.set(xlabel="dropout rate", ylabel="accuracy", ylim=(0, 1.02),
           title=f"Dropout vs memorization ({tc.epochs} epochs, MLP {'-'.join(map(str, scale.mem_widths))})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_png(fig, png)
    return Outcome(word, sentence, {"rows": [dict(zip(("dropout", "randY_train_acc", "randY_train_acc_max",
                                                       "real_val_best", "real_val_final"), r)) for r in rows]},
                   [png.name, csv.name],
                   {"widths": list(scale.mem_widths), "train": asdict(tc), "dropouts": list(scale.dropouts),
                    "train_accuracy": "eval mode, whole training set, after the last epoch"})
