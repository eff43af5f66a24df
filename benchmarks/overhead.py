"""The scoring-overhead benchmarks, one script with four parts (``python benchmarks/overhead.py PART [options]``).

Each part prints to stdout; its committed output is the record of what was measured (the file named below, with
the command and commit of each run at its top). ``python benchmarks/overhead.py PART --help`` lists a part's options.

  online    -> benchmarks/overhead.txt           the online measures' overhead, as ratios within one run
  paper     -> benchmarks/overhead_paper.txt     the paper's measures on the paper's setting (H=1 proxy, GraNd, exact)
  parts     -> benchmarks/overhead_parts.txt     where the overhead goes, part by part
  dynamics  -> benchmarks/profile_dynamics.txt   cProfile of the training-dynamics hook on digits

    python benchmarks/overhead.py online [--repeats 5] [--threads 1] [--quick]
    python benchmarks/overhead.py paper [--repeats 7] > benchmarks/overhead_paper.txt
    python benchmarks/overhead.py parts [--repeats 7]
    python benchmarks/overhead.py dynamics [--runs 20] [--top 20]

online: Scoring overhead, measured as ratios within one run.

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

paper: Cost of the paper's measures on the paper's setting (Arpit et al. 2017, §3: 1000 images at 14×14, MLP 16-16).

  Prints, from the same process and data:
    1. the horizon-1 proxy loss_sensitivity_h1 (LossSensitivityHook) ÷ plain training, whole warmup (target ≤ 3.0),
       with the fixed probe (all N; every step, the probe gradient reused for k = 4 and 16 steps, and only every
       4th step scored), the fixed probe of 256 (every step, and v reused for k = 4 and 2 steps), and --probe
       next-batch, on the paper setting and on digits with the default MLP 256-128; median of --repeats (7)
       interleaved repeats (the 2 cores are shared), wall and process CPU time. Beside each: its Spearman
       correlation with exact mode (--horizon all, the paper's measure) on the same trajectory, and with the
       every-step fixed-probe proxy (what an approximation costs the proxy itself);
    2. GraNd with torch.func (vmap over grad, chunks of 256) vs a per-example Python loop (target ≥ 10×);
    3. exact mode (--horizon all): time and peak resident memory of the replay, in a forked child.

parts: Where the scoring overhead goes, part by part (the notes on benchmarks/overhead.txt in docs/performance.md).

  The online part times whole runs; on a shared 2-core host their medians move by ±5%, more than most single
  parts. This part times the parts themselves, many times each, and prints them as a share of the
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

dynamics: Where the training-dynamics hook's time goes on digits (cProfile, differential): the overhead notes.

  Profiles ``--runs`` 15-epoch warmups with the dynamics measures (loss, forgetting, aum, confidence, variability,
  correctness: one DynamicsHook, plus the GiniTracker every scoring run has) and as many with no measure, and prints,
  per function, the extra time per run (tottime with hooks − without), its extra calls and its cumulative time.
  cProfile slows everything down, so read the rows against each other, not as wall times.
"""

from __future__ import annotations

import argparse
import cProfile
import multiprocessing as mp
import os
import platform
import pstats
import statistics
import sys
import time
from datetime import date, datetime, timezone

import numpy as np
import torch
import torch.nn.functional as F

from sensprune.config import TrainConfig
from sensprune.data import load_dataset
from sensprune.measures import DEFAULT_MEASURES
from sensprune.measures.grand import grand_scores
from sensprune.measures.loss_sensitivity.exact import ExactSensitivityHook, stratified_probe
from sensprune.measures.loss_sensitivity.proxy import LossSensitivityHook
from sensprune.measures.peers import DYNAMICS
from sensprune.scoring.stage import ScoreConfig, build_hooks, model_builder
from sensprune.train.hooks import FirstLayerInputGrad, Hook, StepInfo
from sensprune.train.loop import epoch_order, make_optimizer, train
from sensprune.train.models import build_model
from sensprune.train.sources import ArraySource, predict_logits

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "unrolled_accuracy"))
# the paper part's data, rank test and peak-RSS counter
from common import digits_dataset, paper_dataset, peak_rss_reset, spearman, status_kib  # noqa: E402


