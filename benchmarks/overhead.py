"""Scoring overhead, measured as ratios within one run (issue 2).

Ratio 1: warmup with every online measure (input_grad, loss, el2n, forgetting, aum, confidence,
         variability, correctness) ÷ the same loop with no measure.   Target ≤ 1.10.
Ratio 2: sensprune's loop with no measure ÷ a minimal hand-written PyTorch loop on the same
         tensors (same model, optimizer, batch order).                 Target ≤ 1.15.

Settings: digits with the MLP (15 epochs), and a 10k stratified Fashion-MNIST subset with the CNN
(10 epochs). Each variant runs ``--repeats`` times, interleaved; the median wall time is used. The
process CPU time of each run is measured too: on a shared machine it is the less noisy of the two
(another process's load inflates wall time but not the work done), and its ratios are printed beside;
so are the ratios of the least CPU time of each variant (contention only ever adds to it) and the paired
ratio: the median over rounds of the ratio within a round (every other round runs the variants in
reverse order, so that no variant always follows the same one).
The breakdown runs each group alone, and ``grad_only``: one hook that asks for the per-example input gradient
and does nothing with it (the floor under any ``input_grad``). EL2N costs one eval-mode forward pass over the
training set at its epoch, a fixed cost that weighs more the shorter the warmup. Throughput = training
examples × epochs ÷ median wall time of the run with all online measures (examples per second of scoring).

    python benchmarks/overhead.py [--repeats 5] [--threads 1] [--quick]
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

from sensprune.config import TrainConfig
from sensprune.data import load_dataset
from sensprune.measures import DEFAULT_MEASURES
from sensprune.scoring.stage import ScoreConfig, build_hooks, model_builder
from sensprune.train.hooks import Hook
from sensprune.train.loop import epoch_order, make_optimizer, train
from sensprune.train.sources import ArraySource


class GradientOnly(Hook):
    """Asks the loop for the per-example input gradient and does nothing with it: what the gradient alone costs
    (the leaf or the first-layer capture, the StepInfo, the hook calls), the floor under ``input_grad``."""

    needs_input_grad = True


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
          device: str = "cpu", warmup: bool = True, only_variants: list[str] | None = None) -> None:
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

    def grad_only():
        train(build, src, tcfg, hooks=[GradientOnly()], progress=False)

    variants = {"plain": plain, "ours_none": ours_none, "ours_all": ours_all,
                "input_grad": only(("input_grad",)), "dynamics": only(("loss", "forgetting", "aum")),
                "el2n": only(("el2n",)), "grad_only": grad_only}
    if only_variants:
        variants = {k: v for k, v in variants.items() if k in only_variants or k == "ours_none"}
    times = {k: [] for k in variants}
    cpu = {k: [] for k in variants}
    load0 = _load()
    if warmup:
        for fn in variants.values():
            fn()
    for r in range(repeats):
        # every other round runs the variants in reverse order, so none always runs right before another
        for k, fn in (list(variants.items()) if r % 2 == 0 else list(variants.items())[::-1]):
            t, c = time.perf_counter(), time.process_time()
            fn()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            times[k].append(time.perf_counter() - t)
            cpu[k].append(time.process_time() - c)
    med = {k: statistics.median(v) for k, v in times.items()}
    mcpu = {k: statistics.median(v) for k, v in cpu.items()}
    print(f"\n## {name}: {spec} n_train={data.n_train} model={model} epochs={epochs} batch=128, "
          f"median of {repeats}{'' if warmup else ' (no warm-up round)'}; load average {load0} at start, "
          f"{_load()} at end")
    for k, v in med.items():
        runs = ", ".join(f"{t:.3f}" for t in times[k])
        print(f"  {k:<10} {v:8.3f} s wall, {mcpu[k]:8.3f} s CPU   (wall runs: {runs})")
    mn = {k: min(v) for k, v in cpu.items()}
    if "ours_all" in med:
        r1, c1, m1 = med["ours_all"] / med["ours_none"], mcpu["ours_all"] / mcpu["ours_none"], \
            mn["ours_all"] / mn["ours_none"]
        p1 = _paired(times, "ours_all", "ours_none")
        print(f"  all online measures ÷ no measures      = {r1:.3f} wall, {c1:.3f} CPU, {m1:.3f} least CPU, "
              f"{p1:.3f} paired   (target ≤ 1.10: {_met(r1 <= 1.10)} wall, {_met(c1 <= 1.10)} CPU, "
              f"{_met(m1 <= 1.10)} least CPU, {_met(p1 <= 1.10)} paired)")
    if "plain" in med:
        r2, c2, m2 = med["ours_none"] / med["plain"], mcpu["ours_none"] / mcpu["plain"], mn["ours_none"] / mn["plain"]
        p2 = _paired(times, "ours_none", "plain")
        print(f"  sensprune loop ÷ minimal PyTorch loop  = {r2:.3f} wall, {c2:.3f} CPU, {m2:.3f} least CPU, "
              f"{p2:.3f} paired   (target ≤ 1.15: {_met(r2 <= 1.15)} wall, {_met(c2 <= 1.15)} CPU, "
              f"{_met(m2 <= 1.15)} least CPU, {_met(p2 <= 1.15)} paired)")
    groups = [k for k in ("input_grad", "dynamics", "el2n", "grad_only") if k in med]
    print("  breakdown, each group alone ÷ no measures (wall / CPU / least CPU / paired): " + ", ".join(
        f"{k} {med[k] / med['ours_none']:.3f} / {mcpu[k] / mcpu['ours_none']:.3f} / {mn[k] / mn['ours_none']:.3f}"
        f" / {_paired(times, k, 'ours_none'):.3f}" for k in groups))
    print("  (dynamics = loss, forgetting, aum, confidence, variability, correctness: one hook; grad_only = one hook "
          "that asks for the input gradient and does nothing with it: the floor of any input_grad; least CPU = the "
          "run with the least CPU time of each variant: others' load only adds to it; paired = the median over "
          "rounds of the ratio of the two runs of one round, which lie next to each other in time)")
    if "ours_all" not in med:
        return
    n_ex = data.n_train * epochs
    print(f"  throughput: {n_ex / med['ours_all']:,.0f} examples/s scored with all online measures "
          f"({n_ex / med['ours_none']:,.0f} examples/s training alone); per CPU-second (CPU runs: the load-free "
          f"figure) {n_ex / mcpu['ours_all']:,.0f} and {n_ex / mcpu['ours_none']:,.0f}")


def _paired(times: dict[str, list[float]], a: str, b: str) -> float:
    """Median over rounds of a's wall time ÷ b's in the same round: a drift of the host's speed over the
    minutes of a run cancels out of each round's ratio, where the medians of whole columns keep it."""
    return statistics.median(x / y for x, y in zip(times[a], times[b]))


