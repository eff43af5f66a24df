"""Measure what one unit of the open-question grids costs, and extrapolate each grid's wall time.

For each grid TOML given: loads its dataset, corrupts it with the grid's noisiest symmetric level,
then times (1) the warmup (``sensprune.scoring.stage`` with the grid's measures, seed 0) plus the
cross-validated-confidence baseline, (2) one full-set retrain under the TOML's budget on clean and
on noisy data (under ``fit``: epochs until the threshold, and whether it was reached). A retrain of
a clean unit is costed as the clean full-set retrain, one of a noisy unit as the noisy one (pruned
retrains see fewer examples per epoch, so this over-estimates ``epochs``; under ``fit`` a pruned
noisy set may need more or fewer epochs than the full one, and reweighting arms are costed at
``max_epochs``: in the small digits grid none of them reached 0.99); the grid's wall time is
Σ units (warmup + retrains) / jobs.

Run (prints one block per TOML; the committed output is time_units.txt):

    .venv/bin/python benchmarks/open_question/time_units.py benchmarks/open_question/v2/*.toml --jobs 2
"""

from __future__ import annotations

import argparse
import os
import platform
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("tomls", nargs="+")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes the grid will run with")
    args = ap.parse_args()

    import torch

    from sensprune.benchmark.config import load_config, parse_corruption
    from sensprune.benchmark.plan import plan_retrains, plan_units
    from sensprune.benchmark.stats import cv_confidence
    from sensprune.benchmark.unit import WARMUP_EPOCHS, load_unit_data, retrain, score_config, warmup_scores
    from sensprune.data.noise import apply_corruption
    from sensprune.scoring.stage import model_builder
    from sensprune.train.sources import ArraySource

    torch.set_num_threads(1)
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    print(f"# {time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())}; {platform.system()} {platform.machine()}, "
          f"{os.cpu_count()} cores ({cpu}), no GPU; load average {os.getloadavg()[0]:.1f} at start "
          f"(a shared machine: other processes inflate these times); torch threads 1 per job")
    total = 0.0
    for path in args.tomls:
        cfg = load_config(path)
        spec = cfg.grid.datasets[0]
        clean = load_unit_data(cfg, spec)
        noisy_c = max((c for c in cfg.grid.corruptions if c.startswith("randY:")), key=lambda c: parse_corruption(c)[1],
                      default="none")
        kind, level = parse_corruption(noisy_c)
        noisy, _ = apply_corruption(clean, kind, level, 0) if kind != "none" else (clean, None)
        scfg = score_config(cfg, spec, 0)
        t0 = time.perf_counter()
        scores = warmup_scores(cfg, noisy, scfg)  # what a unit runs (memorization's subset models included)
        cv_confidence(noisy.x_train, noisy.y_train, folds=cfg.bench.cv_folds, seed=0)
        warm = time.perf_counter() - t0
        build = model_builder(noisy, scfg)
        dev = torch.device("cpu")
        test = ArraySource(clean.x_test, clean.y_test, dev)
        rt = {}
        for name, data in (("clean", clean), (noisy_c, noisy)):
            t0 = time.perf_counter()
            res = retrain(cfg, 0, build, ArraySource(data.x_train, data.y_train, dev), test, data,
                          np.ones(data.n_train, bool))
            rt[name] = (time.perf_counter() - t0, res)
        units = plan_units(cfg)
        retrains = sum(len(plan_retrains(cfg, u)) for u in units)
        cost = 0.0
        for u in units:
            t, res = rt["clean" if u.corruption == "none" else noisy_c]
            cost += t * len(plan_retrains(cfg, u))
        wall = (len(units) * warm + cost) / args.jobs
        total += wall
        print(f"{path}: {spec}, n_train {clean.n_train}, budget {cfg.bench.budget}; warmup+cv {warm:.1f} s "
              f"({int(scores[WARMUP_EPOCHS][0]) if WARMUP_EPOCHS in scores else 'no'} warmup epochs, [score] budget "
              f"{cfg.score.budget}, on {noisy_c}); "
              + "; ".join(f"full retrain {k}: {v[0]:.1f} s, {v[1]['epochs']} epochs, train_acc {v[1]['train_acc']:.3f}"
                          f", test_acc {v[1]['test_acc']:.3f}" + (f", fit_reached {v[1]['fit_reached']}"
                                                                  if cfg.bench.budget in ("fit", "fit-steps") else "")
                          for k, v in rt.items())
              + f"; {len(units)} units, {retrains} retrains -> about {wall / 3600:.2f} h with {args.jobs} jobs")
    print(f"total: about {total / 3600:.1f} h")


if __name__ == "__main__":
    main()
