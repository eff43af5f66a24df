"""Experiment 6 — time to fit vs the proportion of Gaussian inputs (Arpit et al. 2017, §3.3.2, Fig. 6).

The paper (§3.3.2, Fig. 6; MNIST, MLP of 4096 units, N up to 50 000) replaces a proportion q of the
training *inputs* by Gaussian noise and reports that noisier training sets take longer to fit. Here,
for each size N, each proportion q (``input_noise``; randX on a fraction q, q = 0 is real data) and
each seed (training and corruption seed alike): the memorization MLP (Adam, constant lr) is trained
until its **eval-mode accuracy on the whole training set reaches 99%**, at most ``max_epochs``
epochs (a run that never reaches it is *censored*: its count is a lower bound).

Claim (as the paper states Fig. 6: time to fit grows with the data set size, and falls with capacity,
differently for noise than for real data — noise is fit example by example): effect, with seeds as
clusters, per seed the OLS slope of epochs-to-fit against log2 N for all-Gaussian inputs (randX at q = 1)
minus that slope for real data (the same seed), 95% paired t-interval over seeds. Verdict: reproduced if
the interval lies above 0 (Gaussian inputs' time to fit grows faster with N), not reproduced at this scale
if below 0, inconclusive if it contains 0. Extra rows: each slope alone; the same against capacity at the
largest N (per seed, slope of epochs against log2 of the hidden width ``fit_widths``, real minus Gaussian:
positive = capacity shortens the Gaussian inputs' time to fit more); the slope against the
Gaussian-input proportion q at each N (mean of per-seed slopes); random labels (``randY-uniform`` at 100%,
not in Fig. 6) − real at the largest N. The p-values of the paired tests are Benjamini–Hochberg adjusted
together (``fdr`` of the settings file) and each extra row's verdict is read from its adjusted q.
The CSV also has, for partial noise, the first epoch at which the noisy part and the clean part each reach
the threshold.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
from sensprune.progress import progress_bar

from sensprune.data.noise import apply_corruption
from sensprune.io import write_csv
from sensprune.reproduce.common import (FitTracker, Outcome, Scale, fit, fmt, mem_train, paper_data, random_labels,
                                        save_png, subplots)
from sensprune.benchmark.stats import bh_adjust
from sensprune.reproduce.verdict import decide, decide_q, paired, seed_slopes

TITLE = "epochs to fit vs proportion of Gaussian inputs (§3.3.2, Fig. 6)"
RULE = ("reproduced if the 95% paired t-interval over seeds of (per-seed slope of epochs-to-fit against log2 N, "
        "all-Gaussian inputs) − (the same, real data) lies above 0, not reproduced if below 0, else inconclusive.")
REASON = "the time to fit grows with N more for real data than for Gaussian inputs"


def per_seed_slopes(x, y_by_seed) -> list[float]:
    """OLS slope of each seed's ys against ``x``."""
    return seed_slopes([x] * len(y_by_seed), y_by_seed)[1]


def judge(sizes, real_by_seed, gauss_by_seed):
    """The rule: ``*_by_seed`` = per seed, epochs to fit at each of ``sizes``. (Verdict, Interval of the
    per-seed slope difference Gaussian − real against log2 N)."""
    x = np.log2(np.asarray(sizes, np.float64))
    iv = paired(per_seed_slopes(x, gauss_by_seed), per_seed_slopes(x, real_by_seed))
    return decide(iv, REASON), iv


def _first(acc: np.ndarray, threshold: float) -> int | None:
    hit = np.flatnonzero(np.nan_to_num(acc, nan=0.0) >= threshold)
    return int(hit[0]) + 1 if hit.size else None


