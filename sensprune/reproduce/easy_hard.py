"""Experiment 1 — easy vs hard examples (Arpit et al. 2017, §3.1, Fig. 1).

Many one-epoch runs (seeds differ in initialisation and batch order) of the memorization MLP on
real data, on random inputs (randX, every input Gaussian) and on random labels (``randY-uniform``,
every label redrawn uniformly). For each training example: the number of runs k_i that misclassify it
after the epoch (eval mode, against its own — possibly random — label).

Claim (§3.1): on real data some examples are consistently easy and others hard — per-example
difficulty is dispersed — while noise examples are uniformly hard. The distinctive number is the
**dispersion index** D = Var_i(k_i) / (R·p̄·(1 − p̄)) over R runs: D ≈ 1 when every example has the
same misclassification probability p̄ (binomial), D ≫ 1 when examples differ. (The easy share alone
passes almost by construction: random data is at chance after one epoch.)
Effects: D(real) − D(randX) and D(real) − D(random labels), each with a 95% percentile bootstrap over
examples (the per-example counts resampled jointly). Verdict: reproduced if both intervals lie above 0,
not reproduced at this scale if either lies below 0, otherwise inconclusive. Extra row, same rule:
easy share (misclassified in ≤ 10% of runs) real − max(noise).
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from sensprune.progress import progress_bar

from sensprune.data.noise import apply_corruption
from sensprune.io import write_csv
from sensprune.reproduce.common import (Outcome, Scale, fit, fmt, mem_train, paper_data, random_labels, save_png,
                                        subplots)
from sensprune.reproduce.verdict import all_of, bootstrap_ci, decide, extra_row
from sensprune.train.sources import ArraySource, predict_logits

TITLE = "easy vs hard examples (§3.1, Fig. 1)"
BATCH = 32
RULE = ("reproduced if the 95% bootstrap intervals (over examples) of D(real) − D(randX) and of D(real) − "
        "D(random labels) both lie above 0, not reproduced if either lies below 0, else inconclusive.")
SETS = ("real", "randX", "random labels")


def dispersion(wrong: np.ndarray, runs: int) -> float:
    """Var(k_i) / (R p̄ (1 − p̄)) of per-example misclassification counts k_i over R runs (1 = binomial)."""
    p = wrong.mean() / runs
    den = runs * p * (1 - p)
    return float(wrong.var(ddof=1) / den) if den > 0 else float("nan")


def judge(counts: dict, runs: int, seed: int = 0):
    """The rule on per-example misclassification counts ``counts[data]`` over ``runs`` runs:
    (Verdict, {noise set: Interval of D(real) − D(noise)})."""
    ivs = {k: bootstrap_ci(lambda a, b: dispersion(a, runs) - dispersion(b, runs), counts["real"], counts[k],
                           seed=seed) for k in SETS[1:]}
    return all_of(*(decide(iv, f"{k} is more dispersed than real data") for k, iv in ivs.items())), ivs


def run(out: Path, scale: Scale, seed: int, progress: bool = True) -> Outcome:
    real = paper_data(scale.easy_n, scale)
    sets = {"real": real, "randX": apply_corruption(real, "randX", 1.0, seed)[0],
            "random labels": random_labels(real, 1.0, seed)[0]}
    seeds = [seed + r for r in range(scale.easy_runs)]
    R = len(seeds)
    counts = {}
    bar = progress_bar(total=len(sets) * len(seeds), desc="1 easy/hard: one-epoch runs", enabled=progress,
                       dynamic_ncols=True)
    for name, d in sets.items():
        wrong = np.zeros(d.n_train)
        src = ArraySource(d.x_train, d.y_train, torch.device("cpu"))
        for s in seeds:
            res = fit(d, scale.mem_widths, mem_train(1, s, BATCH), validate=False)
            wrong += (predict_logits(res.model, src).argmax(1) != src.y).numpy()
            bar.update()
        counts[name] = wrong
    bar.close()

    rates = {k: v / R for k, v in counts.items()}
    EASY = scale.rules.easy_share  # "easy": misclassified in at most this fraction of runs (the settings file)
    disp = {k: dispersion(v, R) for k, v in counts.items()}
    easy = {k: float(np.mean(v <= EASY)) for k, v in rates.items()}
    median = {k: float(np.median(v)) for k, v in rates.items()}
    verdict, ivs = judge(counts, R, seed)
    easy_iv = bootstrap_ci(lambda a, b, c: np.mean(a <= EASY) - max(np.mean(b <= EASY), np.mean(c <= EASY)),
                           rates["real"], rates["randX"], rates["random labels"], seed=seed)
    csv = out / "exp1_easy_hard.csv"
    write_csv(csv, ["data", "example", "misclassified_runs", "runs", "misclassification_rate"],
              [(k, i, int(c), R, float(c) / R) for k, v in counts.items() for i, c in enumerate(v)])
    evidence = (f"dispersion index D real {fmt(disp['real'], 1)}, randX {fmt(disp['randX'], 2)}, random labels "
                f"{fmt(disp['random labels'], 2)} (1 = equally hard); D(real) − D(randX) = {ivs['randX'].text(1)}, "
                f"D(real) − D(random labels) = {ivs['random labels'].text(1)} (95% bootstrap over "
                f"{real.n_train} examples; {R} seeds = one-epoch runs); median misclassification rate real "
                f"{fmt(median['real'], 2)}, randX {fmt(median['randX'], 2)}, random labels "
                f"{fmt(median['random labels'], 2)}")
    shares = ", ".join(f"{k} {100 * v:.1f}%" for k, v in easy.items())
    extra = [extra_row(f"easy share (misclassified in ≤{EASY:.0%} of runs) real − max(noise)", easy_iv,
                       "noise has more easy examples",
                       f"(95% bootstrap over examples, {R} seeds; {shares}); same CSV rows")]

    png = out / "exp1_easy_hard.png"
    fig, axs = subplots(1, 3, figsize=(13, 3.8), sharey=True)
    bins = np.linspace(0, 1, 21)
    for ax, (k, v) in zip(axs, rates.items()):
        ax.hist(v, bins=bins, color={"real": "tab:blue", "randX": "tab:red", "random labels": "tab:orange"}[k])
        ax.set_title(f"{k}: D = {fmt(disp[k], 1)}, {100 * easy[k]:.1f}% easy")
        ax.set_xlabel(f"misclassification rate over {R} one-epoch runs")
    axs[0].set_ylabel("training examples")
    fig.suptitle(f"Per-example misclassification after one epoch (N={real.n_train}, "
                 f"MLP {'-'.join(map(str, scale.mem_widths))})")
    save_png(fig, png)
    return Outcome(verdict, evidence, RULE,
                   "exp1_easy_hard.csv, all rows (misclassified_runs per example; data=real, randX, random labels)",
                   {"dispersion_index": disp, "easy_share": easy, "median_rate": median, "runs": R,
                    "n_train": real.n_train, "effects": {f"D(real) - D({k})": iv.__dict__ for k, iv in ivs.items()}},
                   [png.name, csv.name],
                   {"seeds": seeds, "easy_threshold": EASY, "noise": "randX and randY-uniform at fraction 1.0",
                    "train": {**asdict(mem_train(1, seed, BATCH)), "seed": "per run"},
                    "widths": list(scale.mem_widths)}, extra)
