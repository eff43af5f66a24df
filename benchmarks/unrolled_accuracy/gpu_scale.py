"""Time the default loss_sensitivity (full horizon, K = 16 sampled probe steps) on one device at the digits
size and at a 10× larger problem (N and T both 10×), against plain training on the same device.

The larger problem is synthetic (nothing may be downloaded): 12 570 examples, 64 features, 10 Gaussian classes
(digits has 1257 × 64), MLP 256-128, SGD lr 0.05 momentum 0.9 wd 5e-4 cosine, 15 epochs × batch 128, so
T = 1485 SGD steps instead of 150. Exact mode is timed at the digits size only (its cost grows with T²).

Usage: python benchmarks/unrolled_accuracy/gpu_scale.py [--device cuda] [--tiny]
"""

from __future__ import annotations

import argparse
import datetime
import platform
import time

import numpy as np
import torch

from sensprune.config import TrainConfig
from sensprune.data import load_dataset
from sensprune.measures.loss_sensitivity.sampled import SampledSensitivityHook
from sensprune.measures.loss_sensitivity.exact import ExactSensitivityHook, stratified_probe
from sensprune.train.loop import train
from sensprune.train.models import build_model
from sensprune.train.sources import ArraySource


def synthetic(n: int, d: int = 64, k: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(k, d)).astype(np.float32) * 1.5
    y = rng.integers(0, k, n)
    x = centers[y] + rng.normal(size=(n, d)).astype(np.float32) * 2.0
    return x.astype(np.float32), y.astype(np.int64)


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t0


def case(name, x, y, device, epochs, exact):
    cfg = TrainConfig(epochs=epochs, batch_size=128, lr=0.05, momentum=0.9, weight_decay=5e-4, device=device)
    src = ArraySource(x, y, torch.device(device))
    shape = x.shape[1:]

    def model():
        return build_model("mlp", 10, shape, widths=(256, 128))

    probe = stratified_probe(y, 2048)
    train(model, src, TrainConfig(epochs=1, batch_size=128, device=device), progress=False)  # warm-up
    _, plain = timed(lambda: train(model, src, cfg, progress=False))
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    hook = SampledSensitivityHook(len(y), probe)
    _, sampled = timed(lambda: train(model, src, cfg, hooks=[hook], progress=False))
    peak = torch.cuda.max_memory_allocated() / 2 ** 20 if torch.cuda.is_available() else float("nan")
    steps = int(hook.strata.sum())
    line = (f"{name:<44} N={len(y):>6} T={steps:>5}  plain {plain:7.2f} s  default K=16 {sampled:7.2f} s  "
            f"ratio {sampled / plain:5.2f}  extra {sampled - plain:6.2f} s  peak GPU mem {peak:7.0f} MiB  "
            f"{len(y) * epochs / sampled:8.0f} examples/s")
    if exact:
        ex = ExactSensitivityHook(len(y), probe)
        _, t_ex = timed(lambda: train(model, src, cfg, hooks=[ex], progress=False))
        from scipy.stats import spearmanr

        rho = spearmanr(hook.value, ex.value).correlation
        line += f"\n{'':<44} exact (--probe-times all) {t_ex:7.2f} s  ratio {t_ex / plain:5.2f}  Spearman(default, " \
                f"exact) {rho:.3f}"
    print(line, flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tiny", action="store_true", help="dry run: small sizes (for CPU)")
    a = ap.parse_args()
    torch.manual_seed(0)
    card = torch.cuda.get_device_name(0) if a.device.startswith("cuda") else platform.processor() or "CPU"
    print(f"# loss_sensitivity default (full horizon, K=16) on one device: {card}; torch {torch.__version__}; "
          f"date {datetime.date.today().isoformat()}")
    print("command: python benchmarks/unrolled_accuracy/gpu_scale.py --device " + a.device
          + (" --tiny" if a.tiny else ""))
    d = load_dataset("digits")
    x = d.x_train.reshape(len(d.x_train), -1)
    if a.tiny:
        case("digits subset 300, 2 epochs", x[:300], d.y_train[:300], a.device, 2, exact=True)
        xs, ys = synthetic(1000)
        case("synthetic 1000, 2 epochs", xs, ys, a.device, 2, exact=False)
        return
    case("digits (1257 x 64), 15 epochs", x, d.y_train, a.device, 15, exact=True)
    xs, ys = synthetic(12570)
    case("synthetic 10x digits (12570 x 64), 15 epochs", xs, ys, a.device, 15, exact=False)


if __name__ == "__main__":
    main()
