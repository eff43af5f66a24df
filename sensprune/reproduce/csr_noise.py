"""Experiment 4 — critical sample ratio and validation accuracy under noise (Arpit et al. 2017, §4, Figs. 7–9).

The memorization MLP on ``csr_n`` images with random labels (``randY-uniform``) and random inputs
(randX) on a fraction q of the training set, at each noise level (q = 0 is real data), for each seed
(training and corruption seed alike); every epoch: validation accuracy, CSR of ``csr_samples``
validation examples (LASS, :class:`sensprune.measures.csr.CSRHook`, the paper's α, β, r) and eval-mode
training accuracy on the corrupted examples (:class:`~sensprune.reproduce.common.FitTracker`).

Claims (§4): (a) with random labels, validation accuracy peaks before the noise is fit — the network
learns the patterns first; (b) the CSR (a proxy for the complexity of the learned function) rises
with the amount of noise.
Effects: (a) per seed, the mean over label-noise levels q > 0 of (first epoch at which half of the
corrupted examples are fit − epoch of peak validation accuracy), a run whose noise is never fit
counting as fit after the last epoch; 95% paired t-interval over seeds. (b) for each noise kind, with seeds
as clusters: within each seed, the OLS slope of the CSR (mean over the last third of the epochs) against q
over that seed's levels; the per-seed slopes averaged, with the 95% t-interval over seeds (the levels of
one seed share its initialisation and are not independent points). Each point's binomial SE is in the CSV.
Verdict: reproduced if the intervals of (a) and of both slopes (b) lie above 0; not reproduced at
this scale if any lies below 0; otherwise inconclusive. Each part is also listed with its own verdict.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
from matplotlib import colormaps
from sensprune.progress import progress_bar

from sensprune.data.noise import apply_corruption
from sensprune.io import write_csv
from sensprune.measures.csr import CSRHook, lass_parameters
from sensprune.reproduce.common import (RANDOM_LABELS, FitTracker, Outcome, Scale, fit, fmt, mem_train, paper_data,
                                        save_png, subplots)
from sensprune.reproduce.verdict import all_of, binomial_se, decide, seed_slopes, t_ci

TITLE = "CSR and validation accuracy under noise (§4, Figs. 7–9)"
KINDS = {"random labels": RANDOM_LABELS, "randX": "randX"}
RULE = ("reproduced if the 95% intervals of (a) fit epoch − peak epoch (paired t over seeds) and of (b) both CSR "
        "slopes against noise (per-seed slopes, t over seeds) lie above 0, not reproduced if any lies below 0, "
        "else inconclusive.")


def judge(gaps, points: dict):
    """The rule: ``gaps`` = per-seed (fit epoch − peak epoch); ``points[kind]`` = one list per seed of
    (noise, late CSR) pairs. Returns (Verdict, Interval of (a), {kind: Interval of the mean per-seed slope},
    Verdict of (a), {kind: Verdict of (b)})."""
    a = t_ci(gaps)
    slopes = {k: seed_slopes([[q for q, _ in pts] for pts in per_seed],
                             [[y for _, y in pts] for pts in per_seed])[0] for k, per_seed in points.items()}
    va = decide(a, "validation accuracy peaks after the random labels are fit")
    vb = {k: decide(iv, f"CSR falls with {k}") for k, iv in slopes.items()}
    return all_of(va, *vb.values()), a, slopes, va, vb


def run(out: Path, scale: Scale, seed: int, progress: bool = True) -> Outcome:
    real = paper_data(scale.csr_n, scale)
    tc = mem_train(scale.csr_epochs, seed)
    params = lass_parameters(real.info.get("input_range", 1.0))
    seeds = [seed + r for r in range(scale.csr_seeds)]
    levels = [q for q in scale.noise_levels if q > 0]
    runs = [(s, "real", 0.0) for s in seeds] + [(s, k, q) for s in seeds for k in KINDS for q in levels]
    curves = {}
    for s, kind, q in progress_bar(runs, desc="4 CSR: training runs", enabled=progress, dynamic_ncols=True):
        d, idx = (real, np.zeros(0, np.int64)) if kind == "real" else apply_corruption(real, KINDS[kind], q, s)
        tracker = FitTracker(idx)
        csr = CSRHook(real.x_test, params, scale.csr_samples, seed=s)
        res = fit(d, scale.mem_widths, mem_train(scale.csr_epochs, s), hooks=[tracker, csr], desc=f"{kind} {q:g}")
        rows = np.array(tracker.rows)
        curves[(s, kind, q)] = {"val_acc": np.array([h["test_acc"] for h in res.history]), "csr": csr.curve,
                                "train_acc": rows[:, 0], "train_acc_noisy": rows[:, 1], "n_csr": len(csr.x)}

    def run_of(s, kind, q):
        return curves[(s, "real", 0.0) if q == 0 else (s, kind, q)]
    last = max(1, scale.csr_epochs // 3)
    late = {(s, k, q): float(np.mean(run_of(s, k, q)["csr"][-last:])) for s in seeds for k in KINDS
            for q in scale.noise_levels}
    gaps, peaks = [], {}
    for s in seeds:
        per = []
        for q in levels:
            c = curves[(s, "random labels", q)]
            fit_ep = np.flatnonzero(c["train_acc_noisy"] >= scale.rules.noise_fit)
            fit_at = int(fit_ep[0]) + 1 if fit_ep.size else scale.csr_epochs + 1
            peak = int(np.argmax(c["val_acc"])) + 1
            peaks[(s, q)] = (peak, fit_at, bool(fit_ep.size))
            per.append(fit_at - peak)
        gaps.append(float(np.mean(per)) if per else float("nan"))
    verdict, a, slopes, va, vb = judge(gaps, {k: [[(q, late[(s, k, q)]) for q in scale.noise_levels] for s in seeds]
                                              for k in KINDS})
    n = len(seeds)
    never = sum(not f for _, _, f in peaks.values())
    n_csr = curves[runs[0]]["n_csr"]
    real_csr = float(np.mean([late[(s, "randX", 0.0)] for s in seeds]))
    top = max(scale.noise_levels)
    evidence = (f"(a) fit epoch − peak validation epoch with random labels = {a.text(1)} epochs (95% CI, {n} seeds, "
                f"mean over levels {', '.join(f'{q:g}' for q in levels)}; noise never fit in {never} of "
                f"{len(peaks)} runs); (b) CSR slope per unit noise random labels {slopes['random labels'].text(3)}, "
                f"randX {slopes['randX'].text(3)} (mean of per-seed slopes, 95% t-interval over {n} seeds, "
                f"{len(scale.noise_levels)} levels each; CSR "
                f"real {fmt(real_csr)} vs {top:g} noise random labels "
                f"{fmt(np.mean([late[(s, 'random labels', top)] for s in seeds]))}, randX "
                f"{fmt(np.mean([late[(s, 'randX', top)] for s in seeds]))}, binomial SE about "
                f"{fmt(binomial_se(real_csr, n_csr))} on {n_csr} validation images)")
    extra = [("(a) validation accuracy peaks before the random labels are fit", va,
              f"{a.text(1)} epochs (95% CI, {n} seeds); CSV rows kind=random labels, columns val_acc and "
              "train_acc_noisy")]
    for k, iv in slopes.items():
        extra.append((f"(b) CSR rises with {k}", vb[k], f"mean per-seed slope {iv.text(3)} per unit noise "
                                                        f"(95% t-interval over {n} seeds); "
                                                        f"CSV rows kind={k} and kind=real, column csr"))

    csv = out / "exp4_csr.csv"
    cols = ("val_acc", "csr", "train_acc", "train_acc_noisy")
    write_csv(csv, ["kind", "noise", "seed", "epoch", *cols, "csr_binomial_se", "csr_samples"],
              [(k, q, s, e + 1, *(float(c[x][e]) for x in cols), binomial_se(float(c["csr"][e]), c["n_csr"]),
                c["n_csr"]) for (s, k, q), c in curves.items() for e in range(len(c["val_acc"]))])
    png = out / "exp4_csr.png"
    fig, axs = subplots(2, 2, figsize=(12, 8), sharex=True)
    cmap = colormaps["viridis"]
    for col, kind in enumerate(KINDS):
        for q in scale.noise_levels:
            color = cmap(q / max(top, 1e-9) * 0.9)
            va_m = np.mean([run_of(s, kind, q)["val_acc"] for s in seeds], axis=0)
            cs_m = np.mean([run_of(s, kind, q)["csr"] for s in seeds], axis=0)
            ep = np.arange(1, len(va_m) + 1)
            axs[0, col].plot(ep, va_m, color=color, label=f"{q:.0%} {kind if q else '(real)'}")
            axs[1, col].plot(ep, cs_m, color=color, label=f"{q:.0%}")
        axs[0, col].set(title=f"{kind}: validation accuracy (mean of {n} seeds)", ylabel="accuracy")
        axs[1, col].set(title=f"{kind}: critical sample ratio (validation)", xlabel="epoch", ylabel="CSR")
        for ax in axs[:, col]:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    save_png(fig, png)
    return Outcome(
        verdict, evidence, RULE, "exp4_csr.csv, rows per (kind, noise, seed, epoch); late CSR = last "
        f"{last} epochs of column csr",
        {"fit_minus_peak": a.__dict__, "csr_slope": {k: iv.__dict__ for k, iv in slopes.items()},
         "late_csr": {f"{k}@{q:g}@s{s}": v for (s, k, q), v in late.items()},
         "peaks": {f"q{q:g}@s{s}": {"peak_val_epoch": p, "noise_fit_epoch": f, "fit": ok}
                   for (s, q), (p, f, ok) in peaks.items()}},
        [png.name, csv.name],
        {"seeds": seeds, "widths": list(scale.mem_widths), "train": {**asdict(tc), "seed": "per run"}, "lass": params,
         "csr_samples": scale.csr_samples, "noise_levels": list(scale.noise_levels), "n_train": real.n_train,
         "noise_fit_threshold": scale.rules.noise_fit, "random_labels": RANDOM_LABELS}, extra)
