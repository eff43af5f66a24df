"""Where the default loss_sensitivity (K = 16) spends its time on the settings of benchmarks/unrolled_accuracy:
replay, probe gradients, per-step graph rebuild, vector-Jacobian products, against plain training, with the count
of adjoint-steps the definition needs (Σ_k t_k) and the count carried.

    python benchmarks/engine/time_parts.py            # digits and MNIST-1D, one torch thread, 3 seeds
"""

from __future__ import annotations

import datetime
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unrolled_accuracy"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from run import SETTINGS, _data  # noqa: E402  (benchmarks/unrolled_accuracy/run.py)

from sensprune.config import TrainConfig  # noqa: E402
from sensprune.data import make_dataset  # noqa: E402
from sensprune.data.noise import corrupt_labels  # noqa: E402
from sensprune.measures.loss_sensitivity.exact import stratified_probe  # noqa: E402
from sensprune.measures.loss_sensitivity.sampled import SampledSensitivityHook  # noqa: E402
from sensprune.train.loop import train  # noqa: E402
from sensprune.train.models import build_model  # noqa: E402
from sensprune.train.sources import ArraySource  # noqa: E402


def main():
    torch.set_num_threads(1)
    print("# Profile of the default loss_sensitivity (K = 16): replay, probe gradients, rebuild, VJPs")
    print(f"command: python benchmarks/engine/time_parts.py; machine: {platform.machine()}, {os.cpu_count()} cores, "
          f"one torch thread, no GPU; torch {torch.__version__}; date {datetime.date.today().isoformat()}")
    print(f"{'setting':<9}{'seed':>5}{'T':>5}{'plain s':>9}{'total s':>9}{'ratio':>7}{'replay':>8}{'probe':>7}"
          f"{'rebuild':>9}{'VJP':>7}{'other':>7}{'rev. steps':>11}{'adj-steps':>10}{'defined':>9}")
    for name in ("digits", "mnist1d"):
        _, kind, widths, tc = SETTINGS[name]
        d = _data(kind)
        for seed in range(3):
            y, _ = corrupt_labels(d.y_train, d.num_classes, 0.2, mode="symmetric", seed=seed)
            ds = make_dataset(d.x_train, y, d.x_test, d.y_test, spec=f"{d.spec}-{seed}", num_classes=d.num_classes)
            src = ArraySource(ds.x_train, ds.y_train, torch.device("cpu"))
            cfg = TrainConfig(seed=seed, **tc)

            def model():
                return build_model("mlp", ds.num_classes, ds.input_shape, widths=widths)
            train(model, src, TrainConfig(seed=seed, **{**tc, "epochs": 1}), progress=False)  # warm-up
            t0 = time.perf_counter()
            train(model, src, cfg, progress=False)
            plain = time.perf_counter() - t0
            hook = SampledSensitivityHook(ds.n_train, stratified_probe(ds.y_train, 2048))
            t0 = time.perf_counter()
            train(model, src, cfg, hooks=[hook], progress=False)
            total = time.perf_counter() - t0
            p = hook.profile
            other = total - plain - p["replay_s"] - p["probe_s"] - p["rebuild_s"] - p["vjp_s"]
            print(f"{name:<9}{seed:>5}{int(hook.strata.sum()):>5}{plain:>9.2f}{total:>9.2f}{total / plain:>7.2f}"
                  f"{p['replay_s']:>8.2f}{p['probe_s']:>7.2f}{p['rebuild_s']:>9.2f}{p['vjp_s']:>7.2f}{other:>7.2f}"
                  f"{p['reverse_steps']:>11}{p['adjoint_steps']:>10}{p['adjoint_steps_defined']:>9}", flush=True)
    print("columns in seconds: replay = the functional replay of the run (T plain steps), probe = K probe gradients, "
          "rebuild = the graph of each reverse step (forward + create_graph backward), VJP = the batched double "
          "backward, other = training with recording minus plain training and the rest; adj-steps = adjoints "
          "carried summed over reverse steps, defined = Σ_k t_k (what the definition needs)")


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
