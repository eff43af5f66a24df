"""Experiment 1 — easy vs hard examples (Arpit et al. 2017, §2, Fig. 1).

Many one-epoch runs (seeds differ in initialisation and batch order) of the memorization MLP on
real data, on randX (every input replaced by Gaussian noise) and on randY (every label replaced by
another class). For each training example: the fraction of runs that misclassify it after the
epoch (eval mode, against its own — possibly random — label).
Claim: on real data many examples are consistently easy (rate near 0); noise examples are uniformly
hard (rates bunched near the chance error 1 − 1/K).
Verdict: *reproduced* if ≥ 20% of real examples are "easy" (misclassified in ≤ 10% of runs), at most
5% of each noise set is, and each noise set's median rate is ≥ 0.5; *not reproduced* if the real
easy share does not exceed the noise ones; otherwise *inconclusive*.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from sensprune.data.noise import apply_corruption
from sensprune.io import write_csv
from sensprune.reproduce.common import (NOT_REPRODUCED, REPRODUCED, Outcome, Scale, fit, fmt, mem_train,
                                        paper_data, plt, save_png, three_way)
from sensprune.train import ArraySource, predict_logits

TITLE = "easy vs hard examples (§2, Fig. 1)"
EASY = 0.10  # an example is "easy" if misclassified in at most this fraction of runs
BATCH = 32


def run(out: Path, scale: Scale, seed: int, progress: bool = True) -> Outcome:
    real = paper_data(scale.easy_n, scale.n_test)
    sets = {"real": real, "randX": apply_corruption(real, "randX", 1.0, seed)[0],
            "randY": apply_corruption(real, "randY", 1.0, seed)[0]}
    seeds = [seed + r for r in range(scale.easy_runs)]
    rates = {}
    bar = tqdm(total=len(sets) * len(seeds), desc="1 easy/hard: one-epoch runs", disable=not progress,
               dynamic_ncols=True)
    for name, d in sets.items():
        wrong = np.zeros(d.n_train)
        src = ArraySource(d.x_train, d.y_train, torch.device("cpu"))
        for s in seeds:
            res = fit(d, scale.mem_widths, mem_train(1, s, BATCH), validate=False)
            wrong += (predict_logits(res.model, src).argmax(1) != src.y).numpy()
            bar.update()
        rates[name] = wrong / len(seeds)
    bar.close()

    easy = {k: float(np.mean(v <= EASY)) for k, v in rates.items()}
    median = {k: float(np.median(v)) for k, v in rates.items()}
    noise_easy = max(easy["randX"], easy["randY"])
    ok = easy["real"] >= 0.2 and noise_easy <= 0.05 and min(median["randX"], median["randY"]) >= 0.5
    word = three_way(ok, easy["real"] <= noise_easy)
    sentence = (f"{100 * easy['real']:.1f}% of real examples are misclassified in ≤{EASY:.0%} of "
                f"{len(seeds)} one-epoch runs vs {100 * easy['randX']:.1f}% (randX) and "
                f"{100 * easy['randY']:.1f}% (randY); median misclassification rate real {fmt(median['real'], 2)}, "
                f"randX {fmt(median['randX'], 2)}, randY {fmt(median['randY'], 2)} (N={real.n_train})")
    if word not in (REPRODUCED, NOT_REPRODUCED):
        sentence += "; the real easy share or the noise hardness misses the thresholds"

    csv = out / "exp1_easy_hard.csv"
    write_csv(csv, ["data", "example", "misclassification_rate"],
              [(k, i, float(r)) for k, v in rates.items() for i, r in enumerate(v)])
    png = out / "exp1_easy_hard.png"
    fig, axs = plt.subplots(1, 3, figsize=(13, 3.8), sharey=True)
    bins = np.linspace(0, 1, 21)
    for ax, (k, v) in zip(axs, rates.items()):
        ax.hist(v, bins=bins, color={"real": "tab:blue", "randX": "tab:red", "randY": "tab:orange"}[k])
        ax.set_title(f"{k}: {100 * easy[k]:.1f}% easy (rate ≤ {EASY:.0%})")
        ax.set_xlabel(f"misclassification rate over {len(seeds)} one-epoch runs")
    axs[0].set_ylabel("training examples")
    fig.suptitle(f"Per-example misclassification after one epoch (N={real.n_train}, "
                 f"MLP {'-'.join(map(str, scale.mem_widths))})")
    save_png(fig, png)
    return Outcome(word, sentence, {"easy_share": easy, "median_rate": median, "runs": len(seeds),
                                    "n_train": real.n_train},
                   [png.name, csv.name],
                   {"seeds": seeds, "easy_threshold": EASY, "noise": "randX/randY at fraction 1.0",
                    "train": {**asdict(mem_train(1, seed, BATCH)), "seed": "per run"},
                    "widths": list(scale.mem_widths)})
