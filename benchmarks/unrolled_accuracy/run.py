"""Truncated loss sensitivity (H = 1, 2, 4, 8) against exact mode (--horizon all), Spearman correlation.

All horizons and the exact replay are hooks of ONE training run, so they see the same trajectory.
Also H = 1 with --probe next-batch (the next minibatch's loss as L_{s+1}) against the same exact values.
Usage:  python benchmarks/unrolled_accuracy/run.py > benchmarks/unrolled_accuracy/results.txt
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from common import digits_dataset, paper_dataset, spearman  # noqa: E402

from sensprune.measures.truncated import LossSensitivityHook  # noqa: E402
from sensprune.measures.unrolled import ExactSensitivityHook, stratified_probe  # noqa: E402
from sensprune.models import build_model  # noqa: E402
from sensprune.train import ArraySource, Hook, TrainConfig, train  # noqa: E402

HORIZONS = (1, 2, 4, 8)


class Timed(Hook):
    """Wraps a hook and adds up the time it spends."""

    def __init__(self, inner):
        self.inner, self.seconds = inner, 0.0

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def _t(self, fn, *a):
        t0 = time.perf_counter()
        fn(*a)
        self.seconds += time.perf_counter() - t0

    def on_train_begin(self, run):
        self._t(self.inner.on_train_begin, run)

    def on_step(self, step, run):
        self._t(self.inner.on_step, step, run)

    def after_step(self, step, run):
        self._t(self.inner.after_step, step, run)

    def on_epoch_end(self, epoch, run):
        self._t(self.inner.on_epoch_end, epoch, run)


def setting(name, data, cfg):
    probe = stratified_probe(data.y_train, 2048)
    n = data.n_train
    exact = Timed(ExactSensitivityHook(n, probe))
    trunc = {h: Timed(LossSensitivityHook(n, probe, horizon=h)) for h in HORIZONS}
    trunc["1 next-batch"] = Timed(LossSensitivityHook(n, probe, horizon=1, probe_mode="next-batch"))
    res = train(lambda: build_model("mlp", data.num_classes, data.input_shape, widths=(16, 16)),
                ArraySource(data.x_train, data.y_train, torch.device("cpu")), cfg,
                test_data=ArraySource(data.x_test, data.y_test, torch.device("cpu")),
                hooks=[exact, *trunc.values()], progress=False)
    steps = int(trunc[1].steps)
    print(f"\n## {name}: N={n}, input {data.input_shape}, MLP 16-16, {cfg.epochs} epochs x batch "
          f"{cfg.batch_size} = {steps} SGD steps, lr {cfg.lr} ({cfg.schedule}), momentum {cfg.momentum}, "
          f"wd {cfg.weight_decay}; final train acc {res.final['train_acc']:.3f}, test acc {res.final['test_acc']:.3f}")
    print(f"exact replay: max |theta_replay - theta_trained| = {exact.replay_error:.2e}; time {exact.seconds:.1f} s")
    print(f"{'horizon':>14} {'spearman vs exact':>18} {'pearson':>8} {'hook time s':>12}")
    for h, hook in trunc.items():
        v = hook.values()["loss_sensitivity"]
        print(f"{h:>14} {spearman(v, exact.value):>18.4f} {np.corrcoef(v, exact.value)[0, 1]:>8.4f} "
              f"{hook.seconds:>12.1f}")


def main():
    torch.set_num_threads(2)
    print("# Truncated (H) vs exact loss sensitivity, Spearman over all training examples")
    print("command: python benchmarks/unrolled_accuracy/run.py > benchmarks/unrolled_accuracy/results.txt")
    print(f"machine: {platform.machine()} CPU, 2 cores (torch threads 2), no GPU, shared load; "
          f"torch {torch.__version__}; "
          f"date {datetime.date.today().isoformat()}")
    print("probe: whole training set (N <= 2048), direct term off; all hooks on one training run")
    print("'1 next-batch' = --probe next-batch: L_{s+1} = mean loss of the next minibatch at theta_{s+1} (the last")
    print("step uses the fixed probe); compared against exact mode with the fixed whole-training-set probe")
    setting("digits", digits_dataset(), TrainConfig(epochs=10, batch_size=128, lr=0.05))
    setting("paper setting (Fashion-MNIST 1000, 14x14)", paper_dataset(),
            TrainConfig(epochs=20, batch_size=128, lr=0.05))
    setting("paper setting, plain SGD (no momentum, no weight decay)", paper_dataset(),
            TrainConfig(epochs=20, batch_size=128, lr=0.1, momentum=0.0, weight_decay=0.0))


if __name__ == "__main__":
    main()
