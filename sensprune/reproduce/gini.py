"""Experiment 2 — Gini of loss sensitivity, real vs random inputs (Arpit et al. 2017, §3.2, Fig. 3).

The paper's measure: ``loss_sensitivity`` with the full-horizon estimator (K = 16 stratified probe
steps, each ∂L_t/∂x exact through every earlier SGD update; :mod:`sensprune.measures.loss_sensitivity.sampled`) on the
paper's MLP 16-16 trained with plain SGD (see :mod:`sensprune.reproduce.common` for the stand-ins),
after the last epoch, for each seed (training and corruption seed alike):

- real data; randX (every input Gaussian, the paper's random inputs); **randX with norms matched**
  (each Gaussian input rescaled to the L1 norm of the real input it replaces — real images differ
  in norm far more than Gaussian inputs, so this is the control that compares sensitivity rather
  than input norms); and the unique-class control (every example its own class) on real and randX.

Claim (§3.2): loss sensitivity is more unequal over examples for real data, G(real) > G(random).
Effect: per seed, G(real) − G(randX, norm-matched); 95% paired t-interval over seeds.
Verdict: reproduced if the interval lies above 0, not reproduced at this scale if below 0,
inconclusive if it contains 0. Extra rows, same rule: G(real) − G(randX) (the paper's comparison,
norms not matched) and the unique-class control G(real) − G(randX).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from sensprune.data.noise import apply_corruption
from sensprune.io import write_csv
from sensprune.reproduce.common import (PAPER_WIDTHS, Outcome, Scale, estimator_note, fmt, input_norms,
                                        norm_matched_random_inputs, paper_data, save_png, sens_train, sensitivity_run,
                                        subplots)
from sensprune.reproduce.verdict import extra_row, gini, judge_paired, t_ci

TITLE = "Gini of loss sensitivity, real vs random inputs (§3.2, Fig. 3)"
SETS = ("real", "randX", "randX norm-matched", "real, unique class", "randX, unique class")
RULE = ("reproduced if the 95% paired t-interval over seeds of G(real) − G(randX norm-matched) lies above 0, "
        "not reproduced if below 0, inconclusive if it contains 0.")


REASON = "random inputs with the real input norms are more unequal in sensitivity"


def judge(g_real, g_control):
    """The rule on per-seed Ginis (paired by seed): (Verdict, Interval of G(real) − G(control))."""
    return judge_paired(g_real, g_control, REASON)


def datasets(real, seed: int) -> dict:
    """The five data sets of one seed (corruptions drawn with that seed)."""
    rand = apply_corruption(real, "randX", 1.0, seed)[0]
    return {"real": real, "randX": rand, "randX norm-matched": norm_matched_random_inputs(real, seed),
            "real, unique class": apply_corruption(real, "unique", 0.0, seed)[0],
            "randX, unique class": apply_corruption(rand, "unique", 0.0, seed)[0]}


def run(out: Path, scale: Scale, seed: int, progress: bool = True) -> Outcome:
    real = paper_data(scale.sens_n, scale)
    seeds = [seed + r for r in range(scale.sens_seeds)]
    g = {k: [] for k in SETS}
    acc = {k: [] for k in SETS}
    norm_gini = {k: [] for k in SETS}
    notes = {}
    bar = tqdm(total=len(SETS) * len(seeds), desc="2 Gini: training runs", disable=not progress, dynamic_ncols=True)
    for s in seeds:
        for name, d in datasets(real, s).items():
            r = sensitivity_run(d, s, scale.sens_epochs, per_class=d.num_classes == real.num_classes)
            g[name].append(gini(r["values"]))
            acc[name].append(r["train_acc"])
            norm_gini[name].append(gini(input_norms(d, 1)))
            notes = notes or r["notes"]
            bar.update()
    bar.close()

    def diff(a, b):
        return t_ci(np.subtract(g[a], g[b]))
    verdict, head = judge(g["real"], g["randX norm-matched"])
    plain = diff("real", "randX")
    uniq = diff("real, unique class", "randX, unique class")
    n = len(seeds)

    def mean(k):
        return fmt(float(np.mean(g[k])))
    evidence = (f"G(real) − G(randX norm-matched) = {head.text()} (95% CI, {n} seeds; G(real) {mean('real')}, "
                f"G(randX norm-matched) {mean('randX norm-matched')}) after {scale.sens_epochs} epochs of plain SGD, "
                f"N={real.n_train}; training accuracy real {fmt(np.mean(acc['real']), 2)}, randX norm-matched "
                f"{fmt(np.mean(acc['randX norm-matched']), 2)}; estimator: {estimator_note(notes)}")
    extra = [
        extra_row("G(real) − G(randX), norms not matched (the paper's comparison)", plain,
                  "random inputs are more unequal in sensitivity",
                  f"(95% CI, {n} seeds; G(randX) {mean('randX')}); the Gini of the input norms ‖x‖₁ "
                  f"alone is {fmt(np.mean(norm_gini['real']))} real vs {fmt(np.mean(norm_gini['randX']))} randX vs "
                  f"{fmt(np.mean(norm_gini['randX norm-matched']))} norm-matched; CSV rows data=real, data=randX"),
        extra_row("unique-class control G(real) − G(randX), every example its own class", uniq,
                  "random inputs are more unequal in sensitivity",
                  f"(95% CI, {n} seeds; {mean('real, unique class')} vs {mean('randX, unique class')}; "
                  f"training accuracy {fmt(np.mean(acc['real, unique class']), 2)} vs "
                  f"{fmt(np.mean(acc['randX, unique class']), 2)}); CSV rows data=real, unique class and "
                  f"data=randX, unique class"),
    ]

    csv = out / "exp2_gini.csv"
    est = estimator_note(notes)
    write_csv(csv, ["data", "seed", "gini_loss_sensitivity", "train_acc_final", "gini_input_l1_norm", "epochs",
                    "estimator"],
              [(k, s, g[k][i], acc[k][i], norm_gini[k][i], scale.sens_epochs, est) for k in SETS
               for i, s in enumerate(seeds)])
    png = out / "exp2_gini.png"
    fig, axs = subplots(1, 2, figsize=(13, 4.2))
    for ax, vals, ylab in ((axs[0], g, "Gini of loss sensitivity (full horizon)"),
                           (axs[1], norm_gini, "Gini of input norm ‖x‖₁")):
        for i, k in enumerate(SETS):
            ax.scatter([i] * len(vals[k]), vals[k], color="tab:blue" if k.startswith("real") else "tab:red", s=18)
            ax.errorbar(i + 0.15, np.mean(vals[k]), yerr=np.std(vals[k], ddof=1) if len(vals[k]) > 1 else 0,
                        fmt="_", color="k", capsize=4)
        ax.set_xticks(range(len(SETS)), [k.replace(", ", "\n") for k in SETS], fontsize=8)
        ax.set(ylabel=ylab)
        ax.grid(alpha=0.3)
    axs[0].set_title(f"{len(seeds)} seeds, MLP 16-16, plain SGD, {scale.sens_epochs} epochs (dots = seeds)")
    axs[1].set_title("input-norm inequality alone")
    save_png(fig, png)
    return Outcome(
        verdict, evidence, RULE, "exp2_gini.csv rows data=real and data=randX norm-matched (one row per seed)",
        {"gini": g, "train_acc": acc, "gini_input_l1_norm": norm_gini,
         "effects": {"real - randX norm-matched": head.__dict__, "real - randX": plain.__dict__,
                     "unique: real - randX": uniq.__dict__}},
        [png.name, csv.name],
        {"seeds": seeds, "widths": list(PAPER_WIDTHS),
         "train": {**sens_train(scale.sens_epochs, seed).__dict__, "seed": "per run"},
         "n_train": real.n_train, "measure": ("loss_sensitivity, full-horizon estimator "
                                              "(sensprune.measures.loss_sensitivity.sampled)"),
         "estimator": notes, "noise": "randX at 1.0 (corruption seed = training seed); norm-matched randX"},
        extra)
