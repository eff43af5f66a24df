"""Where the scoring overhead goes, part by part (the README's notes on benchmarks/overhead.txt).

overhead.py times whole runs; on a shared 2-core host their medians move by ±5%, more than most single
parts. This script times the parts themselves, many times each, and prints them as a share of the
training they ride on (least of the repeats: others' load only adds to a time):

digits / MLP 256-128 (the committed digits setting, 15 epochs of 10 steps):
  - the training step (the loop's work without measures) and the first-layer product ``G @ W`` that
    ``input_grad`` adds to each backward (the MLP's input gradient is that product: its floor), and a run with one
    hook that asks for the input gradient and ignores it (the product plus the input leaf and the per-step calls);
  - per run of 15 epochs: the buffered steps folded by the dynamics hook and by the input-gradient hook,
    the per-epoch Gini of every measure (GiniTracker; its sorts alone too), and the EL2N pass (one eval forward
    over N); the sum of G @ W, the pass and the sorts is the work the measures' definitions ask for.
Fashion-MNIST-sized CNN (28×28, batch 128; random pixels — the time does not depend on them):
  - the training step, the first-layer map-back of ``input_grad`` measured inside the real backward,
    and the EL2N pass over 10 000 examples against one training epoch over them (and at eval batch sizes 64,
    128 and 256);
  - the cnn's memory layout: channels_last (the default) against NCHW, same weights, interleaved;
  - ways of computing the first-layer map-back (ours on NHWC and NCHW gradients, conv_transpose2d, autograd's).

    .venv/bin/python benchmarks/overhead_parts.py [--repeats 7]
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from datetime import datetime, timezone

import numpy as np
import torch
import torch.nn.functional as F

from sensprune.config import TrainConfig
from sensprune.data import load_dataset
from sensprune.measures import DEFAULT_MEASURES
from sensprune.scoring.stage import ScoreConfig, build_hooks, model_builder
from sensprune.train.hooks import FirstLayerInputGrad, Hook, StepInfo
from sensprune.train.loop import epoch_order, make_optimizer, train
from sensprune.train.models import build_model
from sensprune.train.sources import ArraySource, predict_logits

from overhead import GradientOnly  # the sibling script's hook (benchmarks/ is on the path when run as a script)


def least(fn, repeats: int, inner: int = 1) -> float:
    """Least wall time of ``repeats`` calls of ``inner`` back-to-back ``fn()``, per call (seconds)."""
    fn()
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for _ in range(inner):
            fn()
        best = min(best, (time.perf_counter() - t) / inner)
    return best


def interleaved_least(ways: dict, rounds: int, inner: int = 1) -> dict:
    """``{key: least wall time per call}`` of each ``ways[key]()``, the ways taking turns round by round (so a
    slow minute of the shared host falls on all of them alike)."""
    best = dict.fromkeys(ways, float("inf"))
    for _ in range(rounds):
        for k, fn in ways.items():
            t = time.perf_counter()
            for _ in range(inner):
                fn()
            best[k] = min(best[k], (time.perf_counter() - t) / inner)
    return best


def digits_parts(repeats: int) -> None:
    data = load_dataset("digits")
    tcfg = TrainConfig(epochs=15, batch_size=128)
    cfg = ScoreConfig(dataset="digits", model="mlp", measures=DEFAULT_MEASURES, train=tcfg)
    build = model_builder(data, cfg)
    src = ArraySource(data.x_train, data.y_train, torch.device("cpu"))
    n, steps = data.n_train, -(-data.n_train // 128) * tcfg.epochs

    def timed(hooks) -> float:
        t = time.perf_counter()
        train(build, src, tcfg, hooks=hooks, progress=False)
        return time.perf_counter() - t

    timed([])
    plain_runs, extra = [], []
    for r in range(5 * repeats):  # pairs of adjacent runs, in alternating order: the host's drift cancels
        a, b = (timed([]), timed([GradientOnly()])) if r % 2 == 0 else reversed((timed([GradientOnly()]), timed([])))
        plain_runs.append(a)
        extra.append(b - a)
    run_s, grad_extra = min(plain_runs), float(np.median(extra))

    torch.manual_seed(0)
    model = build()
    g = torch.randn(128, model.net[1].out_features)
    w = model.net[1].weight.detach()
    product_s = least(lambda: g @ w, repeats, inner=200)

    # the hooks' own per-step and per-epoch work, fed the steps of one real run (logits, losses, labels)
    recorded = []

    class Record(Hook):
        needs_input_grad = True

        def on_step(self, step, run):
            recorded.append(StepInfo(*(t.clone() if isinstance(t, torch.Tensor) else t for t in (
                step.epoch, step.step, step.idx, step.x, step.y, step.logits, step.losses, step.input_grad,
                step.lr, step.correct))))

    train(build, src, tcfg, hooks=[Record()], progress=False)
    per_epoch = [[s for s in recorded if s.epoch == e] for e in range(tcfg.epochs)]
    cost = {}
    for _ in range(repeats):
        hooks = build_hooks(data, cfg)[1]
        spent = dict.fromkeys((type(h).__name__ for h in hooks), 0.0)
        for e, batch in enumerate(per_epoch):
            for h in hooks:
                t = time.perf_counter()
                for s in batch:
                    h.on_step(s, None)
                if type(h).__name__ != "EL2NHook":
                    h.on_epoch_end(e, None)
                elif e + 1 == h.epoch:  # its pass is timed below; from here on the Gini sorts its values too
                    h.value = np.random.default_rng(e).random(n)
                spent[type(h).__name__] += time.perf_counter() - t
        cost = {k: min(v, cost.get(k, float("inf"))) for k, v in spent.items()}
    passes = interleaved_least({b: (lambda b=b: predict_logits(model, src, b)) for b in (128, 256)}, repeats, 5)
    el2n_s = passes[tcfg.eval_batch_size]
    # the Gini curve's sorts alone: numpy's sort of each measure's N values, at every epoch end
    vals = [v for h in hooks[:-1] for v in h.values().values()]
    sort_s = least(lambda: [np.sort(v) for v in vals], repeats, inner=20) * tcfg.epochs

    print(f"\n## digits / MLP 256-128: N={n}, 15 epochs × {steps // tcfg.epochs} steps, least of {repeats}")
    print(f"  training run without measures        {run_s * 1e3:7.1f} ms  (the denominator below)")
    print(f"  first-layer product G @ W            {product_s * 1e6:7.1f} µs a step × {steps} = "
          f"{product_s * steps * 1e3:5.1f} ms  = {product_s * steps / run_s:6.1%}   (input_grad's floor on an MLP)")
    print(f"  a hook that only asks for ∇ₓ           {grad_extra * 1e3:7.2f} ms a run      = "
          f"{grad_extra / run_s:6.1%}   (G @ W, the input leaf, StepInfo, the hook calls: the floor under "
          f"input_grad; median over {len(extra)} adjacent pairs of runs of the difference)")
    names = {"InputGradHook": "input_grad hook: step norms + folds", "DynamicsHook": "dynamics hook: folds",
             "GiniTracker": "per-epoch Gini of the 8 measures", "EL2NHook": "el2n hook (its pass below)"}
    for k, v in cost.items():
        print(f"  {names.get(k, k):<36} {v * 1e3:7.2f} ms a run      = {v / run_s:6.1%}")
        if k == "GiniTracker":
            print(f"    of which numpy's sorts             {sort_s * 1e3:7.2f} ms a run      = {sort_s / run_s:6.1%}   "
                  f"({len(vals)} sorts of {n} values × {tcfg.epochs} epochs)")
    print(f"  EL2N pass (eval forward over N)      {el2n_s * 1e3:7.2f} ms a run      = {el2n_s / run_s:6.1%}   ("
          + ", ".join(f"batches of {b}: {t * 1e3:.2f} ms" for b, t in passes.items()) + ")")
    floor = product_s * steps + el2n_s + sum(cost.values())
    print(f"  these parts together                 {floor * 1e3:7.2f} ms           = {floor / run_s:6.1%}   "
          "(before the loop's per-step bookkeeping: StepInfo, the input leaf, hook calls)")
    least_work = product_s * steps + el2n_s + sort_s
    print(f"  the work the definitions ask for     {least_work * 1e3:7.2f} ms           = {least_work / run_s:6.1%}   "
          "(G @ W at every step, one eval pass, the Gini sorts: what no faster bookkeeping removes)")


def cnn_parts(repeats: int) -> None:
    torch.manual_seed(0)
    n, bs = 10_000, 128
    x = torch.randn(n, 784)
    y = torch.randint(0, 10, (n,))
    src = ArraySource(x.numpy(), y.numpy(), torch.device("cpu"))
    model = build_model("cnn", 10, (28, 28))
    opt = make_optimizer(model, TrainConfig())
    first = FirstLayerInputGrad(FirstLayerInputGrad.find(model))
    spent = [0.0]
    inner = first._backward

    def timed(grad):
        t = time.perf_counter()
        inner(grad)
        spent[0] += time.perf_counter() - t
    first._backward = timed
    order = epoch_order(n, 0, 0, None)

    def steps(k: int, capture: bool) -> None:
        for s in range(0, k * bs, bs):
            idx = order[s:s + bs]
            first.active = capture
            loss = F.cross_entropy(model(x[idx]), y[idx])
            first.active = False
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if capture:
                first.take(x[idx])
            opt.step()

    k = 8
    step_s = least(lambda: steps(k, False), repeats) / k
    spent[0], best_map = 0.0, float("inf")
    for _ in range(repeats):
        spent[0] = 0.0
        steps(k, True)
        best_map = min(best_map, spent[0] / k)
    eval_bs = TrainConfig().eval_batch_size
    passes = interleaved_least({b: (lambda b=b: predict_logits(model, src, b)) for b in (64, 128, 256)},
                               max(3, repeats // 2))
    el2n_s = passes[eval_bs]
    epoch_s = step_s * -(-n // bs)
    print(f"\n## Fashion-MNIST-sized CNN (28×28, channels_last), batch {bs}, N={n}, least of {repeats}")
    print(f"  training step                        {step_s * 1e3:7.2f} ms")
    print(f"  input_grad first-layer map-back      {best_map * 1e3:7.2f} ms a step   = {best_map / step_s:6.1%}")
    print(f"  EL2N pass over N                     {el2n_s:7.2f} s  = {el2n_s / epoch_s:6.1%} of an epoch "
          f"({epoch_s:.2f} s) = {el2n_s / (10 * epoch_s):6.1%} of the 10-epoch run")
    print("  the pass by eval batch size          " + ", ".join(f"{b}: {t:.2f} s" for b, t in passes.items())
          + f"   (the default, eval_batch_size = {eval_bs}, above)")


def layout_ab(repeats: int) -> None:
    """The built-in cnn in channels_last (its default) against the same weights in NCHW, interleaved."""
    torch.manual_seed(0)
    x, y = torch.randn(1024, 784), torch.randint(0, 10, (1024,))
    src = ArraySource(x.numpy(), y.numpy(), torch.device("cpu"))
    models = {"channels_last": build_model("cnn", 10, (28, 28))}
    nchw = build_model("cnn", 10, (28, 28))
    nchw.load_state_dict(models["channels_last"].state_dict())
    nchw.features.to(memory_format=torch.contiguous_format)
    nchw._nhwc = False  # its forward no longer converts the batch
    models["NCHW"] = nchw
    opts = {k: make_optimizer(m, TrainConfig()) for k, m in models.items()}

    def epoch(k: str) -> None:
        for s in range(0, 1024, 128):
            loss = F.cross_entropy(models[k](x[s:s + 128]), y[s:s + 128])
            opts[k].zero_grad(set_to_none=True)
            loss.backward()
            opts[k].step()
    best = interleaved_least({**{(k, "train"): (lambda k=k: epoch(k)) for k in models},
                              **{(k, "eval"): (lambda k=k: predict_logits(models[k], src, 256)) for k in models}},
                             repeats)
    print(f"\n## the cnn's memory layout, 1024 Fashion-MNIST-sized examples, least of {repeats} (interleaved)")
    for what, label in (("train", "training epoch (8 steps of 128)"), ("eval", "eval forward (batches of 256)")):
        a, b = best["channels_last", what], best["NCHW", what]
        print(f"  {label:<34} channels_last {a * 1e3:7.1f} ms, NCHW {b * 1e3:7.1f} ms: NCHW ÷ channels_last = "
              f"{b / a:.2f}")


def mapback_ab(repeats: int) -> None:
    """The first conv layer's input gradient from its output gradient (128 Fashion-MNIST-sized images), each
    way timed on 8 different gradients in turn (not in cache, as inside a backward)."""
    from sensprune.train.hooks import conv2d_input_grad

    torch.manual_seed(0)
    conv = build_model("cnn", 10, (28, 28)).features[0]
    w = conv.weight.detach()
    grads = [torch.randn(128, 32, 28, 28) for _ in range(8)]
    nhwc = [g.contiguous(memory_format=torch.channels_last) for g in grads]
    ways = {
        "conv2d_input_grad, NHWC gradient (the cnn's)": lambda g: conv2d_input_grad(g, conv, (28, 28)),
        "conv2d_input_grad, NCHW gradient": lambda g: conv2d_input_grad(g, conv, (28, 28)),
        "conv_transpose2d, NHWC gradient": lambda g: F.conv_transpose2d(g, w, padding=1),
        "autograd's torch.nn.grad.conv2d_input, NCHW": lambda g: torch.nn.grad.conv2d_input(
            (128, 1, 28, 28), w, g, padding=1),
    }
    print(f"\n## first-layer map-back, 128 images 28×28, C_out 32, 3×3, least of {repeats} rounds of 8 gradients")
    ref = torch.nn.grad.conv2d_input((128, 1, 28, 28), w, grads[0], padding=1)
    for name, fn in ways.items():
        gs = nhwc if "NHWC" in name else grads
        err = float((fn(gs[0]) - ref).abs().max())
        t = least(lambda: [fn(g) for g in gs], repeats) / len(gs)
        print(f"  {name:<46} {t * 1e3:6.2f} ms   (max |difference| from autograd {err:.1e})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--settings", default="digits,cnn,layout,mapback")
    a = ap.parse_args()
    torch.set_num_threads(1)
    print(f"# overhead_parts: {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPU cores "
          f"({platform.machine()}), no GPU used, torch {torch.__version__}, 1 thread, load average "
          f"{os.getloadavg()[0]:.1f}")
    if "digits" in a.settings:
        digits_parts(a.repeats)
    if "cnn" in a.settings:
        cnn_parts(a.repeats)
    if "layout" in a.settings:
        layout_ab(a.repeats)
    if "mapback" in a.settings:
        mapback_ab(a.repeats)


if __name__ == "__main__":
    main()
