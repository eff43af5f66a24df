"""Experiment 3 — per-class loss sensitivity, real vs random inputs (Arpit et al. 2017, §3.2, Fig. 4).

The (K, K) matrix g_ij (:mod:`sensprune.measures.per_class`, horizon 1; row i = whose loss,
column j = whose inputs) from :func:`sensprune.score.score` with ``per_class=True``, in the paper's
setting (1000 images at 14×14, MLP 16-16, SGD), for real data and randX (100%, labels kept), one
training run per seed. Claim: the diagonal dominates for both, but real data puts more mass off
the diagonal. Number compared: the off-diagonal mass fraction Σ_{i≠j} g_ij / Σ g_ij.
Verdict: *reproduced* if real > random in every seed; *not reproduced* if real ≤ random in every
seed; otherwise *inconclusive*.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm
from tqdm.auto import tqdm

from sensprune.data.noise import apply_corruption
from sensprune.io import write_csv
from sensprune.measures.per_class import off_diagonal_fraction
from sensprune.reproduce.common import (PAPER_WIDTHS, Outcome, Scale, fmt, paper_data, paper_train, plt, save_png,
                                        three_way)
from sensprune.score import ScoreConfig, score

TITLE = "per-class loss sensitivity, real vs random inputs (§3.2, Fig. 4)"


def run(out: Path, scale: Scale, seed: int, progress: bool = True) -> Outcome:
    real = paper_data(scale.n, scale.n_test)
    sets = {"real": real, "randX": apply_corruption(real, "randX", 1.0, seed)[0]}
    seeds = [seed + k for k in range(scale.per_class_seeds)]
    mats: dict[str, list[np.ndarray]] = {k: [] for k in sets}
    bar = tqdm(total=len(sets) * len(seeds), desc="3 per-class: training runs", disable=not progress,
               dynamic_ncols=True)
    for s in seeds:
        for name, d in sets.items():
            cfg = ScoreConfig(dataset=d.spec, widths=PAPER_WIDTHS, measures=("loss",),
                              measure_options={"per_class": True}, train=paper_train(scale.per_class_epochs, s))
            mats[name].append(score(d, cfg, progress=progress).extras["per_class"])
            bar.update()
    bar.close()

    off = {k: [off_diagonal_fraction(m) for m in v] for k, v in mats.items()}
    mean = {k: np.mean(v, axis=0) for k, v in mats.items()}
    diag_max = {k: float(np.mean(np.argmax(m, axis=1) == np.arange(len(m)))) for k, m in mean.items()}
    above = [r > x for r, x in zip(off["real"], off["randX"])]
    word = three_way(all(above), not any(above))
    sentence = (f"off-diagonal mass fraction real {fmt(np.mean(off['real']))} vs randX "
                f"{fmt(np.mean(off['randX']))} (mean of {len(seeds)} seed(s); real higher in {sum(above)}/"
                f"{len(seeds)}); diagonal is the row maximum in {diag_max['real']:.0%} (real) and "
                f"{diag_max['randX']:.0%} (randX) of rows")

    csv = out / "exp3_per_class.csv"
    k = len(mean["real"])
    write_csv(csv, ["data", "class_i_loss", "class_j_inputs", "g_ij"],
              [(name, i, j, float(m[i, j])) for name, m in mean.items() for i in range(k) for j in range(k)])
    png = out / "exp3_per_class.png"
    fig, axs = plt.subplots(1, 2, figsize=(11, 4.5))
    pos = np.concatenate([m[m > 0] for m in mean.values()])
    norm = LogNorm(vmin=pos.min(), vmax=pos.max()) if pos.size and pos.max() > pos.min() else None
    for ax, (name, m) in zip(axs, mean.items()):
        im = ax.imshow(np.where(m > 0, m, np.nan), norm=norm, cmap="viridis")
        ax.set(title=f"{name}: off-diagonal fraction {fmt(np.mean(off[name]))}", xlabel="class j (inputs)",
               ylabel="class i (loss)")
    fig.colorbar(im, ax=list(axs), label="g_ij (log scale)")
    save_png(fig, png)
    return Outcome(word, sentence, {"off_diagonal_fraction": off, "diagonal_is_row_max": diag_max},
                   [png.name, csv.name],
                   {"seeds": seeds, "widths": list(PAPER_WIDTHS), "train": asdict(paper_train(scale.per_class_epochs,
                                                                                              seed)),
                    "per_class": "horizon 1, every step, probe = whole training set", "noise": "randX at 1.0"})
