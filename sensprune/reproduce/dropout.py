"""Experiment 5 — regularization vs memorization (Arpit et al. 2017, §5, Figs. 10–11).

What is tested here: **dropout** (the paper's main regularizer) and, as an extra row, **weight decay**
(L2 in Adam); the paper's other regularizers (input noise, adversarial training) are not run. For each
setting and seed: the memorization MLP trained on random labels (``randY-uniform`` at 100%) —
training accuracy (eval mode, whole training set) after the last epoch — and on real data —
validation accuracy after the last epoch.

Claim (§5): regularizers, dropout above all, hinder the memorization of noise while keeping (or
improving) generalization on real data.
Effects for a setting r against no regularizer, paired over seeds: the memorization drop
acc_rand(none) − acc_rand(r), and the validation change val(r) − val(none) + 0.02 (a loss of at most
2 points counts as keeping it). Verdict (the largest dropout rate): reproduced if both 95% paired
t-intervals lie above 0, not reproduced at this scale if either lies below 0, otherwise inconclusive.
Every other setting is an extra row with the same rule.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from sensprune.io import write_csv
from sensprune.reproduce.common import (FitTracker, Outcome, Scale, fit, fmt, mem_train, paper_data, random_labels,
                                        save_png, subplots)
from sensprune.reproduce.verdict import all_of, decide, t_ci

TITLE = "dropout (and weight decay) vs memorization of random labels (§5, Figs. 10–11)"
KEEP_VAL = 0.02   # "keeps validation accuracy": loses at most this much
RULE = ("at the largest dropout rate, reproduced if the 95% paired t-intervals over seeds of the random-label "
        f"accuracy drop and of the validation change + {KEEP_VAL} both lie above 0, not reproduced if either lies "
        "below 0, else inconclusive.")


def judge(name: str, mem_none, mem_r, val_none, val_r):
    """The rule for one setting on per-seed numbers (paired by seed): (Verdict, drop Interval, keep Interval)."""
    drop = t_ci(np.subtract(mem_none, mem_r))
    keep = t_ci(np.subtract(val_r, val_none) + KEEP_VAL)
    return all_of(decide(drop, f"{name} does not lower random-label accuracy"),
                  decide(keep, f"{name} costs more than {KEEP_VAL} validation accuracy")), drop, keep


def settings(scale: Scale) -> list[tuple[str, float, float]]:
    """(name, dropout, weight decay); the first is no regularizer."""
    out = [("none", 0.0, 0.0)]
    out += [(f"dropout {p:g}", p, 0.0) for p in scale.dropouts if p > 0]
    out += [(f"weight decay {w:g}", 0.0, w) for w in scale.weight_decays if w > 0]
    return out


def run(out: Path, scale: Scale, seed: int, progress: bool = True) -> Outcome:
    real = paper_data(scale.reg_n, scale)
    seeds = [seed + r for r in range(scale.reg_seeds)]
    sets = settings(scale)
    mem, val = {}, {}
    bar = tqdm(total=2 * len(sets) * len(seeds), desc="5 regularizers: training runs", disable=not progress,
               dynamic_ncols=True)
    for s in seeds:
        rand = random_labels(real, 1.0, s)[0]
        for name, p, w in sets:
            tc = mem_train(scale.reg_epochs, s, weight_decay=w)
            tracker = FitTracker()
            fit(rand, scale.mem_widths, tc, dropout=p, hooks=[tracker], validate=False, desc=f"rand {name}")
            mem[(name, s)] = tracker.rows[-1][0]
            res = fit(real, scale.mem_widths, tc, dropout=p, desc=f"real {name}")
            val[(name, s)] = float(res.history[-1]["test_acc"])
            bar.update(2)
    bar.close()

    effects, parts = {}, {}
    for name, _, _ in sets[1:]:
        parts[name], drop, keep = judge(name, *([d[(k, s)] for s in seeds] for d, k in
                                                ((mem, "none"), (mem, name), (val, "none"), (val, name))))
        effects[name] = (drop, keep)
    n = len(seeds)
    drops = [x for x in sets[1:] if x[1] > 0]

    def m(d, name):
        return fmt(float(np.mean([d[(name, s)] for s in seeds])))

    def text(name):
        drop, keep = effects[name]
        return (f"random-label training accuracy {m(mem, 'none')} → {m(mem, name)}, drop {drop.text()}; validation "
                f"accuracy {m(val, 'none')} → {m(val, name)}, change + {KEEP_VAL} = {keep.text()} (95% CI, {n} seeds)")
    if drops:
        head = drops[-1][0]
        verdict = parts[head]
        evidence = f"{head}: {text(head)}; {scale.reg_epochs} epochs, N={real.n_train}"
        extra = [(name, parts[name], text(name) + f"; CSV rows setting={name} and setting=none")
                 for name, _, _ in sets[1:] if name != head]
    else:
        head, verdict = None, all_of(*parts.values()) if parts else decide(t_ci([]), "")
        evidence, extra = "no dropout rate above 0 was run", [(name, parts[name], text(name)) for name in parts]

    csv = out / "exp5_dropout.csv"
    write_csv(csv, ["setting", "dropout", "weight_decay", "seed", "random_labels_train_acc_final", "real_val_acc_final",
                    "epochs"],
              [(name, p, w, s, mem[(name, s)], val[(name, s)], scale.reg_epochs) for name, p, w in sets for s in seeds])
    png = out / "exp5_dropout.png"
    fig, ax = subplots(figsize=(7.5, 4.5))
    xs = np.arange(len(sets))
    for d, c, lab in ((mem, "tab:red", "training accuracy, 100% random labels"),
                      (val, "tab:blue", "validation accuracy, real data")):
        ys = np.array([[d[(name, s)] for s in seeds] for name, _, _ in sets])
        ax.errorbar(xs, ys.mean(1), yerr=ys.std(1, ddof=1) if n > 1 else None, fmt="o-", color=c, capsize=4,
                    label=f"{lab} (mean ± sd, {n} seeds)")
    ax.axhline(1 / real.num_classes, color="gray", ls=":", label="chance")
    ax.set_xticks(xs, [name for name, _, _ in sets], fontsize=8)
    ax.set(ylabel="accuracy", ylim=(0, 1.02),
           title=f"Regularizers vs memorization ({scale.reg_epochs} epochs, "
                 f"MLP {'-'.join(map(str, scale.mem_widths))})")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    save_png(fig, png)
    return Outcome(
        verdict, evidence, RULE, f"exp5_dropout.csv rows setting={head} and setting=none (one per seed)",
        {"random_labels_train_acc": {f"{k}@s{s}": v for (k, s), v in mem.items()},
         "real_val_acc": {f"{k}@s{s}": v for (k, s), v in val.items()},
         "effects": {k: {"accuracy_drop": a.__dict__, "validation_change_plus_margin": b.__dict__}
                     for k, (a, b) in effects.items()}},
        [png.name, csv.name],
        {"seeds": seeds, "widths": list(scale.mem_widths), "train": {**asdict(mem_train(scale.reg_epochs, seed)),
                                                                     "seed": "per run"},
         "settings": [list(x) for x in sets], "n_train": real.n_train, "tested": "dropout and weight decay only",
         "train_accuracy": "eval mode, whole training set, after the last epoch"}, extra)
