"""Experiment 4 — critical sample ratio and validation accuracy under noise (Arpit et al. 2017, §4, Fig. 9/10).

The memorization MLP on 1000 images with randY and randX at each noise level (0 = real data),
every epoch: validation accuracy, CSR of ``csr_samples`` validation examples (LASS,
:class:`sensprune.measures.csr.CSRHook`, the paper's α, β, r) and eval-mode training accuracy on
the corrupted and the clean examples (:class:`~sensprune.reproduce.common.FitTracker`).
Claims: (a) with randY, validation accuracy peaks before the noise is fit; (b) CSR rises with noise.
Numbers: (a) per randY level q > 0, the epoch of peak validation accuracy vs the first epoch at which
half of the corrupted examples are fit (their random label predicted); (b) the Spearman correlation
between noise level and CSR averaged over the last third of the epochs, for randY and randX.
Verdict: *reproduced* if (a) holds at every randY level whose noise got fit and (b) ρ ≥ 0.7 for both
kinds; *not reproduced* if (a) fails at every such level or ρ ≤ 0 for both kinds; else *inconclusive*.
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from sensprune.data.noise import apply_corruption
from sensprune.io import write_csv
from sensprune.measures.csr import CSRHook, lass_parameters
from sensprune.reproduce.common import (FitTracker, Outcome, Scale, fit, fmt, mem_train, paper_data, plt,
                                        save_png, spearman, three_way)

TITLE = "CSR and validation accuracy under randY/randX noise (§4, Fig. 9/10)"
FIT = 0.5    # the noise counts as fit once this fraction of corrupted examples is predicted as labelled
RHO_OK = 0.7


def run(out: Path, scale: Scale, seed: int, progress: bool = True) -> Outcome:
    real = paper_data(scale.n, scale.n_test)
    tc = mem_train(scale.csr_epochs, seed)
    params = lass_parameters(real.info.get("input_range", 1.0))
    runs = [(k, q) for k in ("randY", "randX") for q in scale.noise_levels if q > 0]
    runs = [("real", 0.0)] + runs if 0.0 in scale.noise_levels else runs
    curves = {}
    for kind, q in tqdm(runs, desc="4 CSR: training runs", disable=not progress, dynamic_ncols=True):
        d, idx = (real, np.zeros(0, np.int64)) if kind == "real" else apply_corruption(real, kind, q, seed)
        tracker = FitTracker(idx)
        csr = CSRHook(real.x_test, params, scale.csr_samples, seed=seed)
        res = fit(d, scale.mem_widths, tc, hooks=[tracker, csr], progress=progress, desc=f"{kind} {q:g}")
        rows = np.array(tracker.rows)
        curves[(kind, q)] = {"val_acc": np.array([h["test_acc"] for h in res.history]), "csr": csr.curve,
                             "train_acc": rows[:, 0], "train_acc_noisy": rows[:, 1], "train_acc_clean": rows[:, 2]}

    def levels(kind):  # [(q, curves)] for one noise kind; level 0 is the real-data run
        return [(q, curves[("real", 0.0) if q == 0 else (kind, q)]) for q in scale.noise_levels]
    last = max(1, scale.csr_epochs // 3)
    rho, late_csr = {}, {}
    for kind in ("randY", "randX"):
        lv = levels(kind)
        late_csr[kind] = {q: float(np.mean(c["csr"][-last:])) for q, c in lv}
        rho[kind] = spearman(list(late_csr[kind]), list(late_csr[kind].values())) if len(lv) > 1 else float("nan")
    peaks = {}
    for q, c in levels("randY"):
        if q == 0:
            continue
        fit_ep = np.flatnonzero(c["train_acc_noisy"] >= FIT)
        peaks[q] = {"peak_val_epoch": int(np.argmax(c["val_acc"])) + 1, "peak_val_acc": float(c["val_acc"].max()),
                    "final_val_acc": float(c["val_acc"][-1]),
                    "noise_fit_epoch": int(fit_ep[0]) + 1 if fit_ep.size else None}
    tested = [p for p in peaks.values() if p["noise_fit_epoch"] is not None]
    a = [p["peak_val_epoch"] < p["noise_fit_epoch"] for p in tested]
    a_ok, a_bad = bool(a) and all(a), bool(a) and not any(a)
    r = [rho[k] for k in ("randY", "randX")]
    b_ok = all(np.isfinite(v) and v >= RHO_OK for v in r)
    b_bad = all(np.isfinite(v) and v <= 0 for v in r)
    word = three_way(a_ok and b_ok, a_bad or b_bad)
    pk = "; ".join(f"q={q:g}: val peak {fmt(p['peak_val_acc'])} at epoch {p['peak_val_epoch']}, noise fit "
                   f"(≥{FIT:.0%}) at epoch {p['noise_fit_epoch'] or 'never'}, final val {fmt(p['final_val_acc'])}"
                   for q, p in peaks.items())
    top = {k: fmt(v[max(v)]) for k, v in late_csr.items()}
    sentence = (f"(a) randY {pk or 'no noisy level run'} — holds at {sum(a)}/{len(a)} levels with the noise fit; "
                f"(b) Spearman(noise, CSR over the last {last} epochs) randY {fmt(rho['randY'], 2)}, randX "
                f"{fmt(rho['randX'], 2)} (CSR at the highest level randY {top['randY']}, randX {top['randX']} "
                f"vs real {fmt(late_csr['randY'].get(0.0, float('nan')))})")

    csv = out / "exp4_csr.csv"
    cols = ("val_acc", "csr", "train_acc", "train_acc_noisy", "train_acc_clean")
    write_csv(csv, ["kind", "noise", "epoch", *cols],
              [(k, q, e + 1, *(float(c[x][e]) for x in cols)) for (k, q), c in curves.items()
               for e in range(len(c["val_acc"]))])
    png = out / "exp4_csr.png"
    fig, axs = plt.subplots(2, 2, figsize=(12, 8), sharex=True)
    cmap = plt.get_cmap("viridis")
    for col, kind in enumerate(("randY", "randX")):
        for q, c in levels(kind):
            color = cmap(q / max(max(scale.noise_levels), 1e-9) * 0.9)
            ep = np.arange(1, len(c["val_acc"]) + 1)
            axs[0, col].plot(ep, c["val_acc"], color=color, label=f"{q:.0%} {kind if q else '(real)'}")
            axs[1, col].plot(ep, c["csr"], color=color, label=f"{q:.0%}")
        axs[0, col].set(title=f"{kind}: validation accuracy", ylabel="accuracy")
        axs[1, col].set(title=f"{kind}: critical sample ratio (validation)", xlabel="epoch", ylabel="CSR")
        for ax in axs[:, col]:
            ax.grid(alpha=0.3)
            ax.legend(fontsize=7)
    save_png(fig, png)
    return Outcome(word, sentence, {"randY_peaks": {str(q): p for q, p in peaks.items()}, "spearman": rho,
                                    "late_csr": {k: {str(q): v for q, v in d.items()} for k, d in late_csr.items()}},
                   [png.name, csv.name],
                   {"widths": list(scale.mem_widths), "train": asdict(tc), "lass": params,
                    "csr_samples": scale.csr_samples, "noise_levels": list(scale.noise_levels),
                    "noise_fit_threshold": FIT, "corruption_seed": seed})
