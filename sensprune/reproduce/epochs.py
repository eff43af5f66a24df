"""Experiment 6 — epochs to fit the training set vs dataset size, real vs noise (Arpit et al. 2017, Fig. 2, §5).

For each size N: the memorization MLP (Adam, constant lr) trained on N real images, on randY (100%
random labels) and on randX (100% Gaussian inputs) until its **eval-mode accuracy on the whole
training set reaches 99%** (the threshold; 100% is brittle for Adam at a constant rate), at most
``max_epochs`` epochs (a run that never reaches it is *censored*: its count is a lower bound).
Claim: noise needs more epochs than real data, and the gap grows with N.
Verdict per noise kind: the claim holds if noise is slower at every size and the gap at the largest
size exceeds the gap at the smallest (a censored count at the largest size is used as a lower
bound; a censored count at the smallest leaves it open); it fails if noise is slower at fewer than
half of the sizes or the gap does not grow. *reproduced* if it holds for randY and randX, *not
reproduced* if it fails for both, otherwise *inconclusive*.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from tqdm.auto import tqdm

from sensprune.data.noise import apply_corruption
from sensprune.io import write_csv
from sensprune.reproduce.common import (FitTracker, Outcome, Scale, fit, mem_train, paper_data, plt, save_png,
                                        spearman, three_way)

TITLE = "epochs to 99% training accuracy vs dataset size (Fig. 2, §5)"
THRESHOLD = 0.99
KINDS = ("real", "randY", "randX")


def run(out: Path, scale: Scale, seed: int, progress: bool = True) -> Outcome:
    tc = mem_train(scale.max_epochs, seed)
    res: dict[tuple[str, int], tuple[int, bool]] = {}  # (kind, N) -> (epochs, reached)
    bar = tqdm(total=len(KINDS) * len(scale.sizes), desc="6 epochs vs size: training runs", disable=not progress,
               dynamic_ncols=True)
    for n in scale.sizes:
        real = paper_data(n, scale.n_test)
        for kind in KINDS:
            d = real if kind == "real" else apply_corruption(real, kind, 1.0, seed)[0]
            tracker = FitTracker(stop_at=THRESHOLD)
            fit(d, scale.mem_widths, tc, hooks=[tracker], validate=False, progress=progress, desc=f"{kind} N={n}")
            res[(kind, n)] = (len(tracker.rows), tracker.rows[-1][0] >= THRESHOLD)
            bar.update()
    bar.close()

    verdicts, parts, gaps = {}, [], {}
    for kind in ("randY", "randX"):
        sizes = [n for n in scale.sizes if res[("real", n)][1]]  # real censored: nothing to compare
        gap = {n: res[(kind, n)][0] - res[("real", n)][0] for n in sizes}
        gaps[kind] = gap
        slower = [gap[n] > 0 for n in sizes]
        grows = None
        if len(sizes) >= 2 and res[(kind, sizes[0])][1]:
            lo, hi = gap[sizes[0]], gap[sizes[-1]]
            grows = hi > lo if (res[(kind, sizes[-1])][1] or hi > lo) else None
        ok = bool(sizes) and all(slower) and grows is True
        bad = (bool(sizes) and sum(slower) < len(sizes) / 2) or grows is False
        verdicts[kind] = (ok, bad)
        rho = spearman(sizes, [gap[n] for n in sizes]) if len(sizes) > 1 else float("nan")
        if not sizes:
            parts.append(f"{kind}: real data never reached the threshold, nothing to compare")
            continue
        parts.append(f"{kind} slower at {sum(slower)}/{len(sizes)} sizes, gap "
                     + " → ".join(f"{gap[n]}{'+' if not res[(kind, n)][1] else ''}" for n in sizes)
                     + f" epochs (Spearman with N {rho:.2f})")
    word = three_way(all(v[0] for v in verdicts.values()), all(v[1] for v in verdicts.values()))
    table = ", ".join(f"N={n}: " + "/".join(f"{res[(k, n)][0]}{'+' if not res[(k, n)][1] else ''}" for k in KINDS)
                      for n in scale.sizes)
    sentence = (f"epochs to {THRESHOLD:.0%} training accuracy real/randY/randX {table} ('+' = not reached "
                f"within {scale.max_epochs}); " + "; ".join(parts))

    csv = out / "exp6_epochs.csv"
    write_csv(csv, ["n_train", "data", "epochs", "reached_threshold", "threshold", "max_epochs"],
              [(n, k, res[(k, n)][0], res[(k, n)][1], THRESHOLD, scale.max_epochs) for n in scale.sizes
               for k in KINDS])
    png = out / "exp6_epochs.png"
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for k, c in zip(KINDS, ("tab:blue", "tab:orange", "tab:red")):
        e = [res[(k, n)][0] for n in scale.sizes]
        ax.plot(scale.sizes, e, "o-", color=c, label=k)
        cens = [(n, res[(k, n)][0]) for n in scale.sizes if not res[(k, n)][1]]
        if cens:
            ax.scatter(*zip(*cens), marker="^", s=80, facecolors="none", edgecolors=c)
    ax.set(xscale="log", xlabel="training examples N", ylabel=f"epochs to {THRESHOLD:.0%} training accuracy",
           title=f"Time to fit vs dataset size (△ = not reached within {scale.max_epochs} epochs)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_png(fig, png)
    return Outcome(word, sentence,
                   {"epochs": {f"{k}@{n}": {"epochs": e, "reached": r} for (k, n), (e, r) in res.items()},
                    "gap": {k: {str(n): g for n, g in v.items()} for k, v in gaps.items()}},
                   [png.name, csv.name],
                   {"widths": list(scale.mem_widths), "train": asdict(tc), "sizes": list(scale.sizes),
                    "threshold": THRESHOLD, "accuracy": "eval mode, whole training set, after each epoch",
                    "corruption_seed": seed})