# ---- part "online" (benchmarks/overhead.txt) -------------------------------------------------------------------

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


# ---- part "paper" (benchmarks/overhead_paper.txt) ----------------------------------------------------------

CFG = TrainConfig(epochs=20, batch_size=128, lr=0.05)


def _train(data, hooks, widths=(16, 16)):
    t0 = time.perf_counter()
    res = train(lambda: build_model("mlp", data.num_classes, data.input_shape, widths=widths),
                ArraySource(data.x_train, data.y_train, torch.device("cpu")), CFG, hooks=hooks, progress=False)
    return time.perf_counter() - t0, res


def _overhead(name, data, widths, repeats=7):
    n = data.n_train
    probe_all = stratified_probe(data.y_train, 2048)
    probe_256 = stratified_probe(data.y_train, 256)
    variants = {
        "plain": lambda: [],
        f"fixed probe {len(probe_all)}, every step (default)": lambda: [LossSensitivityHook(n, probe_all)],
        f"fixed probe {len(probe_all)}, v every 4 steps": lambda: [LossSensitivityHook(n, probe_all, probe_every=4)],
        f"fixed probe {len(probe_all)}, v every 16 steps":
            lambda: [LossSensitivityHook(n, probe_all, probe_every=16)],
        f"fixed probe {len(probe_all)}, every 4th step scored":
            lambda: [LossSensitivityHook(n, probe_all, step_every=4)],
        "fixed probe 256 (--probe-size 256)": lambda: [LossSensitivityHook(n, probe_256)],
        f"fixed probe {len(probe_256)}, v every 4 steps": lambda: [LossSensitivityHook(n, probe_256, probe_every=4)],
        f"fixed probe {len(probe_256)}, v every 2 steps": lambda: [LossSensitivityHook(n, probe_256, probe_every=2)],
        "next-batch (--probe next-batch)": lambda: [LossSensitivityHook(n, probe_all, probe_mode="next-batch")],
    }
    exact = ExactSensitivityHook(n, probe_all)
    _train(data, [exact], widths)  # the same seed and trajectory as every run below (hooks do not alter training)
    for make in variants.values():  # warm-up
        _train(data, make(), widths)
    times, cpu, last = {k: [] for k in variants}, {k: [] for k in variants}, {}
    load0 = os.getloadavg()[0]
    for _ in range(repeats):
        for k, make in variants.items():
            hooks = make()
            c = time.process_time()
            times[k].append(_train(data, hooks, widths)[0])
            cpu[k].append(time.process_time() - c)
            last[k] = hooks
    med = {k: float(np.median(v)) for k, v in times.items()}
    mcpu = {k: float(np.median(v)) for k, v in cpu.items()}
    print(f"   {name}, {CFG.epochs} epochs x batch {CFG.batch_size}: plain {med['plain']:.3f} s wall "
          f"(range {min(times['plain']):.3f}-{max(times['plain']):.3f}), {mcpu['plain']:.3f} s CPU; "
          f"load average {load0:.1f} at start, {os.getloadavg()[0]:.1f} at end")
    ref = list(variants)[1]
    vals = {k: last[k][0].values()["loss_sensitivity_h1"] for k in list(variants)[1:]}
    print(f"     {'H=1 variant':<40} {'wall s':>7} {'ratio':>6} {'CPU ratio':>9}  target<=3 (wall)  "
          f"Spearman vs exact  vs every-step proxy")
    for k in list(variants)[1:]:
        r, rc = med[k] / med["plain"], mcpu[k] / mcpu["plain"]
        print(f"     {k:<40} {med[k]:7.3f} {r:6.2f} {rc:9.2f}  {'met' if r <= 3.0 else 'NOT met':<16}  "
              f"{spearman(vals[k], exact.value):17.3f}  {spearman(vals[k], vals[ref]):18.3f}")
        meta = last[k][0].meta()["loss_sensitivity_h1"]
        if "probe_every_error" in meta:
            e = meta["probe_every_error"]
            print(f"       measured at {e['refreshes_compared']} refreshes: |v_stale - v|/|v| mean "
                  f"{e['v_rel_error_l2']['mean']:.3f} max {e['v_rel_error_l2']['max']:.3f}; step contribution "
                  f"L1 rel. error mean {e['contribution_rel_error_l1']['mean']:.3f} "
                  f"max {e['contribution_rel_error_l1']['max']:.3f}")
    return med["plain"]


