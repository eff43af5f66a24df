"""Accuracy and cost of the loss-sensitivity estimators against exact mode (issue: full-horizon estimator).

For each setting and seed, ONE training trajectory (the loop is deterministic per seed) is scored by every
estimator in its own training run: exact mode (``--probe-times all``), the sampled full-horizon estimator at
K ∈ {1, 4, 8, 16, 32} (``--probe-times K``; 16 is the default), and the truncated proxies H = 1, H = 8 and
H = 1 with the next-batch probe. Reported per estimator, mean [min, max] over seeds:
  - Spearman with exact mode over all training examples;
  - AUROC of the score for the 20% symmetrically flipped labels (higher score = flipped);
  - wall time of training with the estimator ÷ plain training without it (same process, same trajectory);
  - peak RSS of that run (VmHWM, reset before each run through /proc/self/clear_refs).

Usage:
  python benchmarks/unrolled_accuracy/run.py [--settings digits,digits-plain,...] [--seeds 3] [--jobs 1]
      [--threads 2] > benchmarks/unrolled_accuracy/results.txt
"""

from __future__ import annotations

import argparse
import datetime
import json
import multiprocessing as mp
import os
import platform
import sys
import time

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(__file__))
from common import digits_dataset, paper_dataset, peak_rss_mib, peak_rss_reset, spearman  # noqa: E402

from sensprune.config import TrainConfig  # noqa: E402
from sensprune.data import load_dataset, make_dataset  # noqa: E402
from sensprune.data.noise import corrupt_labels  # noqa: E402
from sensprune.measures.loss_sensitivity.sampled import SampledSensitivityHook  # noqa: E402
from sensprune.measures.loss_sensitivity.proxy import LossSensitivityHook  # noqa: E402
from sensprune.measures.loss_sensitivity.exact import ExactSensitivityHook, stratified_probe  # noqa: E402
from sensprune.train.loop import train  # noqa: E402
from sensprune.train.models import build_model  # noqa: E402
from sensprune.train.sources import ArraySource  # noqa: E402

KS = (1, 4, 8, 16, 32)
DIGITS = dict(epochs=15, batch_size=128, lr=0.05, momentum=0.9, weight_decay=5e-4, schedule="cosine")
SETTINGS = {
    "digits": ("digits, all 1257, MLP 256-128, SGD lr 0.05 momentum 0.9 wd 5e-4 cosine, 15 epochs x batch 128",
               "digits", (256, 128), DIGITS),
    "digits-plain": ("digits, MLP 256-128, plain SGD lr 0.5 (no momentum) wd 5e-4 cosine, 15 epochs x batch 128",
                     "digits", (256, 128), {**DIGITS, "lr": 0.5, "momentum": 0.0}),
    "digits-30": ("digits, as 'digits' but 30 epochs (T doubles: how each cost grows with T)",
                  "digits", (256, 128), {**DIGITS, "epochs": 30}),
    "paper": ("paper-like: 1000 Fashion-MNIST images average-pooled to 14x14 standing in for the paper's 1000 "
              "MNIST digits at 14x14 (MNIST is not available offline), MLP 16-16, plain SGD lr 0.01 constant, "
              "no weight decay, 20 epochs x batch 128 (the paper's batch size and epochs are not stated)",
              "paper", (16, 16), dict(epochs=20, batch_size=128, lr=0.01, momentum=0.0, weight_decay=0.0,
                                      schedule="constant")),
    "mnist1d": ("MNIST-1D (generated, 4000 train), MLP 256-128, SGD lr 0.05 momentum 0.9 wd 5e-4 cosine, "
                "10 epochs x batch 256", "mnist1d", (256, 128), {**DIGITS, "epochs": 10, "batch_size": 256}),
}


if os.environ.get("BENCH_TINY"):  # dry run of the script: 1 epoch everywhere
    SETTINGS = {k: (d, kind, w, {**tc, "epochs": 2}) for k, (d, kind, w, tc) in SETTINGS.items()}
    KS = (1, 4)


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown model"


def _data(kind: str):
    return {"digits": digits_dataset, "paper": paper_dataset, "mnist1d": lambda: load_dataset("mnist1d")}[kind]()


def _estimators(n, probe):
    out = {"exact, brute-force unroll": lambda: ExactSensitivityHook(n, probe),
           "exact (--probe-times all)": lambda: SampledSensitivityHook(n, probe, "all")}
    for k in KS:
        out[f"sampled K={k}" + (" (default)" if k == 16 else "")] = (lambda k=k: SampledSensitivityHook(n, probe, k))
    out["proxy H=1"] = lambda: LossSensitivityHook(n, probe, horizon=1)
    out["proxy H=8"] = lambda: LossSensitivityHook(n, probe, horizon=8)
    out["proxy H=1 next-batch"] = lambda: LossSensitivityHook(n, probe, horizon=1, probe_mode="next-batch")
    return out


