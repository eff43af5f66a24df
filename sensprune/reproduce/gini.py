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
Only runs that learned count: a seed's pair counts only if both runs reach the settings file's
``fit_threshold`` training accuracy (eval mode, on their own training labels, after the last epoch, where
the sensitivity is measured); runs below it are listed and left out, and with fewer than 2 pairs left the
verdict is "inconclusive (did not fit …)".
The experiment runs at every training length in ``sens_epochs`` (the settings file): each length gets its
own row with the rule below; the headline is that verdict when every length agrees, otherwise
"inconclusive (the outcome depends on the training length …)".
Verdict: reproduced if the interval lies above 0, not reproduced at this scale if below 0,
inconclusive if it contains 0. Extra rows at the last length, same rule: G(real) − G(randX) (the paper's
comparison, norms not matched) and the unique-class control G(real) − G(randX).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sensprune.progress import progress_bar

from sensprune.data.noise import apply_corruption
from sensprune.io import write_csv
from sensprune.reproduce.common import (PAPER_WIDTHS, Outcome, Scale, estimator_note, fmt, input_norms,
                                        norm_matched_random_inputs, paper_data, save_png, sens_train, sensitivity_run,
                                        subplots)
from sensprune.reproduce.verdict import INCONCLUSIVE, Verdict, gini, judge_fitted

TITLE = "Gini of loss sensitivity, real vs random inputs (§3.2, Fig. 3)"
SETS = ("real", "randX", "randX norm-matched", "real, unique class", "randX, unique class")
RULE = ("at each training length, over the seeds whose two runs reached the fit threshold, reproduced if the 95% "
        "paired t-interval of G(real) − G(randX norm-matched) lies above 0, not reproduced if below 0, "
        "inconclusive if it contains 0 or fewer than 2 seeds fit; the headline is the lengths' verdict if they "
        "agree, else inconclusive.")


REASON = "random inputs with the real input norms are more unequal in sensitivity"


def judge(g_real, g_control, acc_real=None, acc_control=None, threshold: float = 0.0):
    """The rule on per-seed Ginis (paired by seed), counting only seeds whose two runs reached ``threshold``
    training accuracy (all, when no accuracies are given): (Verdict, Interval of G(real) − G(control))."""
    ones = np.ones(len(g_real))
    v, iv, _ = judge_fitted(g_real, g_control, ones if acc_real is None else acc_real,
                            ones if acc_control is None else acc_control, threshold, REASON)
    return v, iv


def across_lengths(verdicts: dict) -> Verdict:
    """The headline over training lengths {epochs: Verdict}: their verdict when all agree, else inconclusive
    naming what each length gave."""
    words = {v.word for v in verdicts.values()}
    if len(words) == 1:
        only = next(iter(verdicts.values()))
        return only if len(verdicts) == 1 else Verdict(only.word, "; ".join(dict.fromkeys(
            v.detail for v in verdicts.values() if v.detail)))
    return Verdict(INCONCLUSIVE, "the outcome depends on the training length: " + ", ".join(
        f"{e} epochs {v.word}" for e, v in verdicts.items()))


def excluded(acc: dict, seeds, threshold: float, names) -> str:
    """Which runs did not reach the fit threshold, e.g. ``"real s0 (0.79)"``; empty if none."""
    out = [f"{k} s{s} ({acc[k][i]:.2f})" for k in names for i, s in enumerate(seeds) if acc[k][i] < threshold]
    return ", ".join(out)


def datasets(real, seed: int) -> dict:
    """The five data sets of one seed (corruptions drawn with that seed)."""
    rand = apply_corruption(real, "randX", 1.0, seed)[0]
    return {"real": real, "randX": rand, "randX norm-matched": norm_matched_random_inputs(real, seed),
            "real, unique class": apply_corruption(real, "unique", 0.0, seed)[0],
            "randX, unique class": apply_corruption(rand, "unique", 0.0, seed)[0]}