def run(out: Path, scale: Scale, seed: int, progress: bool = True) -> Outcome:
    seeds = [seed + r for r in range(scale.fit_seeds)]
    kinds = [f"randX {q:g}" if q > 0 else "real" for q in scale.input_noise] + ["random labels 1"]
    res: dict = {}  # (kind, n, seed) -> dict
    thr = scale.rules.fit_to
    big = max(scale.sizes)
    widths = [w for w in scale.fit_widths if (w, w) != tuple(scale.mem_widths)]
    bar = progress_bar(total=(len(kinds) * len(scale.sizes) + 2 * len(widths)) * len(seeds),
                       desc="6 time to fit: training runs", enabled=progress, dynamic_ncols=True)
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
                res[(kind, n, s)] = _time_to_fit(d, idx, tuple(scale.mem_widths), scale.max_epochs, s, thr,
                                                 f"{kind} N={n}")
                bar.update()
    cap: dict = {}  # (kind, width, seed) -> dict, at the largest N
    for w in scale.fit_widths:
        for s in seeds:
            for kind in ("real", "randX 1"):
                if (w, w) == tuple(scale.mem_widths):
                    cap[(kind, w, s)] = res[(kind, big, s)]
                    continue
                real = paper_data(big, scale)
                d, idx = (real, np.zeros(0, np.int64)) if kind == "real" else apply_corruption(real, "randX", 1.0, s)
                cap[(kind, w, s)] = _time_to_fit(d, idx, (w, w), scale.max_epochs, s, thr, f"{kind} width {w}")
                bar.update()
    bar.close()

    qs = {k: float(k.split()[1]) if k.startswith("randX") else 0.0 for k in kinds if not k.startswith("random")}
    nseed = len(seeds)
    sizes = list(scale.sizes)

    def ep(d, kind, keys, s):
        return [d[(kind, k, s)]["epochs"] for k in keys]
    logn = np.log2(np.asarray(sizes, np.float64))
    n_slopes = {k: seed_slopes([logn] * nseed, [ep(res, k, sizes, s) for s in seeds]) for k in ("real", "randX 1")}
    verdict, head = judge(sizes, [ep(res, "real", sizes, s) for s in seeds],
                          [ep(res, "randX 1", sizes, s) for s in seeds])
    logw = np.log2(np.asarray(scale.fit_widths, np.float64))
    w_slopes = {k: seed_slopes([logw] * nseed, [ep(cap, k, scale.fit_widths, s) for s in seeds])
                for k in ("real", "randX 1")}
    cap_iv = paired(w_slopes["real"][1], w_slopes["randX 1"][1])
    q_slopes = {n: paired(per_seed_slopes(list(qs.values()), [[res[(k, n, s)]["epochs"] for k in qs]
                                                              for s in seeds]), [0.0] * nseed)
                for n in sizes}  # the mean per-seed slope against 0
    rl = paired([res[("random labels 1", big, s)]["epochs"] for s in seeds],
                [res[("real", big, s)]["epochs"] for s in seeds])
    tests = [("capacity: slope of epochs against log2 width, real − all-Gaussian", cap_iv,
              "capacity shortens real data's time to fit more than Gaussian inputs'",
              f"epochs per doubling of the width (95% CI, {nseed} seeds; real {w_slopes['real'][0].text(1)}, "
              f"all-Gaussian {w_slopes['randX 1'][0].text(1)}; widths {', '.join(map(str, scale.fit_widths))} at "
              f"N={big}); CSV rows n_train={big}, data=real and randX 1, by hidden_width")]
    tests += [(f"slope against the Gaussian-input proportion at N={n} (Fig. 6 set-up)", iv,
               "Gaussian inputs are fit faster than real images",
               f"epochs per unit proportion (mean of per-seed slopes, 95% t-interval over {nseed} seeds); CSV rows "
               f"n_train={n}") for n, iv in q_slopes.items()]
    tests.append(("random labels (100%, uniform) − real at the largest N, not in Fig. 6", rl,
                  "random labels are fit faster than real data",
                  f"epochs (95% CI, {nseed} seeds); CSV rows data=random labels 1 and data=real, n_train={big}"))
    pvals = [head.p] + [iv.p for _, iv, _, _ in tests]
    q = bh_adjust(pvals)
    fdr = scale.rules.fdr
    censored = sum(not r["reached"] for r in list(res.values()) + list(cap.values()))

    def mean_ep(kind, n):
        return fmt(float(np.mean([res[(kind, n, s)]["epochs"] for s in seeds])), 1)
    table = "; ".join(f"N={n}: " + ", ".join(f"{k} {mean_ep(k, n)}" for k in kinds) for n in sizes)
    half = [k for k, q_ in qs.items() if 0 < q_ < 1]
    part = ""
    if half:
        k = half[0]
        nz = [res[(k, big, s)]["noisy_part"] for s in seeds]
        cl = [res[(k, big, s)]["clean_part"] for s in seeds]
        part = (f"; with {k} at N={big} the noisy part reaches {thr:.0%} at epoch "
                f"{', '.join(str(v) if v else '-' for v in nz)} and the clean part at "
                f"{', '.join(str(v) if v else '-' for v in cl)} (per seed; '-' = not before the run stopped)")
    evidence = (f"slope of epochs-to-{thr:.0%} against log2 N ({', '.join(map(str, sizes))}), all-Gaussian − real = "
                f"{head.text(1)} epochs per doubling of N (95% paired t-interval over {nseed} seeds, per-seed slopes; "
                f"real {n_slopes['real'][0].text(1)}, all-Gaussian {n_slopes['randX 1'][0].text(1)}; BH q = "
                f"{fmt(q[0])}); mean epochs {table} ({censored} censored runs at the cap {scale.max_epochs}, counted "
                f"at the cap){part}")
    extra = [(label, decide_q(iv, float(qi), reason, fdr), f"{iv.text(1)} {detail}; BH q = {fmt(float(qi))}")
             for (label, iv, reason, detail), qi in zip(tests, q[1:])]

    csv = out / "exp6_epochs.csv"
    mw = scale.mem_widths[0]
    rows = [(n, k, qs.get(k, ""), mw, s, r["epochs"], r["reached"], r["noisy_part"] or "", r["clean_part"] or "",
             thr, scale.max_epochs) for (k, n, s), r in res.items()]
    rows += [(big, k, qs.get(k, ""), w, s, r["epochs"], r["reached"], r["noisy_part"] or "", r["clean_part"] or "",
              thr, scale.max_epochs) for (k, w, s), r in cap.items() if w != mw]
    write_csv(csv, ["n_train", "data", "gaussian_input_proportion", "hidden_width", "seed", "epochs",
                    "reached_threshold", "noisy_part_epoch", "clean_part_epoch", "threshold", "max_epochs"], rows)
    png = out / "exp6_epochs.png"
    fig, axs = subplots(1, 2, figsize=(12, 4.5))
    for n, c in zip(scale.sizes, ("tab:green", "tab:blue", "tab:purple", "tab:brown", "tab:gray")):
        ys = np.array([[res[(k, n, s)]["epochs"] for s in seeds] for k in qs])
        axs[0].errorbar(list(qs.values()), ys.mean(1), yerr=ys.std(1, ddof=1) if nseed > 1 else None, fmt="o-",
                        color=c, capsize=4, label=f"N={n}")
    axs[0].set(xlabel="proportion of Gaussian inputs", ylabel=f"epochs to {thr:.0%} training accuracy",
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
        verdict, evidence, RULE, "exp6_epochs.csv rows data=real and data=randX 1 at every n_train (per seed)",
        {"runs": {f"{k}@{n}@s{s}": r for (k, n, s), r in res.items()},
         "capacity_runs": {f"{k}@w{w}@s{s}": r for (k, w, s), r in cap.items()},
         "gauss_minus_real_slope_log2n": head.__dict__, "capacity_real_minus_gauss": cap_iv.__dict__,
         "random_labels_minus_real": rl.__dict__, "q_bh": [float(x) for x in q]},
        [png.name, csv.name],
        {"seeds": seeds, "widths": list(scale.mem_widths), "train": {**asdict(mem_train(scale.max_epochs, seed)),
                                                                     "seed": "per run"},
         "sizes": list(scale.sizes), "gaussian_input_proportions": list(scale.input_noise), "threshold": thr,
         "fit_widths": list(scale.fit_widths),
         "accuracy": "eval mode, whole training set, after each epoch"}, extra)


def _time_to_fit(d, idx, widths, max_epochs: int, seed: int, threshold: float, desc: str) -> dict:
    """Train until eval-mode training accuracy reaches ``threshold`` (at most ``max_epochs``; else censored)."""
    tracker = FitTracker(idx, stop_at=threshold)
    fit(d, widths, mem_train(max_epochs, seed), hooks=[tracker], validate=False, desc=desc)
    rows = np.array(tracker.rows)
    return {"epochs": len(rows), "reached": bool(rows[-1, 0] >= threshold),
            "noisy_part": _first(rows[:, 1], threshold), "clean_part": _first(rows[:, 2], threshold)}
