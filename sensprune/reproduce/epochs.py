"""Experiment 6 — time to fit vs the proportion of Gaussian inputs (Arpit et al. 2017, §3.3.2, Fig. 6).

The paper (§3.3.2, Fig. 6; MNIST, MLP of 4096 units, N up to 50 000) replaces a proportion q of the
training *inputs* by Gaussian noise and reports that noisier training sets take longer to fit. Here,
for each size N, each proportion q (``input_noise``; randX on a fraction q, q = 0 is real data) and
each seed (training and corruption seed alike): the memorization MLP (Adam, constant lr) is trained
until its **eval-mode accuracy on the whole training set reaches 99%**, at most ``max_epochs``
epochs (a run that never reaches it is *censored*: its count is a lower bound).

Claim: the epochs to fit grow with q. Effect: the OLS slope of epochs-to-fit against q at the largest
N over all (seed, q) points, with its 95% t-interval. Verdict: reproduced if the interval lies above
0, not reproduced at this scale if below 0 (Gaussian inputs fit faster than real images here),
inconclusive if it contains 0. Extra rows, same rule: the slope at each smaller N, and random labels
(``randY-uniform`` at 100%, a comparison the paper does not make in Fig. 6) − real at the largest N
(paired over seeds). The CSV also has, for partial noise, the first epoch at which the noisy part and
the clean part each reach 99%.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from sensprune.data.noise import apply_corruption
from sensprune.io import write_csv
from sensprune.reproduce.common import (FitTracker, Outcome, Scale, fit, fmt, mem_train, paper_data, random_labels,
                                        save_png, subplots)
from sensprune.reproduce.verdict import decide, extra_row, slope_ci, t_ci

TITLE = "epochs to fit vs proportion of Gaussian inputs (§3.3.2, Fig. 6)"
THRESHOLD = 0.99
RULE = ("reproduced if the 95% interval of the slope of epochs-to-99% against the Gaussian-input proportion at the "
        "largest N lies above 0, not reproduced if below 0, else inconclusive.")


REASON = "Gaussian inputs are fit faster than real images"


def judge(proportions, epochs):
    """The rule on (proportion, epochs-to-fit) points: (Verdict, slope Interval)."""
    iv = slope_ci(proportions, epochs)
    return decide(iv, REASON), iv


def _first(acc: np.ndarray) -> int | None:
    hit = np.flatnonzero(np.nan_to_num(acc, nan=0.0) >= THRESHOLD)
    return int(hit[0]) + 1 if hit.size else None


def run(out: Path, scale: Scale, seed: int, progress: bool = True) -> Outcome:
    seeds = [seed + r for r in range(scale.fit_seeds)]
    kinds = [f"randX {q:g}" if q > 0 else "real" for q in scale.input_noise] + ["random labels 1"]
    res: dict = {}  # (kind, n, seed) -> dict
    bar = tqdm(total=len(kinds) * len(scale.sizes) * len(seeds), desc="6 time to fit: training runs",
               disable=not progress, dynamic_ncols=True)
    for n in scale.sizes:
        real = paper_data(n, scale)
        for s in seeds:
            for kind in kinds:
                if kind == "real":
                    d, idx = real, np.zeros(0, np.int64)
                elif kind.startswith("randX"):
                    d, idx = apply_corruption(real, "randX", float(kind.split()[1]), s)
                else:
                    d, idx = random_labels(real, 1.0, s)
                tracker = FitTracker(idx, stop_at=THRESHOLD)
                fit(d, scale.mem_widths, mem_train(scale.max_epochs, s), hooks=[tracker], validate=False,
                    desc=f"{kind} N={n}")
                rows = np.array(tracker.rows)
                res[(kind, n, s)] = {"epochs": len(rows), "reached": bool(rows[-1, 0] >= THRESHOLD),
                                     "noisy_part": _first(rows[:, 1]), "clean_part": _first(rows[:, 2])}
                bar.update()
    bar.close()

    qs = {k: float(k.split()[1]) if k.startswith("randX") else 0.0 for k in kinds if not k.startswith("random")}

    def slope(n):
        pts = [(q, res[(k, n, s)]["epochs"]) for k, q in qs.items() for s in seeds]
        return judge(*zip(*pts))
    big = max(scale.sizes)
    verdict, head = slope(big)
    censored = sum(not r["reached"] for r in res.values())
    nseed = len(seeds)

    def mean_ep(kind, n):
        return fmt(float(np.mean([res[(kind, n, s)]["epochs"] for s in seeds])), 1)
    table = "; ".join(f"N={n}: " + ", ".join(f"{k} {mean_ep(k, n)}" for k in kinds) for n in scale.sizes)
    half = [k for k, q in qs.items() if 0 < q < 1]
    part = ""
    if half:
        k = half[0]
        nz = [res[(k, big, s)]["noisy_part"] for s in seeds]
        cl = [res[(k, big, s)]["clean_part"] for s in seeds]
        part = (f"; with {k} at N={big} the noisy part reaches 99% at epoch "
                f"{', '.join(str(v) if v else '-' for v in nz)} and the clean part at "
                f"{', '.join(str(v) if v else '-' for v in cl)} (per seed; '-' = not before the run stopped at "
                f"99% overall)")
    evidence = (f"slope of epochs-to-99% against the Gaussian-input proportion at N={big}: {head.text(1)} epochs per "
                f"unit proportion (95% CI, {nseed} seeds × {len(qs)} proportions); mean epochs {table} "
                f"({censored} censored runs at the cap {scale.max_epochs}){part}")
    extra = []
    for n in scale.sizes:
        if n != big:
            ev, iv = slope(n)
            extra.append((f"slope at N={n}", ev,
                          f"{iv.text(1)} epochs per unit proportion (95% CI, {nseed} seeds); CSV rows n_train={n}"))
    rl = t_ci([res[("random labels 1", big, s)]["epochs"] - res[("real", big, s)]["epochs"] for s in seeds])
    extra.append(extra_row("random labels (100%, uniform) − real at the largest N, not in Fig. 6", rl,
                           "random labels are fit faster than real data",
                           f"epochs (95% CI, {nseed} seeds); CSV rows data=random labels 1 and data=real, "
                           f"n_train={big}", digits=1))

    csv = out / "exp6_epochs.csv"
    write_csv(csv, ["n_train", "data", "gaussian_input_proportion", "seed", "epochs", "reached_threshold",
                    "noisy_part_epoch", "clean_part_epoch", "threshold", "max_epochs"],
              [(n, k, qs.get(k, ""), s, r["epochs"], r["reached"], r["noisy_part"] or "", r["clean_part"] or "",
                THRESHOLD, scale.max_epochs) for (k, n, s), r in res.items()])
    png = out / "exp6_epochs.png"
    fig, axs = subplots(1, 2, figsize=(12, 4.5))
    for n, c in zip(scale.sizes, ("tab:green", "tab:blue", "tab:purple", "tab:brown", "tab:gray")):
        ys = np.array([[res[(k, n, s)]["epochs"] for s in seeds] for k in qs])
        axs[0].errorbar(list(qs.values()), ys.mean(1), yerr=ys.std(1, ddof=1) if nseed > 1 else None, fmt="o-",
                        color=c, capsize=4, label=f"N={n}")
    axs[0].set(xlabel="proportion of Gaussian inputs", ylabel=f"epochs to {THRESHOLD:.0%} training accuracy",
               title=f"Fig. 6 set-up (mean ± sd over {nseed} seeds; cap {scale.max_epochs})")
    for k, c in zip(kinds, ("tab:blue", "tab:orange", "tab:red", "k")):
        ys = np.array([[res[(k, n, s)]["epochs"] for s in seeds] for n in scale.sizes])
        axs[1].plot(scale.sizes, ys.mean(1), "o-", color=c, label=k)
    axs[1].set(xscale="log", xlabel="training examples N", ylabel="epochs", title="time to fit vs N")
    for ax in axs:
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    save_png(fig, png)
    return Outcome(
        verdict, evidence, RULE, f"exp6_epochs.csv rows n_train={big} with data=real and data=randX q (per seed)",
        {"runs": {f"{k}@{n}@s{s}": r for (k, n, s), r in res.items()}, "slope_largest_n": head.__dict__,
         "random_labels_minus_real": rl.__dict__},
        [png.name, csv.name],
        {"seeds": seeds, "widths": list(scale.mem_widths), "train": {**asdict(mem_train(scale.max_epochs, seed)),
                                                                     "seed": "per run"},
         "sizes": list(scale.sizes), "gaussian_input_proportions": list(scale.input_noise), "threshold": THRESHOLD,
         "accuracy": "eval mode, whole training set, after each epoch"}, extra)
