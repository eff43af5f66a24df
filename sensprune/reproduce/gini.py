"""Experiment 2 — Gini of loss sensitivity over training (Arpit et al. 2017, §3.2, Fig. 3).

The paper's setting: 1000 Fashion-MNIST images at 14×14, MLP 16-16, SGD; loss_sensitivity with
horizon 1 (:mod:`sensprune.measures.unrolled`) through :func:`sensprune.score.score`; the Gini
coefficient of the running ḡ after each epoch. Two panels as in the paper: 10 classes (real vs
randX at 100%) and the unique-class control (every example its own class; real inputs vs randX).
Claim: G(real) > G(random) in both panels.
Verdict (final epoch): *reproduced* if G(real) > G(randX) in both panels and each random set was
memorized (training accuracy ≥ 0.5); *not reproduced* if G(real) ≤ G(randX) in both panels;
otherwise *inconclusive*.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from sensprune.data.noise import apply_corruption
from sensprune.io import write_csv
from sensprune.reproduce.common import (PAPER_WIDTHS, REPRODUCED, Outcome, Scale, fmt, paper_data, paper_train,
                                        plt, save_png, three_way)
from sensprune.score import ScoreConfig, score

TITLE = "Gini of loss sensitivity, real vs random inputs (§3.2, Fig. 3)"
MEMORIZED = 0.5


def run(out: Path, scale: Scale, seed: int, progress: bool = True) -> Outcome:
    real = paper_data(scale.n, scale.n_test)
    rand = apply_corruption(real, "randX", 1.0, seed)[0]
    sets = {"real": real, "randX": rand, "real, unique class": apply_corruption(real, "unique", 0.0, seed)[0],
            "randX, unique class": apply_corruption(rand, "unique", 0.0, seed)[0]}
    tc = paper_train(scale.gini_epochs, seed)
    curves, acc = {}, {}
    for name, d in tqdm(sets.items(), desc="2 Gini: training runs", disable=not progress, dynamic_ncols=True):
        cfg = ScoreConfig(dataset=d.spec, widths=PAPER_WIDTHS, measures=("loss_sensitivity",),
                          measure_options={"horizon": 1}, train=tc)
        table = score(d, cfg, progress=progress)
        curves[name] = np.array([np.nan if g is None else g for g in table.meta["gini_per_epoch"]["loss_sensitivity"]])
        acc[name] = np.array([h["train_acc"] for h in table.meta["history"][str(seed)]])

    final = {k: float(v[-1]) for k, v in curves.items()}
    holds = {"10 classes": final["real"] > final["randX"],
             "unique": final["real, unique class"] > final["randX, unique class"]}
    memorized = acc["randX"][-1] >= MEMORIZED and acc["randX, unique class"][-1] >= MEMORIZED
    word = three_way(all(holds.values()) and memorized, not any(holds.values()))
    share = float(np.mean(curves["real"] > curves["randX"]))
    sentence = (f"after {tc.epochs} epochs G(real)={fmt(final['real'])} vs G(randX)={fmt(final['randX'])} "
                f"(real above at {share:.0%} of epochs), unique-class control G(real)="
                f"{fmt(final['real, unique class'])} vs G(randX)={fmt(final['randX, unique class'])}; "
                f"training accuracy real {fmt(acc['real'][-1], 2)}, randX {fmt(acc['randX'][-1], 2)}, "
                f"unique real {fmt(acc['real, unique class'][-1], 2)}, unique randX "
                f"{fmt(acc['randX, unique class'][-1], 2)}")
    if word != REPRODUCED and all(holds.values()) and not memorized:
        sentence += f" (random data not memorized to ≥{MEMORIZED:.0%})"

    csv = out / "exp2_gini.csv"
    write_csv(csv, ["data", "epoch", "gini_loss_sensitivity", "train_acc"],
              [(k, e + 1, float(curves[k][e]), float(acc[k][e])) for k in sets for e in range(len(curves[k]))])
    png = out / "exp2_gini.png"
    fig, axs = plt.subplots(1, 3, figsize=(15, 4))
    epochs = np.arange(1, tc.epochs + 1)
    for ax, keys, title in ((axs[0], ("real", "randX"), "10 classes"),
                            (axs[1], ("real, unique class", "randX, unique class"), "every example its own class")):
        for k in keys:
            ax.plot(epochs, curves[k], label=k)
        ax.set(title=f"Gini of loss sensitivity — {title}", xlabel="epoch", ylabel="Gini coefficient")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
    for k in sets:
        axs[2].plot(epochs, acc[k], label=k)
    axs[2].set(title="training accuracy (at presentation)", xlabel="epoch", ylabel="accuracy")
    axs[2].legend(fontsize=8)
    axs[2].grid(alpha=0.3)
    save_png(fig, png)
    return Outcome(word, sentence, {"final_gini": final, "final_train_acc": {k: float(v[-1]) for k, v in acc.items()},
                                    "real_above_share_of_epochs": share},
                   [png.name, csv.name],
                   {"widths": list(PAPER_WIDTHS), "train": asdict(tc), "measure": "loss_sensitivity, horizon 1, "
                    "probe = the whole (corrupted) training set", "noise": "randX at fraction 1.0"})
