"""Gini of loss sensitivity, real vs random inputs (Arpit et al. 2017, §3.2, Fig. 3): the paper's full-horizon
estimator against the horizon-1 proxy, on the same runs' settings.

Setting: the data of ``sensprune reproduce`` (Fashion-MNIST 14x14 standing in for MNIST), N = 500, MLP 16-16,
plain SGD (no momentum, no weight decay, constant lr 0.1 standing in for the paper's 0.01), batch 32, EPOCHS
epochs, seeds 0..SEEDS-1 (training and corruption seed alike). Data sets: real; randX (every input Gaussian);
randX norm-matched (each Gaussian input rescaled to the real input's L1 norm); unique class (every example its
own class). Estimators: ``loss_sensitivity`` (full horizon, K = 16 sampled probe steps, each ∂L_t/∂x exact
through every earlier update) and ``loss_sensitivity_h1`` (the one-step proxy, a named comparison row).
The paper's claim: G(real) > G(random). Effect: G(real) − G(other), 95% paired t-interval over seeds.
Usage:  python benchmarks/paper_gini.py > benchmarks/paper_gini.txt
"""

from __future__ import annotations

import datetime
import os
import platform
import time

import numpy as np
import torch

from sensprune.data.noise import apply_corruption
from sensprune.reproduce.common import SCALES, norm_matched_random_inputs, paper_data, sens_train
from sensprune.reproduce.verdict import decide, gini, t_ci
from sensprune.scoring.stage import ScoreConfig, score

EPOCHS, N, SEEDS = 30, 500, 3
ESTIMATORS = {"loss_sensitivity (full horizon, K=16)": "loss_sensitivity",
              "loss_sensitivity_h1 (one-step proxy)": "loss_sensitivity_h1"}


def gini_of(data, measure: str, seed: int) -> tuple[float, float]:
    cfg = ScoreConfig(dataset=data.spec, widths=(16, 16), measures=(measure,), train=sens_train(EPOCHS, seed))
    table = score(data, cfg, progress=False)
    return gini(table.scores[measure]), float(np.mean(table.predicted == data.y_train))


def main():
    torch.set_num_threads(1)
    t0 = time.perf_counter()
    print("# Gini of loss sensitivity: full-horizon estimator vs the horizon-1 proxy, real vs random inputs")
    print("command: python benchmarks/paper_gini.py")
    print(f"machine: {platform.machine()} CPU, {os.cpu_count()} cores (torch threads 1, shared with other jobs, "
          f"load average {os.getloadavg()[0]:.1f} at the start), torch {torch.__version__}; "
          f"date {datetime.date.today().isoformat()}")
    print(f"setting: Fashion-MNIST 14x14 (stands in for MNIST), N={N}, MLP 16-16, {EPOCHS} epochs, batch 32, plain SGD "
          f"lr 0.1 (paper: 0.01) no momentum no weight decay constant lr, seeds 0..{SEEDS - 1}, "
          "probe = the training set")
    real = paper_data(N, SCALES["full"])
    g: dict = {}
    acc: dict = {}
    print(f"{'seed':<6}{'data':<22}" + "".join(f"{e.split(' (')[0]:>22}" for e in ESTIMATORS) + f"{'train acc':>11}")
    for s in range(SEEDS):
        sets = {"real": real, "randX": apply_corruption(real, "randX", 1.0, s)[0],
                "randX norm-matched": norm_matched_random_inputs(real, s),
                "unique class": apply_corruption(real, "unique", 0.0, s)[0]}
        for name, d in sets.items():
            row = []
            for est, measure in ESTIMATORS.items():
                g.setdefault((est, name), []).append(None)
                g[(est, name)][-1], a = gini_of(d, measure, s)
                acc.setdefault(name, []).append(a)
                row.append(g[(est, name)][-1])
            print(f"{s:<6}{name:<22}" + "".join(f"{v:>22.4f}" for v in row) + f"{a:>11.3f}", flush=True)
    print()
    print("G(real) − G(other), mean [95% paired t-interval over seeds], and the verdict by the rule of "
          "`sensprune reproduce`")
    for est in ESTIMATORS:
        for other in ("randX", "randX norm-matched", "unique class"):
            iv = t_ci(np.subtract(g[(est, "real")], g[(est, other)]))
            v = decide(iv, "the random data is more unequal")
            print(f"{est:<40} real − {other:<20} {iv.text(4):>28}  {v.label}")
    print(f"wall time {time.perf_counter() - t0:.0f} s; load average {os.getloadavg()[0]:.1f} at the end")


if __name__ == "__main__":
    main()
