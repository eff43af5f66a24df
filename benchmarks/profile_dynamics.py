"""Where the training-dynamics hook's time goes on digits (cProfile, differential): the README's overhead notes.

Profiles ``--runs`` 15-epoch warmups with the dynamics measures (loss, forgetting, aum, confidence, variability,
correctness: one DynamicsHook, plus the GiniTracker every scoring run has) and as many with no measure, and prints,
per function, the extra time per run (tottime with hooks − without), its extra calls and its cumulative time.
cProfile slows everything down, so read the rows against each other, not as wall times.

    .venv/bin/python benchmarks/profile_dynamics.py [--runs 20] [--top 20]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
from datetime import datetime, timezone

import torch

from sensprune.config import TrainConfig
from sensprune.data import load_dataset
from sensprune.measures.peers import DYNAMICS
from sensprune.scoring.stage import ScoreConfig, build_hooks, model_builder
from sensprune.train.loop import train
from sensprune.train.sources import ArraySource


def profile(fn, runs: int) -> dict[str, tuple[int, float, float]]:
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(runs):
        fn()
    pr.disable()
    return {f"{k[0].split('/')[-1]}:{k[1]}({k[2]})": (v[1], v[2], v[3]) for k, v in pstats.Stats(pr).stats.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=20)
    ap.add_argument("--top", type=int, default=20)
    args = ap.parse_args()
    torch.set_num_threads(1)
    data = load_dataset("digits")
    tcfg = TrainConfig(epochs=15, batch_size=128, device="cpu")
    cfg = ScoreConfig(dataset="digits", model="mlp", measures=list(DYNAMICS), train=tcfg)
    build, src = model_builder(data, cfg), ArraySource(data.x_train, data.y_train, torch.device("cpu"))

    def none():
        train(build, src, tcfg, progress=False)

    def dynamics():
        _, hooks = build_hooks(data, cfg)
        train(build, src, tcfg, hooks=hooks, progress=False)

    none(), dynamics()  # warm-up
    with_hooks, without = profile(dynamics, args.runs), profile(none, args.runs)
    _, hooks = build_hooks(data, cfg)
    print(f"# profile_dynamics: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPU cores, "
          f"load average {os.getloadavg()[0]:.1f}, torch {torch.__version__}, 1 thread; digits MLP 256-128, "
          f"15 epochs; hooks {[type(h).__name__ for h in hooks]}; {args.runs} runs each")
    tot = [sum(v[1] for v in d.values()) / args.runs for d in (with_hooks, without)]
    print(f"profiled time per run: {1000 * tot[0]:.1f} ms with the hooks, {1000 * tot[1]:.1f} ms without "
          f"(+{1000 * (tot[0] - tot[1]):.1f} ms)")
    rows = sorted(((v[1] - without.get(k, (0, 0, 0))[1], v[0] - without.get(k, (0, 0, 0))[0], v[2], k)
                   for k, v in with_hooks.items()), reverse=True)
    print(f"{'extra ms/run':>12} {'extra calls/run':>15} {'cum ms/run':>10}  function")
    for d, calls, cum, k in rows[:args.top]:
        print(f"{1000 * d / args.runs:12.2f} {calls / args.runs:15.0f} {1000 * cum / args.runs:10.2f}  {k}")


if __name__ == "__main__":
    main()
