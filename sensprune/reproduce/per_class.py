"""Experiment 3 — per-class loss sensitivity, real vs random inputs (Arpit et al. 2017, §3.2, Fig. 4).

The (K, K) matrix g_ij (row i = whose loss, column j = whose inputs; docs/measures.md §3) with the paper's
estimator — the full horizon, K = 16 stratified probe steps, each ∂L^{(i)}_t/∂x exact through every
earlier SGD update (:class:`sensprune.measures.per_class.PerClassFullHook`) — on the paper's MLP 16-16
trained with plain SGD, for real data, randX and randX with matched norms (see experiment 2), one
training run per seed (the runs are shared with experiment 2 when both are run).

Claim (§3.2, Fig. 4): the diagonal dominates for both, but real data puts more of the sensitivity off
the diagonal (examples of one class help the loss of others: shared patterns). Number compared: the
off-diagonal fraction Σ_{i≠j} g_ij / Σ g_ij.
Effect: per seed, off(real) − off(randX); 95% paired t-interval over seeds. Verdict: reproduced if
above 0, not reproduced at this scale if below 0, inconclusive if it contains 0. Extra row, same
rule: off(real) − off(randX norm-matched).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm
from tqdm.auto import tqdm

from sensprune.data.noise import apply_corruption
from sensprune.io import write_csv
from sensprune.measures.per_class import off_diagonal_fraction
from sensprune.reproduce.common import (PAPER_WIDTHS, Outcome, Scale, estimator_note, fmt, norm_matched_random_inputs,
                                        paper_data, save_png, sens_train, sensitivity_run, subplots)
from sensprune.reproduce.verdict import extra_row, judge_paired, t_ci

TITLE = "per-class loss sensitivity, real vs random inputs (§3.2, Fig. 4)"
SETS = ("real", "randX", "randX norm-matched")
RULE = ("reproduced if the 95% paired t-interval over seeds of off-diagonal fraction(real) − (randX) lies above 0, "
        "not reproduced if below 0, inconclusive if it contains 0.")


REASON = "random inputs put more sensitivity off the diagonal"


def judge(off_real, off_random):
    """The rule on per-seed off-diagonal fractions (paired by seed): (Verdict, Interval of real − random)."""
    return judge_paired(off_real, off_random, REASON)


def run(out: Path, scale: Scale, seed: int, progress: bool = True) -> Outcome:
    real = paper_data(scale.sens_n, scale)
    seeds = [seed + r for r in range(scale.sens_seeds)]
    mats: dict[str, list[np.ndarray]] = {k: [] for k in SETS}
    notes = {}
    bar = tqdm(total=len(SETS) * len(seeds), desc="3 per-class: training runs", disable=not progress,
               dynamic_ncols=True)
    for s in seeds:
        sets = {"real": real, "randX": apply_corruption(real, "randX", 1.0, s)[0],
                "randX norm-matched": norm_matched_random_inputs(real, s)}
        for name, d in sets.items():
            r = sensitivity_run(d, s, scale.sens_epochs, per_class=True)
            mats[name].append(r["per_class"])
            notes = notes or {"per_class": r["notes"].get("per_class", {})}
            bar.update()
    bar.close()

    off = {k: [off_diagonal_fraction(m) for m in v] for k, v in mats.items()}
    verdict, head = judge(off["real"], off["randX"])
    ctrl = t_ci(np.subtract(off["real"], off["randX norm-matched"]))
    mean = {k: np.mean(v, axis=0) for k, v in mats.items()}
    diag_max = {k: float(np.mean(np.argmax(m, axis=1) == np.arange(len(m)))) for k, m in mean.items()}
    n = len(seeds)
    off_means = f"real {fmt(np.mean(off['real']))}, randX {fmt(np.mean(off['randX']))}"
    row_max = f"{diag_max['real']:.0%} (real) and {diag_max['randX']:.0%} (randX)"
    evidence = (f"off-diagonal fraction real − randX = {head.text()} (95% CI, {n} seeds; {off_means}); the diagonal is "
                f"the row maximum in {row_max} of rows of the mean matrix; N={real.n_train}, {scale.sens_epochs} "
                f"epochs of plain SGD; estimator: {estimator_note(notes)}")
    extra = [extra_row("off(real) − off(randX norm-matched)", ctrl,
                       "norm-matched random inputs put more off the diagonal",
                       f"(95% CI, {n} seeds; norm-matched {fmt(np.mean(off['randX norm-matched']))}); CSV rows "
                       f"data=randX norm-matched")]

    csv = out / "exp3_per_class.csv"
    k = len(mean["real"])
    est = estimator_note(notes)
    write_csv(csv, ["data", "seed", "class_i_loss", "class_j_inputs", "g_ij", "off_diagonal_fraction", "estimator"],
              [(name, s, i, j, float(m[i, j]), off[name][r], est) for name in SETS
               for r, (s, m) in enumerate(zip(seeds, mats[name])) for i in range(k) for j in range(k)])
    png = out / "exp3_per_class.png"
    fig, axs = subplots(1, len(SETS), figsize=(5 * len(SETS), 4.5))
    pos = np.concatenate([m[m > 0] for m in mean.values()])
    norm = LogNorm(vmin=pos.min(), vmax=pos.max()) if pos.size and pos.max() > pos.min() else None
    for ax, (name, m) in zip(axs, mean.items()):
        im = ax.imshow(np.where(m > 0, m, np.nan), norm=norm, cmap="viridis")
        ax.set(title=f"{name}: off-diagonal {fmt(np.mean(off[name]))}", xlabel="class j (inputs)",
               ylabel="class i (loss)")
    fig.colorbar(im, ax=list(axs), label=f"g_ij, mean of {n} seeds (log scale)")
    save_png(fig, png)
    return Outcome(
        verdict, evidence, RULE,
        "exp3_per_class.csv column off_diagonal_fraction of rows data=real and data=randX (per seed)",
        {"off_diagonal_fraction": off, "diagonal_is_row_max": diag_max,
         "effects": {"real - randX": head.__dict__, "real - randX norm-matched": ctrl.__dict__}},
        [png.name, csv.name],
        {"seeds": seeds, "widths": list(PAPER_WIDTHS), "n_train": real.n_train,
         "train": {**sens_train(scale.sens_epochs, seed).__dict__, "seed": "per run"},
         "measure": "per-class loss sensitivity, full-horizon estimator (PerClassFullHook)", "estimator": notes,
         "noise": "randX at 1.0 (corruption seed = training seed); norm-matched randX"},
        extra)
