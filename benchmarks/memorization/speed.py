"""Wall time of the memorization estimator's two paths: M subset models one at a time through the training loop
vs one vectorized ensemble (torch.func vmap), on digits and MNIST-1D, CPU; both paths train the same models
(same seeds, subsets and batch order), and the script checks that their memorization values agree.

    .venv/bin/python benchmarks/memorization/speed.py --models 8 > benchmarks/memorization/speed.txt

Each path runs once per dataset (sequential first): on a shared machine the ratio carries the load's noise.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import sys
import time

import numpy as np
import torch


def main() -> None:
    from sensprune.data import load_dataset
    from sensprune.measures import memorization as mz
    from sensprune.scoring.stage import ScoreConfig

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", type=int, default=8)
    ap.add_argument("--subsample", type=int, default=None, help="stratified subsample of each training set")
    ap.add_argument("--datasets", default="digits,mnist1d")
    a = ap.parse_args()
    torch.set_num_threads(min(2, os.cpu_count() or 1))
    print(f"# command: .venv/bin/python benchmarks/memorization/speed.py {' '.join(sys.argv[1:])}")
    print(f"# machine: {os.cpu_count()} CPU cores, no GPU ({platform.processor() or platform.machine()}), torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads; SHARED with other jobs, so wall times are noisy")
    print(f"# date: {datetime.date.today().isoformat()}")
    print("# model: mlp 256-128, SGD lr 0.05 momentum 0.9 wd 5e-4, batch 128, each model trained to fit "
          "(train acc >= 0.99 on its subset, at most 100 epochs), subsets of 70%")
    print(f"{'dataset':<10}{'N':>6}{'M':>4}{'sequential_s':>14}{'ensemble_s':>12}{'ratio':>8}"
          f"{'epochs_mean':>13}{'same_values':>13}")
    for name in a.datasets.split(","):
        data = load_dataset(name, subsample=a.subsample)
        cfg = ScoreConfig(dataset=name, measures=("memorization",), measure_options={"mem_models": a.models})
        t0 = time.perf_counter()
        seq, note = mz.estimate(data, cfg, progress=False, ensemble=False)
        t1 = time.perf_counter()
        ens, _ = mz.estimate(data, cfg, progress=False, ensemble=True)
        t2 = time.perf_counter()
        same = all(np.array_equal(seq[k], ens[k], equal_nan=True) for k in mz.NAMES)
        epochs = np.mean([m["epochs"] for m in note["per_model"]])
        print(f"{name:<10}{data.n_train:>6}{a.models:>4}{t1 - t0:>14.1f}{t2 - t1:>12.1f}"
              f"{(t1 - t0) / (t2 - t1):>8.2f}{epochs:>13.1f}{str(same):>13}", flush=True)


if __name__ == "__main__":
    main()
