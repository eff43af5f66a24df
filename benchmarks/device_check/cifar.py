"""GPU check, part ``cifar`` of ``benchmarks/device_check.sh``.

A CIFAR-10-sized synthetic problem (50 000 × 3×32×32, 10 classes, made on the device), scored by the
training loop with and without the online measures, with and without ``--amp bf16``:

- ``resnet18`` (BatchNorm): the online measures that apply to it — the dynamics group (loss, forgetting,
  aum, confidence, variability, correctness) and el2n; ``input_grad`` is refused online for BatchNorm
  models (the batch couples the examples), so its eval-mode pass at one epoch (``--at-checkpoints``) is
  timed as its own variant;
- ``cnn`` (no BatchNorm): all default online measures, input_grad included.

Each variant runs ``--repeats`` times, interleaved, after one untimed warm-up run per model and precision
(cuDNN autotuning); the median wall time (after ``torch.cuda.synchronize()``) is used. Printed: the ratio
of each variant to plain training (target ≤ 1.05), the per-epoch ratio over the epochs after the first
(the steady state: the EL2N pass sits in epoch 1), the EL2N pass in units of a training epoch, and
examples per second. ``el2n`` is scored after epoch 1, so its one forward pass over N weighs 1/E of the
E-epoch run; the measured ratios are for ``--epochs``.

    python benchmarks/device_check/cifar.py [--n 50000] [--epochs 2] [--repeats 2] [--tiny]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from sensprune.config import TrainConfig
from sensprune.data import make_dataset
from sensprune.measures import DEFAULT_MEASURES
from sensprune.scoring.stage import ScoreConfig, build_hooks, model_builder
from sensprune.train.loop import train
from sensprune.train.sources import ArraySource, predict_logits


def synthetic(n: int, shape: tuple[int, ...], device: torch.device, classes: int = 10, seed: int = 0):
    """Class templates plus noise in [0, 1], float32 on ``device``; a little test split for make_dataset."""
    g = torch.Generator(device="cpu").manual_seed(seed)
    templates = torch.rand((classes, *shape), generator=g)
    y = torch.randint(0, classes, (n,), generator=g)
    x = torch.empty((n, *shape), dtype=torch.float32)
    for s in range(0, n, 10_000):  # in chunks: the noise of 50k CIFAR images is 600 MB
        e = min(n, s + 10_000)
        x[s:e] = (0.5 * templates[y[s:e]] + 0.5 * torch.rand((e - s, *shape), generator=g)).clamp_(0, 1)
    yt = torch.arange(classes).repeat(4)
    xt = (0.5 * templates[yt] + 0.25).numpy()
    data = make_dataset(x.numpy(), y.numpy(), xt, yt.numpy(), spec=f"synthetic-{n}x{'x'.join(map(str, shape))}",
                        num_classes=classes)
    return data, ArraySource(data.x_train, data.y_train, device)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bench_model(model: str, data, src, device, epochs: int, batch: int, amp: str, repeats: int) -> None:
    tcfg = TrainConfig(epochs=epochs, batch_size=batch, device=str(device), amp=amp, eval_batch_size=1024)
    online = DEFAULT_MEASURES if model != "resnet18" else tuple(m for m in DEFAULT_MEASURES if m != "input_grad")
    configs = {"plain": None,
               "online": ScoreConfig(dataset=data.spec, model=model, measures=online, train=tcfg)}
    if model == "resnet18":
        configs["input_grad@1"] = ScoreConfig(dataset=data.spec, model=model, measures=("input_grad",),
                                              at_checkpoints=(1,), train=tcfg)
    build = model_builder(data, configs["online"])

    def run(cfg):
        hooks = build_hooks(data, cfg)[1] if cfg is not None else []
        _sync(device)
        t = time.perf_counter()
        res = train(build, src, tcfg, hooks=hooks, progress=False)
        _sync(device)
        return time.perf_counter() - t, [h["time_s"] for h in res.history], res.model

    run(configs["online"])  # warm-up (cuDNN autotuning, allocator) — untimed
    wall = {k: [] for k in configs}
    per_epoch = {k: [] for k in configs}
    model_out = None
    for _ in range(repeats):
        for k, cfg in configs.items():
            t, ep, model_out = run(cfg)
            wall[k].append(t)
            per_epoch[k].append(statistics.mean(ep[1:]) if len(ep) > 1 else ep[0])
    med = {k: statistics.median(v) for k, v in wall.items()}
    mep = {k: statistics.median(v) for k, v in per_epoch.items()}
    # the EL2N pass alone: one eval-mode forward over N in the training precision
    from sensprune.train.loop import autocast_dtype

    _sync(device)
    t = time.perf_counter()
    predict_logits(model_out, src, 1024, amp=autocast_dtype(tcfg, device))
    _sync(device)
    el2n_pass = time.perf_counter() - t
    n = len(src)
    print(f"\n### {model}, amp={amp}: N={n}, {epochs} epochs x batch {batch}, median of {repeats} "
          f"(interleaved, after a warm-up run)")
    print(f"  measures online: {', '.join(configs['online'].measures)}")
    runs = {k: ", ".join(f"{v:.2f}" for v in wall[k]) for k in configs}
    print("\n".join(f"  {k:<13} {med[k]:8.2f} s  (runs {runs[k]}); epochs 2..: {mep[k]:.2f} s/epoch" for k in configs))
    ratios = {k: (med[k] / med["plain"], mep[k] / mep["plain"]) for k in list(configs)[1:]}
    print("\n".join(f"  {k} ÷ plain = {r:.3f} whole run (target ≤ 1.05: {'met' if r <= 1.05 else 'NOT met'}), "
                    f"{r_ep:.3f} per epoch after the first" for k, (r, r_ep) in ratios.items()))
    ep_plain = mep["plain"]
    print(f"  EL2N pass (eval forward over N, amp={amp}): {el2n_pass:.2f} s = {el2n_pass / ep_plain:.2f} "
          f"training epochs; in a 20-epoch warmup it would weigh {el2n_pass / (20 * ep_plain):.3f}")
    print(f"  throughput: {n * epochs / med['online']:,.0f} examples/s scored with the online measures, "
          f"{n * epochs / med['plain']:,.0f} examples/s plain training")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=50_000)
    ap.add_argument("--size", type=int, default=32, help="image side (3 x size x size)")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--models", default="cnn,resnet18")
    ap.add_argument("--amps", default="none,bf16")
    ap.add_argument("--tiny", action="store_true", help="a CPU dry run: N=64, 3x8x8, batch 32, 2 epochs, 1 repeat")
    a = ap.parse_args()
    if a.tiny:
        a.n, a.size, a.batch, a.repeats = 64, 8, 32, 1
    cuda = torch.cuda.is_available()
    if not cuda and not a.tiny:
        raise SystemExit("Error: no CUDA device; use --tiny (GPU_CHECK_TINY=1) for a CPU dry run.")
    device = torch.device("cuda" if cuda else "cpu")
    if cuda:
        torch.backends.cudnn.benchmark = True
    card = torch.cuda.get_device_name() if cuda else "no GPU (CPU dry run)"
    print(f"## scoring overhead on a CIFAR-10-sized synthetic problem — device {device}: {card}; torch "
          f"{torch.__version__}; {os.cpu_count()} CPU cores{'; TINY dry run' if a.tiny else ''}")
    t0 = time.perf_counter()
    data, src = synthetic(a.n, (3, a.size, a.size), device)
    print(f"  data: {a.n} x 3x{a.size}x{a.size} float32 on {device}, made in {time.perf_counter() - t0:.1f} s")
    for model in a.models.split(","):
        for amp in a.amps.split(","):
            bench_model(model, data, src, device, a.epochs, a.batch, amp, a.repeats)
    if cuda:
        print(f"  peak GPU memory: {torch.cuda.max_memory_allocated() / 2 ** 30:.1f} GiB")


if __name__ == "__main__":
    main()