def _exact_child(q):
    data = paper_dataset()
    hook = ExactSensitivityHook(data.n_train, stratified_probe(data.y_train, 2048))
    hook_train = ExactSensitivityHook.on_epoch_end
    timing = {}

    def timed(self, epoch, run):
        if epoch + 1 == run.config.epochs:
            peak_rss_reset()
            timing["rss0"] = status_kib("VmRSS:")
            t0 = time.perf_counter()
            hook_train(self, epoch, run)
            timing["s"] = time.perf_counter() - t0
            timing["hwm"] = status_kib("VmHWM:")
    ExactSensitivityHook.on_epoch_end = timed
    _train(data, [hook])
    q.put((timing["s"], (timing["hwm"] - timing["rss0"]) / 1024, timing["hwm"] / 1024, hook.replay_error))


# ---- part "parts" (benchmarks/overhead_parts.txt) ----------------------------------------------------------

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


# ---- part "dynamics" (benchmarks/profile_dynamics.txt) ----------------------------------------------------

def profile(fn, runs: int) -> dict[str, tuple[int, float, float]]:
    pr = cProfile.Profile()
    pr.enable()
    for _ in range(runs):
        fn()
    pr.disable()
    return {f"{k[0].split('/')[-1]}:{k[1]}({k[2]})": (v[1], v[2], v[3]) for k, v in pstats.Stats(pr).stats.items()}


# ---- the command line -------------------------------------------------------------------------------------------

def run_online(a: argparse.Namespace) -> None:
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


