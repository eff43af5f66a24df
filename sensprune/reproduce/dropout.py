"""Experiment 5 — regularization vs memorization (Arpit et al. 2017, §5, Figs. 10–11).

What is tested here: **dropout** (the paper's main regularizer) and **weight decay** (L2 in Adam); the
paper's other regularizers (input noise, adversarial training) are not run. For each setting and seed: the
memorization MLP trained on random labels (``randY-uniform`` at 100%) — training accuracy (eval mode, whole
training set) after the last epoch — and on real data — the **best** validation accuracy over the epochs
(as the paper's Fig. 10 reports it).

Claim (§5): regularizers, dropout above all, hinder the memorization of noise while keeping (or
improving) generalization on real data.
Tests for a setting r against no regularizer, paired over seeds (:mod:`sensprune.benchmark.stats`):
the memorization drop acc_rand(none) − acc_rand(r) (paired t); the validation change val(r) − val(none)
(paired t) and its equivalence within ±``val_margin`` of the settings file (TOST, Schuirmann 1987; the
margin is justified there: two binomial SEs of the validation accuracy). "Dropout is the most effective":
for the largest dropout rate against every other regularizer r', acc_rand(r') − acc_rand(dropout) (paired
t; positive = dropout lowers memorization more). The p-values of the paired t-tests are Benjamini–Hochberg
adjusted together, the TOST p-values among themselves (false discovery rate ``fdr``).
Verdict of a setting: the drop is significant and positive, and validation accuracy is kept — significantly
higher, or equivalent within the margin (TOST) — → reproduced; the drop significant and negative, or
validation accuracy significantly lower → not reproduced at this scale; otherwise inconclusive. The headline
is the largest dropout rate's; every other setting and the dropout-vs-other comparisons are extra rows.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
from sensprune.progress import progress_bar

from sensprune.io import write_csv
from sensprune.reproduce.common import (FitTracker, Outcome, Scale, fit, fmt, mem_train, paper_data, random_labels,
                                        save_png, subplots)
from sensprune.benchmark.stats import bh_adjust, equivalence
from sensprune.reproduce.verdict import INCONCLUSIVE, REPRODUCED, Verdict, all_of, decide_q, paired

TITLE = "dropout (and weight decay) vs memorization of random labels (§5, Figs. 10–11)"
RULE = ("per setting vs none, paired over seeds, BH-adjusted: reproduced if the random-label accuracy drop is "
        "significant and positive and best validation accuracy is significantly higher or equivalent within the "
        "margin (TOST), not reproduced if the drop is negative or validation accuracy significantly lower, else "
        "inconclusive; headline: the largest dropout rate.")


def judge_all(mem: dict, val: dict, names, seeds, margin: float, fdr: float, head: str | None = None) -> dict:
    """Every test of the experiment on per-seed numbers ``mem[(name, seed)]``, ``val[(name, seed)]``
    (``names[0]`` is no regularizer). Returns {name: (Verdict, drop Interval, validation Interval, TOST upper
    bound, q_tost)} and, for ``head`` (a dropout setting), {"head vs other": (Verdict, Interval)}."""
    def col(d, k):
        return [d[(k, s)] for s in seeds]
    none = names[0]
    drops = {k: paired(col(mem, none), col(mem, k)) for k in names[1:]}
    vals = {k: paired(col(val, k), col(val, none)) for k in names[1:]}
    eq = {k: equivalence(col(val, k), col(val, none), margin) for k in names[1:]}
    others = [k for k in names[1:] if head and k != head and not k.startswith("dropout")]
    vs = {k: paired(col(mem, k), col(mem, head)) for k in others}
    tests = [drops[k].p for k in names[1:]] + [vals[k].p for k in names[1:]] + [vs[k].p for k in others]
    q = list(bh_adjust(tests))
    q_tost = dict(zip(names[1:], bh_adjust([eq[k][1] for k in names[1:]])))
    m = len(names) - 1
    out = {}
    for i, k in enumerate(names[1:]):
        v_drop = decide_q(drops[k], q[i], f"{k} does not lower random-label accuracy", fdr)
        qv = q[m + i]
        if np.isfinite(qv) and qv < fdr:
            v_keep = (Verdict(REPRODUCED, "") if vals[k].est > 0
                      else decide_q(vals[k], qv, f"{k} lowers best validation accuracy", fdr))
        elif np.isfinite(q_tost[k]) and q_tost[k] < fdr:
            v_keep = Verdict(REPRODUCED, "")
        else:
            v_keep = Verdict(INCONCLUSIVE, f"validation change neither significant nor within ±{margin:g} (TOST)")
        out[k] = (all_of(v_drop, v_keep), drops[k], vals[k], eq[k][0], float(q_tost[k]))
    for j, k in enumerate(others):
        out[f"{head} vs {k}"] = (decide_q(vs[k], q[2 * m + j], f"{k} lowers random-label accuracy more than {head}",
                                          fdr), vs[k])
    return out


def judge(name: str, mem_none, mem_r, val_none, val_r, margin: float = 0.02, fdr: float = 0.05):
    """The rule for one setting alone (no other tests to adjust for): (Verdict, drop Interval, val Interval)."""
    seeds = range(len(mem_none))
    mem = {**{("none", s): v for s, v in zip(seeds, mem_none)}, **{(name, s): v for s, v in zip(seeds, mem_r)}}
    val = {**{("none", s): v for s, v in zip(seeds, val_none)}, **{(name, s): v for s, v in zip(seeds, val_r)}}
    v, drop, keep, _, _ = judge_all(mem, val, ["none", name], list(seeds), margin, fdr)[name]
    return v, drop, keep


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
    bar = progress_bar(total=2 * len(sets) * len(seeds), desc="5 regularizers: training runs", enabled=progress,
                       dynamic_ncols=True)
    for s in seeds:
        rand = random_labels(real, 1.0, s)[0]
        for name, p, w in sets:
            tc = mem_train(scale.reg_epochs, s, weight_decay=w)
            tracker = FitTracker()
            fit(rand, scale.mem_widths, tc, dropout=p, hooks=[tracker], validate=False, desc=f"rand {name}")
            mem[(name, s)] = tracker.rows[-1][0]
            res = fit(real, scale.mem_widths, tc, dropout=p, desc=f"real {name}")
            val[(name, s)] = float(max(h["test_acc"] for h in res.history))  # best, as Fig. 10
            bar.update(2)
    bar.close()

    margin, fdr = scale.rules.val_margin, scale.rules.fdr
    names = [x[0] for x in sets]
    drops = [x for x in sets[1:] if x[1] > 0]
    head = drops[-1][0] if drops else None
    res = judge_all(mem, val, names, seeds, margin, fdr, head)
    n = len(seeds)

    def m(d, name):
        return fmt(float(np.mean([d[(name, s)] for s in seeds])))

    def text(name):
        _, drop, keep, upper, q_t = res[name]
        return (f"random-label training accuracy {m(mem, 'none')} → {m(mem, name)}, drop {drop.text()}; best "
                f"validation accuracy {m(val, 'none')} → {m(val, name)}, change {keep.text()} (95% CI, {n} seeds; "
                f"one-sided 95% upper bound {fmt(upper)}, TOST at ±{margin:g}: q = {fmt(q_t)})")
    vs_rows = [(k, v) for k, v in res.items() if k not in names]
    vs_text = [(f"{k}: dropout lowers random-label accuracy more", v,
                f"{iv.text()} (accuracy with the other − with dropout, 95% CI, {n} seeds); CSV rows setting="
                f"{k.split(' vs ')[1]} and setting={head}") for k, (v, iv) in vs_rows]
    if head:
        verdict = res[head][0]
        evidence = (f"{head}: {text(head)}; {scale.reg_epochs} epochs, N={real.n_train}; p-values BH-adjusted over "
                    f"{2 * (len(names) - 1) + len(vs_rows)} paired tests (TOST separately)")
        extra = [(name, res[name][0], text(name) + f"; CSV rows setting={name} and setting=none")
                 for name in names[1:] if name != head] + vs_text
    else:
        verdict = all_of(*(res[k][0] for k in names[1:])) if len(names) > 1 else Verdict(INCONCLUSIVE, "no setting")
        evidence, extra = "no dropout rate above 0 was run", [(k, res[k][0], text(k)) for k in names[1:]]
    effects = {k: (res[k][1], res[k][2]) for k in names[1:]}

    csv = out / "exp5_dropout.csv"
    write_csv(csv, ["setting", "dropout", "weight_decay", "seed", "random_labels_train_acc_final", "real_val_acc_best",
                    "epochs"],
              [(name, p, w, s, mem[(name, s)], val[(name, s)], scale.reg_epochs) for name, p, w in sets for s in seeds])
    png = out / "exp5_dropout.png"
    fig, ax = subplots(figsize=(7.5, 4.5))
    xs = np.arange(len(sets))
    for d, c, lab in ((mem, "tab:red", "training accuracy, 100% random labels"),
                      (val, "tab:blue", "best validation accuracy, real data")):
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
         "effects": {k: {"accuracy_drop": a.__dict__, "validation_change": b.__dict__,
                         "tost": {"margin": margin, "upper_95": res[k][3], "q_tost": res[k][4]}}
                     for k, (a, b) in effects.items()},
         "dropout_vs_other": {k: iv.__dict__ for k, (_, iv) in vs_rows}},
        [png.name, csv.name],
        {"seeds": seeds, "widths": list(scale.mem_widths), "train": {**asdict(mem_train(scale.reg_epochs, seed)),
                                                                     "seed": "per run"},
         "settings": [list(x) for x in sets], "n_train": real.n_train, "tested": "dropout and weight decay only",
         "train_accuracy": "eval mode, whole training set, after the last epoch",
         "validation_accuracy": "best over the epochs (Fig. 10)", "margin": margin, "fdr": fdr}, extra)