def _load() -> str:
    return " ".join(f"{v:.1f}" for v in os.getloadavg())


def _met(ok: bool) -> str:
    return "met" if ok else "NOT met"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="fewer epochs, for a smoke run")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: on a shared machine, 2 threads under contention are far noisier)")
    ap.add_argument("--fmnist-repeats", type=int, default=None, help="repeats of the slow Fashion-MNIST setting "
                    "(default --repeats); it runs without a warm-up round (a run is tens of seconds)")
    ap.add_argument("--fmnist-epochs", type=int, default=10, help="epochs of the Fashion-MNIST setting (10 is the "
                    "committed setting; 1 with more repeats is a cheaper look at the per-step breakdown — the "
                    "one EL2N pass then weighs 10x more)")
    ap.add_argument("--settings", default="digits,fashion-mnist", help="which settings to run (comma-separated)")
    ap.add_argument("--variants", default=None, help="a subset of plain,ours_all,input_grad,dynamics,el2n,grad_only "
                    "(ours_none always runs)")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    print("# sensprune scoring overhead")
    gpu = torch.cuda.get_device_name() if a.device.startswith("cuda") else "no GPU used"
    print(f"date {date.today()}  machine: {os.cpu_count()} CPU cores ({platform.processor() or platform.machine()}),"
          f" {gpu}, device {a.device}, torch {torch.__version__}, threads {torch.get_num_threads()}")
    settings = a.settings.split(",")
    if "digits" in settings:
        bench("digits / MLP", "digits", "mlp", 3 if a.quick else 15, None, a.repeats, a.device,
              only_variants=a.variants and a.variants.split(","))
    if "fashion-mnist" in settings:
        bench("Fashion-MNIST 10k / CNN", "fashion-mnist", "cnn", 1 if a.quick else a.fmnist_epochs, 10000,
              a.fmnist_repeats or a.repeats, a.device, warmup=False, only_variants=a.variants and a.variants.split(","))


if __name__ == "__main__":
    main()