def run_paper(a: argparse.Namespace) -> None:
    repeats = a.repeats
    torch.set_num_threads(1)
    data = paper_dataset()
    n = data.n_train
    print("# Overhead of the paper's measures on the paper's setting")
    print("command: python benchmarks/overhead.py paper > benchmarks/overhead_paper.txt")
    print(f"machine: {platform.machine()} CPU, 2 cores (torch threads 1: the 2 cores are shared and 2 threads "
          f"under contention time 10x noisier), no GPU, shared load (load average {os.getloadavg()[0]:.1f} at start), "
          f"torch {torch.__version__}; date {date.today().isoformat()}")
    print(f"setting: Fashion-MNIST 1000 images avg-pooled to 14x14, MLP 16-16, {CFG.epochs} epochs, batch "
          f"{CFG.batch_size}, SGD lr {CFG.lr} momentum {CFG.momentum} wd {CFG.weight_decay}, probe = all 1000")

    print(f"\n1. loss_sensitivity_h1 / plain training, whole warmup; median of {repeats} repeats, variants "
          "interleaved")
    plain = _overhead("paper setting (MLP 16-16)", data, (16, 16), repeats)
    _overhead("digits (N=1257, 8x8), default MLP 256-128", digits_dataset(), (256, 128), repeats)
    print("   why the fixed probe is expensive: each step adds a probe gradient over up to 2048 examples at"
          "\n   theta_{s+1} and, for the batch, -lr * d/dx [grad_theta L_B(theta_s) . v]. For the built-in MLP both"
          "\n   are closed forms (loss_sensitivity/proxy_mlp.py: one forward and the textbook backward; forward-over-"
          "\n   reverse for the second; float rounding from autograd only); other models use autograd (a create_graph"
          "\n   backward and the double backward). On digits the probe's matrix products dominate (1257 examples"
          "\n   x 256-128 units at every step): only a smaller probe or a reused v (named approximations) cut them."
          "\n   --probe next-batch reuses the training gradient of step s+1 as v (no probe pass).")

    _, res = _train(data, [])
    model = res.model.eval()
    x, y = torch.as_tensor(data.x_train), torch.as_tensor(data.y_train)
    grand_scores(model, x[:256], y[:256])
    t0 = time.perf_counter()
    g = grand_scores(model, x, y)
    t_vmap = time.perf_counter() - t0
    t0 = time.perf_counter()
    loop = []
    for i in range(n):
        model.zero_grad()
        F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        loop.append(float(torch.sqrt(sum(p.grad.double().pow(2).sum() for p in model.parameters()))))
    t_loop = time.perf_counter() - t0
    print(f"2. GraNd over {n} examples: torch.func {t_vmap:.3f} s, Python loop {t_loop:.3f} s, speed-up "
          f"{t_loop / t_vmap:.1f}x (target >= 10x: {'met' if t_loop / t_vmap >= 10 else 'NOT met'}); "
          f"max rel. diff {np.max(np.abs(g - loop) / np.array(loop)):.1e}")

    ctx = mp.get_context("fork")
    q = ctx.Queue()
    p = ctx.Process(target=_exact_child, args=(q,))
    p.start()
    secs, extra_mib, hwm_mib, err = q.get()
    p.join()
    steps = CFG.epochs * -(-n // CFG.batch_size)
    print(f"3. exact mode by brute-force unroll ({steps} steps): replay + {steps} backward passes {secs:.1f} s "
          f"(= {secs / plain:.0f}x the plain warmup); peak RSS during the replay +{extra_mib:.0f} MiB over the "
          f"process (peak {hwm_mib:.0f} MiB in all); replay max |dtheta| {err:.1e}")


def run_parts(a: argparse.Namespace) -> None:
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


def run_dynamics(args: argparse.Namespace) -> None:
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


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="part", required=True, metavar="PART")
    p = sub.add_parser("online", help="the online measures' overhead (benchmarks/overhead.txt)")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--quick", action="store_true", help="fewer epochs, for a smoke run")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads (default 1: on a shared machine, 2 threads under contention are far noisier)")
    p.add_argument("--fmnist-repeats", type=int, default=None, help="repeats of the slow Fashion-MNIST setting "
                   "(default --repeats); it runs without a warm-up round (a run is tens of seconds)")
    p.add_argument("--fmnist-epochs", type=int, default=10, help="epochs of the Fashion-MNIST setting (10 is the "
                   "committed setting; 1 with more repeats is a cheaper look at the per-step breakdown — the "
                   "one EL2N pass then weighs 10x more)")
    p.add_argument("--settings", default="digits,fashion-mnist", help="which settings to run (comma-separated)")
    p.add_argument("--variants", default=None, help="a subset of plain,ours_all,input_grad,dynamics,el2n,grad_only "
                   "(ours_none always runs)")
    p.set_defaults(run=run_online)
    p = sub.add_parser("paper", help="the paper's measures on the paper's setting (benchmarks/overhead_paper.txt)")
    p.add_argument("--repeats", type=int, default=7)
    p.set_defaults(run=run_paper)
    p = sub.add_parser("parts", help="where the overhead goes, part by part (benchmarks/overhead_parts.txt)")
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--settings", default="digits,cnn,layout,mapback")
    p.set_defaults(run=run_parts)
    p = sub.add_parser("dynamics", help="cProfile of the dynamics hook (benchmarks/profile_dynamics.txt)")
    p.add_argument("--runs", type=int, default=20)
    p.add_argument("--top", type=int, default=20)
    p.set_defaults(run=run_dynamics)
    a = ap.parse_args(argv)
    a.run(a)


if __name__ == "__main__":
    main()
