"""Scoring overhead, measured as ratios within one run (issue 2).

Ratio 1: warmup with every online measure (input_grad, loss, el2n, forgetting, aum, confidence,
         variability, correctness) ÷ the same loop with no measure.   Target ≤ 1.10.
Ratio 2: sensprune's loop with no measure ÷ a minimal hand-written PyTorch loop on the same
         tensors (same model, optimizer, batch order).                 Target ≤ 1.15.

Settings: digits with the MLP (15 epochs), and a 10k stratified Fashion-MNIST subset with the CNN
(10 epochs). Each variant runs ``--repeats`` times, interleaved; the median wall time is used.
EL2N costs one eval-mode forward pass over the training set at its epoch, a fixed cost that weighs
more the shorter the warmup.

    python benchmarks/overhead.py [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import date

import torch
import torch.nn.functional as F

from sensprune.data import load_dataset
from sensprune.measures import DEFAULT_MEASURES
from sensprune.score import ScoreConfig, build_hooks, model_builder
from sensprune.train import ArraySource, TrainConfig, epoch_order, make_optimizer, train


def plain_loop(build, x, y, cfg: TrainConfig) -> None:
    """The minimal loop: permutation, slice, forward, mean CE, backward, step."""
    torch.manual_seed(cfg.seed)
    model = build().to(cfg.device)
    opt = make_optimizer(model, cfg)
    n = len(y)
    for epoch in range(cfg.epochs):
        for g in opt.param_groups:
            g["lr"] = cfg.lr_at(epoch)
        order = epoch_order(n, cfg.seed, epoch, None).to(x.device)
        for s in range(0, n, cfg.batch_size):
            idx = order[s:s + cfg.batch_size]
            loss = F.cross_entropy(model(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()


def bench(name: str, spec: str, model: str, epochs: int, subsample: int | None, repeats: int,
          device: str = "cpu") -> None:
    data = load_dataset(spec, subsample=subsample)
    tcfg = TrainConfig(epochs=epochs, batch_size=128, device=device)
    cfg_all = ScoreConfig(dataset=spec, model=model, measures=DEFAULT_MEASURES, train=tcfg)
    build = model_builder(data, cfg_all)
    src = ArraySource(data.x_train, data.y_train, torch.device(device))
    x, y = src.x, src.y

    def ours_none():
        train(build, src, tcfg, progress=False)

    def ours_all():
        _, hooks = build_hooks(data, cfg_all)
        train(build, src, tcfg, hooks=hooks, progress=False)

    def plain():
        plain_loop(build, x, y, tcfg)

    def only(measures):
        cfg = ScoreConfig(dataset=spec, model=model, measures=measures, train=tcfg)

        def fn():
            _, hooks = build_hooks(data, cfg)
            train(build, src, tcfg, hooks=hooks, progress=False)
        return fn

    variants = {"plain": plain, "ours_none": ours_none, "ours_all": ours_all,
                "input_grad": only(("input_grad",)), "dynamics": only(("loss", "forgetting", "aum")),
                "el2n": only(("el2n",))}
    times = {k: [] for k in variants}
    for fn in variants.values():
        fn()  # warm-up
    for _ in range(repeats):
        for k, fn in variants.items():
            t = time.perf_counter()
            fn()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times[k].append(time.perf_counter() - t)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"\n## {name}: {spec} n_train={data.n_train} model={model} epochs={epochs} batch=128, "
          f"median of {repeats}")
    for k, v in med.items():
        print(f"  {k:<10} {v:8.3f} s   (runs: {', '.join(f'{t:.3f}' for t in times[k])})")
    r1 = med["ours_all"] / med["ours_none"]
    r2 = med["ours_none"] / med["plain"]
    print(f"  all online measures ÷ no measures      = {r1:.3f}   (target ≤ 1.10: {_met(r1 <= 1.10)})")
    print(f"  sensprune loop ÷ minimal PyTorch loop  = {r2:.3f}   (target ≤ 1.15: {_met(r2 <= 1.15)})")
    print("  breakdown, each group alone ÷ no measures: " + ", ".join(
        f"{k} {med[k] / med['ours_none']:.3f}" for k in ("input_grad", "dynamics", "el2n")))
    print("  (dynamics = loss, forgetting, aum, confidence, variability, correctness: one hook)")


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer epochs, for a smoke run")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    a = ap.parse_args()
    print("# sensprune scoring overhead")
    gpu = torch.cuda.get_device_name() if a.device.startswith("cuda") else "no GPU used"
    print(f"date {date.today()}  machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}),"
          f" {gpu}, device {a.device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    bench("digits / MLP", "digits", "mlp", 3 if a.quick else 15, None, a.repeats, a.device)
    bench("Fashion-MNIST 10k / CNN", "fashion-mnist", "cnn", 1 if a.quick else 10, 10000, a.repeats, a.device)


if __name__ == "__main__":
    main()
