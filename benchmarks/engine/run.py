"""The loss_sensitivity engine at the scale of the models people train: the built-in resnet18 (BatchNorm), AdamW and
``--augment crop-flip`` on CIFAR-shaped synthetic data (3 x H x W, 10 classes; real CIFAR-10 is not available
offline). Three parts, each measured in fresh processes:

  memory     peak memory of the sensitivity against T (three values), every state stored vs checkpointed at the
             smallest budget that works (c = ceil(sqrt(T)) steps): linear vs sqrt(T) growth
  agreement  Spearman of the default (K = 16 sampled steps) with exact mode (every step) on a small problem
  time       wall time of training with the default loss_sensitivity / plain training (same process)

    python benchmarks/engine/run.py --part all                      # CPU, about 15 minutes on 2 cores
    python benchmarks/engine/run.py --part time --device cuda --n 50000 --hw 32 --epochs 10 --batch-size 128
                                                                    # the GPU check (see gpu.sh)
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks" / "unrolled_accuracy"))
from common import peak_rss_mib, peak_rss_reset  # noqa: E402  (benchmarks/unrolled_accuracy/common.py)


def _child(a) -> dict:
    """One training run (with or without the measure) in this process; returns timings and peak memory."""
    import torch

    from sensprune.config import TrainConfig
    from sensprune.measures.loss_sensitivity.exact import stratified_probe
    from sensprune.measures.loss_sensitivity.sampled import SampledSensitivityHook
    from sensprune.train.loop import train
    from sensprune.train.models import build_model
    from sensprune.train.sources import ArraySource

    torch.set_num_threads(a.threads)
    dev = torch.device(a.device)
    g = np.random.default_rng(0)
    y = (np.arange(a.n) % 10).astype(np.int64)
    x = (g.normal(size=(a.n, 3, a.hw, a.hw)) * 0.5 + y[:, None, None, None] * 0.1).astype(np.float32)
    src = ArraySource(x, y, dev)
    cfg = TrainConfig(epochs=a.epochs, batch_size=a.batch_size, optimizer="adamw", lr=1e-3, weight_decay=0.05,
                      augment="crop-flip", seed=0, device=a.device)

    def model():
        return build_model("resnet18", 10, (3, a.hw, a.hw))

    hooks = []
    if a.k:
        steps = a.epochs * -(-a.n // a.batch_size)
        k = "all" if a.k == "all" else min(int(a.k), steps)
        hooks = [SampledSensitivityHook(a.n, stratified_probe(y, a.probe_size), k, memory=a.memory)]
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    peak_rss_reset()
    t0 = time.perf_counter()
    train(model, src, cfg, hooks=hooks, progress=False)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    out = {"wall_s": time.perf_counter() - t0, "peak_rss_mib": peak_rss_mib(),
           "steps": a.epochs * -(-a.n // a.batch_size)}
    if dev.type == "cuda":
        out["peak_gpu_mib"] = torch.cuda.max_memory_allocated(dev) / 2 ** 20
    if hooks:
        h = hooks[0]
        note = h.meta()["loss_sensitivity"]
        out.update(values=h.value.tolist(), plan=note["memory_plan"], profile=note["profile"],
                   plan_inputs=h.plan_inputs, replay_rel=note["replay_max_rel_param_diff"])
    return out


def run(**kw) -> dict:
    """:func:`_child` in a fresh process (clean peak memory)."""
    args = [sys.executable, __file__, "--child"] + [f"--{k.replace('_', '-')}={v}" for k, v in kw.items()
                                                    if v is not None]
    res = subprocess.run(args, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise SystemExit(res.stderr[-2000:])
    return json.loads(res.stdout.strip().splitlines()[-1])


def part_memory(a):
    print("\n## memory: peak RSS of a run with loss_sensitivity (K = 2) against T, all states stored vs checkpointed")
    print(f"resnet18, AdamW, crop-flip, {a.n} x 3x{a.hw}x{a.hw}, batch {a.batch_size}; plain training of the same T "
          "beside it; 'plan' = the memory plan's own estimate")
    print(f"{'T':>5}{'plain MiB':>11}{'stored: MiB':>13}{'plan MiB':>10}{'ckpt: c':>9}{'MiB':>8}{'plan MiB':>10}"
          f"{'recomputed':>12}{'max |diff|/max':>16}")
    steps_per_epoch = -(-a.n // a.batch_size)
    for epochs in a.memory_epochs:
        common = dict(n=a.n, hw=a.hw, epochs=epochs, batch_size=a.batch_size, threads=a.threads, device=a.device,
                      probe_size=a.probe_size)
        plain = run(**common)
        full = run(**common, k=2)
        from sensprune.measures.loss_sensitivity.plan import smallest_budget

        ckpt = run(**common, k=2, memory=smallest_budget(**full["plan_inputs"]))
        v0, v1 = np.array(full["values"]), np.array(ckpt["values"])
        print(f"{epochs * steps_per_epoch:>5}{plain['peak_rss_mib']:>11.0f}{full['peak_rss_mib']:>13.0f}"
              f"{full['plan']['estimated_peak_bytes'] / 2 ** 20:>10.0f}{ckpt['plan']['checkpoint_interval']:>9}"
              f"{ckpt['peak_rss_mib']:>8.0f}{ckpt['plan']['estimated_peak_bytes'] / 2 ** 20:>10.0f}"
              f"{ckpt['plan']['recomputed_steps']:>12}{np.abs(v1 - v0).max() / np.abs(v0).max():>16.1e}", flush=True)


def part_agreement(a):
    from scipy.stats import spearmanr

    n, hw, bs, ep = a.agree_n, a.agree_hw, a.agree_batch, a.agree_epochs
    print(f"\n## agreement: default (K = 16) vs exact mode (every step), resnet18 + AdamW + crop-flip, "
          f"{n} x 3x{hw}x{hw}, batch {bs}, {ep} epochs (T = {ep * -(-n // bs)})")
    common = dict(n=n, hw=hw, epochs=ep, batch_size=bs, threads=a.threads, device=a.device, probe_size=a.probe_size)
    exact = run(**common, k="all")
    default = run(**common, k=16)
    rho = spearmanr(default["values"], exact["values"]).correlation
    print(f"Spearman {rho:.3f}; wall s: exact {exact['wall_s']:.0f}, default {default['wall_s']:.0f}; replay relative "
          f"difference from the trained weights {default['replay_rel']:.1e}", flush=True)


def part_time(a):
    print(f"\n## time: training with the default loss_sensitivity (K = 16) / plain training, resnet18 + AdamW + "
          f"crop-flip, {a.n} x 3x{a.hw}x{a.hw}, batch {a.batch_size}, {a.epochs} epochs, device {a.device}")
    common = dict(n=a.n, hw=a.hw, epochs=a.epochs, batch_size=a.batch_size, threads=a.threads, device=a.device,
                  probe_size=a.probe_size)
    plain = run(**common)
    sens = run(**common, k=16, memory=a.memory)
    p = sens["profile"]
    line = (f"T = {sens['steps']}: plain {plain['wall_s']:.1f} s, with loss_sensitivity {sens['wall_s']:.1f} s; "
            f"ratio {sens['wall_s'] / plain['wall_s']:.2f}")
    if "peak_gpu_mib" in sens:
        line += f"; peak GPU memory {sens['peak_gpu_mib']:.0f} MiB (plain {plain['peak_gpu_mib']:.0f})"
    print(line)
    print(f"profile: replay {p['replay_s']:.1f} s, probe gradients {p['probe_s']:.1f} s, per-step rebuild "
          f"{p['rebuild_s']:.1f} s, VJPs {p['vjp_s']:.1f} s; {p['reverse_steps']} reverse steps carrying "
          f"{p['adjoint_steps']} adjoint-steps (the definition needs {p['adjoint_steps_defined']}); plan: "
          f"{json.dumps(sens['plan'])}", flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--part", default="all", choices=["all", "memory", "agreement", "time"])
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--hw", type=int, default=16)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--memory-epochs", type=lambda s: [int(v) for v in s.split(",")], default=[1, 3, 8])
    ap.add_argument("--agree-n", type=int, default=128)
    ap.add_argument("--agree-hw", type=int, default=8)
    ap.add_argument("--agree-batch", type=int, default=16)
    ap.add_argument("--agree-epochs", type=int, default=3)
    ap.add_argument("--probe-size", type=int, default=256)
    ap.add_argument("--k", default=None)
    ap.add_argument("--memory", type=int, default=None)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    if a.child:
        print(json.dumps(_child(a)))
        return
    import torch

    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    gpu = torch.cuda.get_device_name(0) if a.device.startswith("cuda") else "no GPU used"
    print("# loss_sensitivity engine: resnet18 (BatchNorm) + AdamW + crop-flip on CIFAR-shaped synthetic data")
    print(f"command: python benchmarks/engine/run.py {' '.join(sys.argv[1:])}")
    print(f"machine: {platform.machine()} {cpu}, {os.cpu_count()} cores, torch threads {a.threads}, {gpu}; torch "
          f"{torch.__version__}; date {datetime.date.today().isoformat()}")
    t0 = time.perf_counter()
    for part, fn in (("memory", part_memory), ("agreement", part_agreement), ("time", part_time)):
        if a.part in ("all", part):
            fn(a)
    print(f"\n(total {time.perf_counter() - t0:.0f} s)")


if __name__ == "__main__":
    main()
