"""A short check of the Fashion-MNIST CNN breakdown in ``overhead.txt``: one epoch, more interleaved repeats.

The committed Fashion-MNIST setting (10k images, CNN, 10 epochs) takes 50 s a run, so it gets 3 repeats and a
noise band of about ±5%. Here each variant trains one epoch (5 s) ``--repeats`` times, interleaved, and the
least and median process CPU time are printed with the ratios to no measures: the dynamics hook (loss,
forgetting, aum, confidence, variability, correctness, plus the per-epoch Gini) and ``input_grad`` alone.
EL2N is left out: its one pass over N weighs 1/epochs of a run, so one epoch would overstate it.

    SENSPRUNE_FASHION_MNIST_DIR=... .venv/bin/python benchmarks/overhead_cnn_check.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from datetime import datetime, timezone

import torch

from sensprune.config import TrainConfig
from sensprune.data import load_dataset
from sensprune.score.stage import ScoreConfig, build_hooks, model_builder
from sensprune.train.loop import train
from sensprune.train.sources import ArraySource

VARIANTS = {"none": (), "dynamics": ("loss", "forgetting", "aum", "confidence", "variability", "correctness"),
            "input_grad": ("input_grad",)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    a = ap.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("fashion-mnist", subsample=10000)
    tcfg = TrainConfig(epochs=1, batch_size=128, device="cpu")
    build = model_builder(data, ScoreConfig(dataset="fashion-mnist", model="cnn", train=tcfg))
    src = ArraySource(data.x_train, data.y_train, torch.device("cpu"))
    print(f"# overhead_cnn_check: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPU cores, "
          f"load average {os.getloadavg()[0]:.1f}, torch {torch.__version__}, 1 thread; Fashion-MNIST 10k, cnn, "
          f"1 epoch, batch 128, {a.repeats} interleaved repeats, process CPU time")
    cpu: dict[str, list[float]] = {k: [] for k in VARIANTS}
    for _ in range(a.repeats):
        for name, measures in VARIANTS.items():
            cfg = ScoreConfig(dataset="fashion-mnist", model="cnn", measures=measures or ("loss",), train=tcfg)
            hooks = build_hooks(data, cfg)[1] if measures else []
            t = time.process_time()
            train(build, src, tcfg, hooks=hooks, progress=False)
            cpu[name].append(time.process_time() - t)
    least, med = {k: min(v) for k, v in cpu.items()}, {k: statistics.median(v) for k, v in cpu.items()}
    for name, runs in cpu.items():
        print(f"  {name:<10} least {least[name]:6.2f} s  median {med[name]:6.2f} s  ÷ none: least "
              f"{least[name] / least['none']:.3f}, median {med[name] / med['none']:.3f}   "
              f"(runs: {', '.join(f'{t:.2f}' for t in runs)})")


if __name__ == "__main__":
    main()