def run_one(args):
    """One (setting, seed): plain training, then every estimator on the same trajectory."""
    name, seed, threads = args
    torch.set_num_threads(threads)
    _, kind, widths, tc = SETTINGS[name]
    d = _data(kind)
    y_noisy, flipped = corrupt_labels(d.y_train, d.num_classes, 0.2, mode="symmetric", seed=seed)
    ds = make_dataset(d.x_train, y_noisy, d.x_test, d.y_test, spec=f"{d.spec}-sym0.2-{seed}",
                      num_classes=d.num_classes)
    is_flipped = np.zeros(ds.n_train, bool)
    is_flipped[flipped] = True
    cfg = TrainConfig(seed=seed, **tc)
    src = ArraySource(ds.x_train, ds.y_train, torch.device("cpu"))

    def model():
        return build_model("mlp", ds.num_classes, ds.input_shape, widths=widths)

    train(model, src, TrainConfig(seed=seed, **{**tc, "epochs": 1}), progress=False)  # warm-up, untimed
    peak_rss_reset()
    t0, c0 = time.perf_counter(), time.process_time()
    res = train(model, src, cfg, progress=False)
    plain, plain_cpu = time.perf_counter() - t0, time.process_time() - c0
    rows = {"_plain": {"time": plain, "cpu": plain_cpu, "rss": peak_rss_mib(), "train_acc": res.final["train_acc"]}}
    probe = stratified_probe(ds.y_train, 2048)
    for label, make in _estimators(ds.n_train, probe).items():
        hook = make()
        peak_rss_reset()
        t0, c0 = time.perf_counter(), time.process_time()
        train(model, src, cfg, hooks=[hook], progress=False)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        v = hook.value if isinstance(hook, ExactSensitivityHook) else next(iter(hook.values().values()))
        rows[label] = {"time": wall, "cpu": cpu, "rss": peak_rss_mib(), "values": v}
    exact = rows["exact, brute-force unroll"]["values"]
    from sklearn.metrics import roc_auc_score

    for label, r in rows.items():
        if label != "_plain":
            r["spearman"] = spearman(r["values"], exact)
            r["auroc"] = float(roc_auc_score(is_flipped, r["values"]))
            r["ratio"] = r["time"] / plain
            r["cpu_ratio"] = r["cpu"] / plain_cpu
            r["extra_s"] = r["time"] - plain
            del r["values"]
    return name, seed, rows


def _fmt(vals, f="{:.3f}"):
    vals = np.asarray(vals, float)
    if len(vals) == 1:
        return f.format(vals[0])
    return f.format(vals.mean()) + " [" + f.format(vals.min()) + ", " + f.format(vals.max()) + "]"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--settings", default="digits,digits-plain,digits-30,paper,mnist1d")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--seeds-for", default="digits-30:1", help="per-setting seed counts, e.g. digits-30:1")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--save", default=None, help="JSON file rewritten after each finished (setting, seed)")
    ap.add_argument("--table-from", default=None, help="print the table of a --save file (partial runs too)")
    a = ap.parse_args()
    if a.table_from:
        with open(a.table_from) as f:
            saved = json.load(f)
        print_table(saved["header"], [tuple(r) for r in saved["results"]], saved["names"])
        return
    names = a.settings.split(",")
    counts = {k: int(v) for k, v in (p.split(":") for p in a.seeds_for.split(",") if p)}
    tasks = [(n, s, a.threads) for n in names for s in range(counts.get(n, a.seeds))]
    t0 = time.perf_counter()
    results = []

    def header():
        load = os.getloadavg()
        return [
            "# Loss-sensitivity estimators against exact mode: agreement, noise detection, cost",
            f"command: python benchmarks/unrolled_accuracy/run.py --settings {a.settings} --seeds {a.seeds} "
            f"--seeds-for '{a.seeds_for}' --jobs {a.jobs} --threads {a.threads}",
            f"machine: {platform.machine()} CPU ({cpu_model()}), {os.cpu_count()} cores "
            f"visible, torch threads {a.threads} per process, {a.jobs} process(es) at once, no GPU used; load average "
            f"{load[0]:.1f}; torch {torch.__version__}; date {datetime.date.today().isoformat()}; "
            f"{time.perf_counter() - t0:.0f} s so far",
            "every estimator sees the same SGD trajectory (same seed); labels: 20% symmetric flips (seed = run seed);",
            "probe = whole training set (N <= 2048), direct term off; 'time ratio' = wall time of training with the",
            "estimator / plain training, in the same process ('extra s' = the difference; CPU-time ratio = the same",
            "with process CPU time, which a loaded machine disturbs less); RSS = peak resident memory of that run"]

    def save():
        if a.save:
            tmp = a.save + ".tmp"
            with open(tmp, "w") as f:
                json.dump({"header": header(), "names": names, "results": results}, f)
            os.replace(tmp, a.save)

    if a.jobs > 1:
        with mp.get_context("spawn").Pool(a.jobs) as pool:
            for r in pool.imap_unordered(run_one, tasks, chunksize=1):
                results.append(r)
                save()
    else:
        for t in tasks:
            results.append(run_one(t))
            save()
    print_table(header(), results, names)


def print_table(head, results, names):
    print("\n".join(head))
    for name in names:
        runs = [r for n, _, r in results if n == name]
        if not runs:
            print(f"\n## {name}: not finished")
            continue
        desc = SETTINGS[name][0]
        print(f"\n## {name}: {desc}; {len(runs)} seed(s)")
        print(f"plain training: {_fmt([r['_plain']['time'] for r in runs], '{:.2f}')} s, train accuracy on the noisy "
              f"labels {_fmt([r['_plain']['train_acc'] for r in runs])}, peak RSS "
              f"{_fmt([r['_plain']['rss'] for r in runs], '{:.0f}')} MiB")
        print(f"{'estimator':<28}{'Spearman vs exact':>24}{'AUROC flipped':>24}{'time ratio':>22}"
              f"{'extra s':>24}{'CPU-time ratio':>22}{'peak RSS MiB':>20}")
        for label in runs[0]:
            if label == "_plain":
                continue
            keys = ("spearman", "auroc", "ratio", "extra_s", "cpu_ratio", "rss")
            col = [[r[label].get(k, np.nan) for r in runs] for k in keys]
            print(f"{label:<28}{_fmt(col[0]):>24}{_fmt(col[1]):>24}{_fmt(col[2], '{:.2f}'):>22}"
                  f"{_fmt(col[3], '{:.1f}'):>24}{_fmt(col[4], '{:.2f}'):>22}{_fmt(col[5], '{:.0f}'):>20}")


if __name__ == "__main__":
    main()
