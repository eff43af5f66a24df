"""Gini of loss sensitivity on real labels vs random inputs vs unique-class labels (Arpit et al. 2017, §3.2, Fig. 3).

The paper's setting: 1000 Fashion-MNIST images avg-pooled to 14×14, MLP 16-16; randX = every input replaced by
Gaussian noise with the data's per-feature mean and std; unique = every example its own class (1000 classes).
The paper's claim: G(real) > G(random). loss_sensitivity with --horizon 1 and exact mode (--horizon all).
Usage:  python benchmarks/paper_gini.py > benchmarks/paper_gini.txt
"""

from __future__ import annotations

import datetime
import os
import platform
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "unrolled_accuracy"))
from common import paper_dataset  # noqa: E402

from sensprune.data.noise import apply_corruption  # noqa: E402
from sensprune.score import ScoreConfig, score  # noqa: E402
from sensprune.train import TrainConfig  # noqa: E402

EPOCHS = 20


def gini_of(data, horizon):
    cfg = ScoreConfig(dataset=data.spec, widths=(16, 16), measures=("loss_sensitivity",),
                      measure_options={"horizon": horizon}, train=TrainConfig(epochs=EPOCHS, batch_size=128, lr=0.05))
    table = score(data, cfg, progress=False)
    hist = table.meta["history"]["0"][-1]
    return table.meta["gini"]["loss_sensitivity"], hist["train_acc"]


def main():
    torch.set_num_threads(1)
    print("# Gini of loss_sensitivity: real vs random inputs vs unique-class labels")
    print("command: python benchmarks/paper_gini.py")
    print(f"machine: {platform.machine()} CPU, 2 cores (torch threads 1), torch {torch.__version__}; "
          f"date {datetime.date.today().isoformat()}")
    print(f"setting: Fashion-MNIST 1000 at 14x14, MLP 16-16, {EPOCHS} epochs, batch 128, SGD lr 0.05 "
          "momentum 0.9 wd 5e-4 cosine, seed 0, probe = the (corrupted) training set")
    real = paper_dataset()
    sets = {"real": real, "randX (all inputs)": apply_corruption(real, "randX", 1.0, 0)[0],
            "unique class": apply_corruption(real, "unique", 0.0, 0)[0]}
    res = {}
    print(f"{'data':<20}{'G (H=1)':>10}{'G (exact)':>11}{'train acc':>11}")
    for name, d in sets.items():
        g1, acc = gini_of(d, 1)
        ge, _ = gini_of(d, "all")
        res[name] = (g1, ge)
        print(f"{name:<20}{g1:>10.4f}{ge:>11.4f}{acc:>11.3f}")
    for j, mode in enumerate(("H=1", "exact")):
        ok = res["real"][j] > res["randX (all inputs)"][j]
        ok_u = res["real"][j] > res["unique class"][j]
        print(f"paper's claim G(real) > G(random inputs) with {mode}: {'REPRODUCED' if ok else 'NOT reproduced'}; "
              f"G(real) > G(unique class): {'yes' if ok_u else 'no'}")


if __name__ == "__main__":
    main()