def run(out: Path, scale: Scale, seed: int, progress: bool = True) -> Outcome:
    real = paper_data(scale.sens_n, scale)
    seeds = [seed + r for r in range(scale.sens_seeds)]
    thr = scale.rules.fit_threshold
    lengths = list(scale.sens_epochs)
    g = {e: {k: [] for k in SETS} for e in lengths}
    acc = {e: {k: [] for k in SETS} for e in lengths}
    norm_gini = {k: [] for k in SETS}
    notes = {}
    bar = progress_bar(total=len(lengths) * len(SETS) * len(seeds), desc="2 Gini: training runs", enabled=progress,
                       dynamic_ncols=True)
    for e in lengths:
        for s in seeds:
            for name, d in datasets(real, s).items():
                r = sensitivity_run(d, s, e, per_class=d.num_classes == real.num_classes)
                g[e][name].append(gini(r["values"]))
                acc[e][name].append(r["train_acc"])
                if e == lengths[0]:
                    norm_gini[name].append(gini(input_norms(d, 1)))
                notes = notes or r["notes"]
                bar.update()
    bar.close()
    n = len(seeds)
    last = lengths[-1]

    def compare(e, a, b):
        v, iv, k = judge_fitted(g[e][a], g[e][b], acc[e][a], acc[e][b], thr, REASON)
        return v, iv, k

    def mean(e, k):
        return fmt(float(np.mean(g[e][k])))

    def accs(e, a, b):
        return f"training accuracy {a} {fmt(np.mean(acc[e][a]), 2)}, {b} {fmt(np.mean(acc[e][b]), 2)}"

    def counted(e, a, b, k):
        out = excluded(acc[e], seeds, thr, (a, b))
        return f"{k} of {n} seeds counted" + (f"; below {thr:g}, excluded: {out}" if out else "")

    per_length = {e: compare(e, "real", "randX norm-matched") for e in lengths}
    verdict = across_lengths({e: v for e, (v, _, _) in per_length.items()})
    heads = "; ".join(f"{e} epochs: G(real) − G(randX norm-matched) = {iv.text()} (95% CI over the counted "
                      f"seeds; {counted(e, 'real', 'randX norm-matched', k)}; "
                      f"{accs(e, 'real', 'randX norm-matched')}; G(real) {mean(e, 'real')}, "
                      f"G(randX norm-matched) {mean(e, 'randX norm-matched')})" for e, (_, iv, k) in per_length.items())
    evidence = (f"{heads}; {n} seeds, N={real.n_train}, plain SGD; a run counts if its training accuracy is "
                f">= {thr:g}; estimator: {estimator_note(notes)}")
    extra = []
    if len(lengths) > 1:
        extra += [(f"G(real) − G(randX norm-matched) after {e} epochs", v,
                   f"{iv.text()} (95% CI, {n} seeds run; {counted(e, 'real', 'randX norm-matched', k)}); CSV rows "
                   f"epochs={e}") for e, (v, iv, k) in per_length.items()]
    pv, plain, pk = compare(last, "real", "randX")
    uv, uniq, uk = compare(last, "real, unique class", "randX, unique class")
    extra += [
        (f"G(real) − G(randX), norms not matched (the paper's comparison), {last} epochs", pv,
         f"{plain.text()} (95% CI, {n} seeds run; {counted(last, 'real', 'randX', pk)}; G(randX) "
         f"{mean(last, 'randX')}); the Gini of the input norms ‖x‖₁ alone is {fmt(np.mean(norm_gini['real']))} real "
         f"vs {fmt(np.mean(norm_gini['randX']))} randX vs {fmt(np.mean(norm_gini['randX norm-matched']))} "
         f"norm-matched; CSV rows data=real, data=randX"),
        (f"unique-class control G(real) − G(randX), every example its own class, {last} epochs", uv,
         f"{uniq.text()} (95% CI, {n} seeds run; {counted(last, 'real, unique class', 'randX, unique class', uk)}; "
         f"{mean(last, 'real, unique class')} vs {mean(last, 'randX, unique class')}); CSV rows "
         f"data=real, unique class and data=randX, unique class"),
    ]
    csv = out / "exp2_gini.csv"
    est = estimator_note(notes)
    write_csv(csv, ["data", "seed", "gini_loss_sensitivity", "train_acc_final", "counted", "gini_input_l1_norm",
                    "epochs", "fit_threshold", "estimator"],
              [(k, s, g[e][k][i], acc[e][k][i], acc[e][k][i] >= thr, norm_gini[k][i], e, thr, est) for e in lengths
               for k in SETS for i, s in enumerate(seeds)])
    png = out / "exp2_gini.png"
    fig, axs = subplots(1, 2, figsize=(13, 4.2))
    for ax, vals, ylab in ((axs[0], g[last], "Gini of loss sensitivity (full horizon)"),
                           (axs[1], norm_gini, "Gini of input norm ‖x‖₁")):
        for i, k in enumerate(SETS):
            ax.scatter([i] * len(vals[k]), vals[k], color="tab:blue" if k.startswith("real") else "tab:red", s=18)
            ax.errorbar(i + 0.15, np.mean(vals[k]), yerr=np.std(vals[k], ddof=1) if len(vals[k]) > 1 else 0,
                        fmt="_", color="k", capsize=4)
        ax.set_xticks(range(len(SETS)), [k.replace(", ", "\n") for k in SETS], fontsize=8)
        ax.set(ylabel=ylab)
        ax.grid(alpha=0.3)
    axs[0].set_title(f"{len(seeds)} seeds, MLP 16-16, plain SGD, {last} epochs (dots = seeds)")
    axs[1].set_title("input-norm inequality alone")
    save_png(fig, png)
    return Outcome(
        verdict, evidence, RULE, "exp2_gini.csv rows data=real and data=randX norm-matched (one row per seed)",
        {"gini": {str(e): v for e, v in g.items()}, "train_acc": {str(e): v for e, v in acc.items()},
         "gini_input_l1_norm": norm_gini, "fit_threshold": thr,
         "effects": {**{f"real - randX norm-matched @ {e} epochs": iv.__dict__ for e, (_, iv, _) in per_length.items()},
                     "real - randX": plain.__dict__, "unique: real - randX": uniq.__dict__},
         "verdict_by_length": {str(e): v.label for e, (v, _, _) in per_length.items()}},
        [png.name, csv.name],
        {"seeds": seeds, "widths": list(PAPER_WIDTHS),
         "train": {**sens_train(last, seed).__dict__, "seed": "per run", "epochs": lengths},
         "n_train": real.n_train, "measure": ("loss_sensitivity, full-horizon estimator "
                                              "(sensprune.measures.loss_sensitivity.sampled)"),
         "estimator": notes, "noise": "randX at 1.0 (corruption seed = training seed); norm-matched randX"},
        extra)
