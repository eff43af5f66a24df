"""Experiment 3 — per-class loss sensitivity, real vs random inputs (Arpit et al. 2017, §3.2, Fig. 4).

The (K, K) matrix g_ij (row i = whose loss, column j = whose inputs; docs/measures.md §3) with the paper's
estimator — the full horizon, K = 16 stratified probe steps, each ∂L^{(i)}_t/∂x exact through every
earlier SGD update (:class:`sensprune.measures.per_class.PerClassFullHook`) — on the paper's MLP 16-16
trained with plain SGD, for real data, randX and randX with matched norms (see experiment 2), one
training run per seed (the runs are shared with experiment 2 when both are run).

Claim (§3.2, Fig. 4): the diagonal dominates for both, but real data puts more of the sensitivity off
the diagonal (examples of one class help the loss of others: shared patterns). Number compared: the
off-diagonal fraction Σ_{i≠j} g_ij / Σ g_ij.
Effect: per seed, off(real) − off(randX norm-matched) — the stronger control, as in experiment 2 (Gaussian
inputs rescaled to the real inputs' L1 norms); 95% paired t-interval over the seeds whose two runs reached
the settings file's ``fit_threshold`` training accuracy (runs below it are listed and left out; fewer than
2 seeds left → "inconclusive (did not fit …)"). Runs at the last of ``sens_epochs``. Verdict: reproduced
if above 0, not reproduced at this scale if below 0, inconclusive if it contains 0. Extra row, same rule:
off(real) − off(randX), the plain control.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.colors import LogNorm
from sensprune.progress import progress_bar

from sensprune.data.noise import apply_corruption
from sensprune.io import write_csv
from sensprune.measures.per_class import off_diagonal_fraction
from sensprune.reproduce.common import (PAPER_WIDTHS, Outcome, Scale, estimator_note, fmt, norm_matched_random_inputs,
                                        paper_data, save_png, sens_train, sensitivity_run, subplots)
from sensprune.reproduce.gini import excluded
from sensprune.reproduce.verdict import judge_fitted

TITLE = "per-class loss sensitivity, real vs random inputs (§3.2, Fig. 4)"
SETS = ("real", "randX", "randX norm-matched")
RULE = ("over the seeds whose two runs reached the fit threshold, reproduced if the 95% paired t-interval of "
        "off-diagonal fraction(real) − (randX norm-matched) lies above 0, not reproduced if below 0, inconclusive "
        "if it contains 0 or fewer than 2 seeds fit.")


REASON = "norm-matched random inputs put more sensitivity off the diagonal"


def judge(off_real, off_random, acc_real=None, acc_random=None, threshold: float = 0.0):
    """The rule on per-seed off-diagonal fractions (paired by seed), counting only seeds whose two runs reached
    ``threshold`` training accuracy (all, when no accuracies are given): (Verdict, Interval of real − random)."""
    ones = np.ones(len(off_real))
    v, iv, _ = judge_fitted(off_real, off_random, ones if acc_real is None else acc_real,
                            ones if acc_random is None else acc_random, threshold, REASON)
    return v, iv


def run(out: Path, scale: Scale, seed: int, progress: bool = True) -> Outcome:
    real = paper_data(scale.sens_n, scale)
    seeds = [seed + r for r in range(scale.sens_seeds)]
    mats: dict[str, list[np.ndarray]] = {k: [] for k in SETS}
    acc: dict[str, list[float]] = {k: [] for k in SETS}
    epochs = scale.sens_epochs[-1]
    thr = scale.rules.fit_threshold
    notes = {}
    bar = progress_bar(total=len(SETS) * len(seeds), desc="3 per-class: training runs", enabled=progress,
                       dynamic_ncols=True)
    for s in seeds:
        sets = {"real": real, "randX": apply_corruption(real, "randX", 1.0, s)[0],
                "randX norm-matched": norm_matched_random_inputs(real, s)}
        for name, d in sets.items():
            r = sensitivity_run(d, s, epochs, per_class=True)
            mats[name].append(r["per_class"])
            acc[name].append(r["train_acc"])
            notes = notes or {"per_class": r["notes"].get("per_class", {})}
            bar.update()
    bar.close()

    off = {k: [off_diagonal_fraction(m) for m in v] for k, v in mats.items()}
    verdict, head, k_head = judge_fitted(off["real"], off["randX norm-matched"], acc["real"],
                                         acc["randX norm-matched"], thr, REASON)
    pv, plain, k_plain = judge_fitted(off["real"], off["randX"], acc["real"], acc["randX"], thr,
                                      "random inputs put more sensitivity off the diagonal")
    mean = {k: np.mean(v, axis=0) for k, v in mats.items()}
    diag_max = {k: float(np.mean(np.argmax(m, axis=1) == np.arange(len(m)))) for k, m in mean.items()}
    n = len(seeds)
    off_means = f"real {fmt(np.mean(off['real']))}, randX norm-matched {fmt(np.mean(off['randX norm-matched']))}"
    row_max = f"{diag_max['real']:.0%} (real) and {diag_max['randX norm-matched']:.0%} (randX norm-matched)"

    def counted(a, b, k):
        out = excluded(acc, seeds, thr, (a, b))
        return f"{k} of {n} seeds counted" + (f"; below {thr:g}, excluded: {out}" if out else "")
    accs = ", ".join(f"{k} {fmt(np.mean(v), 2)}" for k, v in acc.items())
    evidence = (f"off-diagonal fraction real − randX norm-matched = {head.text()} (95% CI, {n} seeds run; "
                f"{counted('real', 'randX norm-matched', k_head)}; {off_means}); training accuracy {accs} "
                f"(a run counts if >= {thr:g}); the diagonal is the row maximum in {row_max} of rows of the mean "
                f"matrix; N={real.n_train}, {epochs} epochs of plain SGD; estimator: {estimator_note(notes)}")
    extra = [("off(real) − off(randX), the plain control", pv,
              f"{plain.text()} (95% CI, {n} seeds run; {counted('real', 'randX', k_plain)}; randX "
              f"{fmt(np.mean(off['randX']))}); CSV rows data=randX")]

    csv = out / "exp3_per_class.csv"
    k = len(mean["real"])
    est = estimator_note(notes)
    write_csv(csv, ["data", "seed", "class_i_loss", "class_j_inputs", "g_ij", "off_diagonal_fraction",
                    "train_acc_final", "counted", "epochs", "estimator"],
              [(name, s, i, j, float(m[i, j]), off[name][r], acc[name][r], acc[name][r] >= thr, epochs, est)
               for name in SETS
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
        "exp3_per_class.csv column off_diagonal_fraction of rows data=real and data=randX norm-matched (per seed)",
        {"off_diagonal_fraction": off, "train_acc": acc, "fit_threshold": thr, "diagonal_is_row_max": diag_max,
         "effects": {"real - randX norm-matched": head.__dict__, "real - randX": plain.__dict__}},
        [png.name, csv.name],
        {"seeds": seeds, "widths": list(PAPER_WIDTHS), "n_train": real.n_train,
         "train": {**sens_train(epochs, seed).__dict__, "seed": "per run"},
         "measure": "per-class loss sensitivity, full-horizon estimator (PerClassFullHook)", "estimator": notes,
         "noise": "randX at 1.0 (corruption seed = training seed); norm-matched randX"},
        extra)
