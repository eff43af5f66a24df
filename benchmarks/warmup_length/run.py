"""How long should the warmup be? Each measure's AUROC for the corrupted examples against warmup length.

For every dataset × noise × seed × length: corrupt the training labels (``sensprune.data.noise``, the
bench's corruption with the seed), run the warmup that ``sensprune score`` runs (MLP 256-128, SGD lr 0.05,
momentum 0.9, weight decay 5e-4, batch 128, cosine schedule over the given epochs; the paper's
``loss_sensitivity`` with its default estimator; on Fashion-MNIST the model of the open question's grid that
fits its noisy labels, MLP 512-512 with Adam lr 1e-3 and no weight decay, since the SGD MLP never reaches the
``fit`` length there) and measure how well each score ranks the corrupted
examples first (AUROC, average precision: ``sensprune.benchmark.stats.detection_metrics``). The length
``fit`` is the bench's ``[score] budget = "fit"`` warmup: constant lr until 0.99 eval-mode accuracy on
the noisy training labels (at most 250 epochs; ``sensprune.benchmark.unit.fit_warmup_config``). Every
run records its final eval-mode training accuracy on the noisy labels.

Each run is written to ``OUT/runs/<run>.csv`` when done (atomic), so ``--resume`` skips finished runs;
``OUT/results.csv``, ``summary.csv`` (mean and 95% t interval over seeds), ``summary.md`` and
``auroc_vs_epochs.png`` are rebuilt from them (``--aggregate`` rebuilds only). ``--estimate`` times one
5-epoch warmup per dataset and prints the extrapolated wall time of the whole plan.

    .venv/bin/python benchmarks/warmup_length/run.py --estimate
    .venv/bin/python benchmarks/warmup_length/run.py --jobs 2 --resume   # appends to OUT/run.log
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATASETS = {"digits": None, "mnist1d": None, "fashion-mnist": 5000}  # name -> stratified training subsample
SGD = {"widths": [256, 128], "optimizer": "sgd", "lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4}
MODELS = {"digits": SGD, "mnist1d": SGD,   # name -> warmup model and optimizer
          "fashion-mnist": {"widths": [512, 512], "optimizer": "adam", "lr": 1e-3, "weight_decay": 0.0}}
NOISES = ("randY:0.2", "randY-asym:0.2")
LENGTHS = ("5", "10", "20", "40", "80", "160", "fit")
MEASURES = ("loss_sensitivity", "loss_sensitivity_h1", "input_grad", "loss", "el2n", "forgetting", "aum",
            "confidence", "variability")
COLUMNS = ("dataset", "noise", "seed", "length", "epochs", "schedule", "warmup_train_acc", "measure", "auroc", "ap",
           "precision_at_k", "wall_s")
FIT_THRESHOLD, FIT_CAP = 0.99, 250


def measures_for(dataset: str) -> list[str]:
    """MEASURES less the one-step proxy where the warmup's optimizer is not SGD (the proxy unrolls SGD updates
    only; the paper's full-horizon measure replays Adam)."""
    sgd = MODELS[dataset]["optimizer"] == "sgd"
    return [m for m in MEASURES if sgd or m != "loss_sensitivity_h1"]


def bench_config(dataset: str, epochs: int):
    from sensprune.benchmark.config import config_from_dict

    sub, model = DATASETS[dataset], MODELS[dataset]
    optim = {k: v for k, v in model.items() if k != "widths"}
    return config_from_dict({
        "grid": {"datasets": [dataset], "measures": measures_for(dataset)},
        "data": {} if sub is None else {"subsample": sub},
        "train": {"epochs": epochs, "batch_size": 128, **optim, "schedule": "cosine", "device": "cpu"},
        "score": {"model": "mlp", "widths": model["widths"], "epochs": epochs},
        "bench": {"fit_threshold": FIT_THRESHOLD, "max_epochs": FIT_CAP, "fit_schedule": "constant"}})


def run_key(dataset: str, noise: str, seed: int, length: str) -> str:
    return f"{dataset}__{noise.replace(':', '_')}__s{seed}__e{length}"


def one_run(args) -> list[dict]:
    """Warmup + detection for one (dataset, noise, seed, length); one row per measure."""
    import warnings

    import torch

    from sensprune.benchmark.config import parse_corruption
    from sensprune.benchmark.stats import detection_metrics
    from sensprune.benchmark.unit import fit_warmup_config, load_unit_data, score_config
    from sensprune.data.noise import apply_corruption
    from sensprune.scoring.stage import score

    dataset, noise, seed, length = args
    torch.set_num_threads(1)
    cfg = bench_config(dataset, 5 if length == "fit" else int(length))
    kind, level = parse_corruption(noise)
    data, idx = apply_corruption(load_unit_data(cfg, dataset), kind, level, seed)
    corrupted = np.zeros(data.n_train, bool)
    corrupted[idx] = True
    t0 = time.perf_counter()
    scfg = score_config(cfg, dataset, seed)
    if length == "fit":
        scfg = fit_warmup_config(cfg, data, scfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        table = score(data, scfg, progress=False)
    wall = time.perf_counter() - t0
    acc = float(np.mean(table.predicted == data.y_train))
    rows = []
    for m in measures_for(dataset):
        det = detection_metrics(table.get(m), corrupted)
        rows.append({"dataset": dataset, "noise": noise, "seed": seed, "length": length,
                     "epochs": scfg.train.epochs, "schedule": scfg.train.schedule, "warmup_train_acc": round(acc, 6),
                     "measure": m, "auroc": round(det["auroc"], 6), "ap": round(det["ap"], 6),
                     "precision_at_k": round(det["precision_at_k"], 6), "wall_s": round(wall, 2)})
    return rows


def _run_and_write(args) -> str:
    from sensprune.io import write_csv

    out = args[-1]
    rows = one_run(args[:-1])
    write_csv(out / "runs" / f"{run_key(*args[:-1])}.csv", COLUMNS, ([r[c] for c in COLUMNS] for r in rows))
    return run_key(*args[:-1])


def planned_epochs(length: str) -> int:
    """Epochs a run of ``length`` is charged when planning: its length, or 150 for ``fit`` (a guess, stated)."""
    return 150 if length == "fit" else int(length)


def plan(datasets, noises, seeds, lengths) -> list[tuple]:
    """Seed-major, longest first within a seed: a run stopped part way leaves whole curves for its first seeds."""
    return [(d, n, s, L) for s in range(seeds) for d in datasets for n in noises
            for L in sorted(lengths, key=planned_epochs, reverse=True)]


def run_key_of(row: dict) -> str:
    return run_key(row["dataset"], row["noise"], row["seed"], row["length"])


def aggregate(out: Path, runs: list[tuple]) -> None:
    """Rebuild results.csv, summary.csv/.md and the plot from every finished run in ``out/runs`` (earlier
    invocations' datasets included, not only this one's plan)."""
    from sensprune.benchmark.stats import mean_ci
    from sensprune.io import atomic_write_text, write_csv

    rows = []
    order = {(d, n, L): k for k, (d, n, L) in enumerate((d, n, L) for d in DATASETS for n in NOISES for L in LENGTHS)}
    for path in (out / "runs").glob("*.csv"):
        with open(path, newline="", encoding="utf-8") as fh:
            rows += list(csv.DictReader(fh))
    rows.sort(key=lambda r: (order.get((r["dataset"], r["noise"], r["length"]), len(order)), int(r["seed"]),
                             MEASURES.index(r["measure"]) if r["measure"] in MEASURES else len(MEASURES)))
    write_csv(out / "results.csv", COLUMNS, ([r[c] for c in COLUMNS] for r in rows))
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault((r["dataset"], r["noise"], r["length"], r["measure"]), []).append(r)
    summ = []
    for (d, n, L, m), rs in groups.items():
        mean, sd, k, half = mean_ci(float(r["auroc"]) for r in rs)
        summ.append({"dataset": d, "noise": n, "length": L, "measure": m, "n": k, "auroc_mean": round(mean, 4),
                     "auroc_ci95": round(half, 4) if np.isfinite(half) else "",
                     "epochs_mean": round(float(np.mean([float(r["epochs"]) for r in rs])), 1),
                     "warmup_train_acc_mean": round(float(np.mean([float(r["warmup_train_acc"]) for r in rs])), 4)})
    cols = ("dataset", "noise", "length", "measure", "n", "auroc_mean", "auroc_ci95", "epochs_mean",
            "warmup_train_acc_mean")
    write_csv(out / "summary.csv", cols, ([r[c] for c in cols] for r in summ))
    atomic_write_text(out / "summary.md", summary_md(summ))
    if summ:
        plot(out / "auroc_vs_epochs.png", summ)
    mine = sum((out / "runs" / f"{run_key(*r)}.csv").exists() for r in runs)
    done = len(set(map(run_key_of, rows)))
    print(f"{mine} of this plan's {len(runs)} runs done, {done} in all; {out / 'summary.md'}")


def summary_md(summ: list[dict]) -> str:
    """Per dataset × noise: a table measure × length of mean AUROC (± 95% half-width over seeds)."""
    lines = ["# AUROC for the corrupted examples against warmup length (mean ± 95% t half-width over seeds)", "",
             "Made by `run.py` from `runs/*.csv` (command, machine and date in `run.log`). Column `fit`: trained until "
             f"{FIT_THRESHOLD} eval-mode accuracy on the noisy labels (constant lr, at most {FIT_CAP} epochs); its "
             "epochs and every length's final training accuracy on the noisy labels are in the last two rows.", ""]
    for d in dict.fromkeys(r["dataset"] for r in summ):
        for n in dict.fromkeys(r["noise"] for r in summ if r["dataset"] == d):
            rs = [r for r in summ if r["dataset"] == d and r["noise"] == n]
            lengths = [L for L in LENGTHS if any(r["length"] == L for r in rs)]
            spec = MODELS.get(d)
            model = "" if spec is None else (f"Warmup model: MLP {'-'.join(map(str, spec['widths']))}, "
                                             f"{spec['optimizer']} lr {spec['lr']:g}, weight decay "
                                             f"{spec['weight_decay']:g}, batch 128.")
            lines += [f"## {d}, {n}", "", model, "", "| measure | " + " | ".join(lengths) + " |",
                      "|---|" + "---|" * len(lengths)]
            for m in (m for m in MEASURES if any(r["measure"] == m for r in rs)):
                cells = []
                for L in lengths:
                    r = next((r for r in rs if r["measure"] == m and r["length"] == L), None)
                    cells.append("" if r is None else f"{r['auroc_mean']:.3f}" + (
                        f" ± {r['auroc_ci95']:.3f}" if r["auroc_ci95"] != "" else "") + f" (n={r['n']})")
                lines.append(f"| {m} | " + " | ".join(cells) + " |")
            first = {L: next(r for r in rs if r["length"] == L) for L in lengths}
            lines.append("| epochs | " + " | ".join(f"{first[L]['epochs_mean']:g}" for L in lengths) + " |")
            lines.append("| train acc (noisy labels) | " + " | ".join(
                f"{first[L]['warmup_train_acc_mean']:.3f}" for L in lengths) + " |")
            lines.append("")
    return "\n".join(lines)


def plot(path: Path, summ: list[dict]) -> None:
    from matplotlib.figure import Figure

    from sensprune.io import atomic_write_bytes

    panels = list(dict.fromkeys((r["dataset"], r["noise"]) for r in summ))
    fig = Figure(figsize=(4.2 * len(panels), 3.6), layout="constrained")
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (d, n) in zip(axes, panels):
        for m in MEASURES:
            rs = sorted((r for r in summ if r["dataset"] == d and r["noise"] == n and r["measure"] == m),
                        key=lambda r: r["epochs_mean"])
            if rs:
                ax.plot([r["epochs_mean"] for r in rs], [r["auroc_mean"] for r in rs], marker="o", ms=3, label=m)
        ax.set(xscale="log", xlabel="warmup epochs (mean; the fit run at its own length)", ylabel="AUROC",
               title=f"{d}, {n}")
    axes[-1].legend(fontsize=7, loc="lower right")
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110)
    atomic_write_bytes(path, buf.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    ap.add_argument("--noises", nargs="+", default=list(NOISES))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--lengths", nargs="+", default=list(LENGTHS))
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--resume", action="store_true", help="skip runs whose file exists")
    ap.add_argument("--aggregate", action="store_true", help="only rebuild results/summary from runs/")
    ap.add_argument("--estimate", action="store_true", help="time a 5-epoch warmup per dataset and extrapolate")
    a = ap.parse_args()
    runs = plan(a.datasets, a.noises, a.seeds, a.lengths)
    if a.aggregate:
        return aggregate(a.out, runs)
    if a.estimate:
        return estimate(a, runs)
    todo = [r for r in runs if not (a.out / "runs" / f"{run_key(*r)}.csv").exists()]
    if not a.resume and len(todo) < len(runs):
        sys.exit(f"Error: {a.out / 'runs'} holds finished runs; pass --resume to continue.")
    cpu = next((ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name")), "?")
    with open(a.out / "run.log", "a", encoding="utf-8") as log:
        log.write(f"{time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())} start: {' '.join(sys.argv)}; "
                  f"{platform.machine()}, {os.cpu_count()} cores ({cpu}), no GPU; {len(todo)} of {len(runs)} runs "
                  f"to do; load average {os.getloadavg()[0]:.1f}\n")
    t0 = time.time()
    import multiprocessing as mp

    with mp.get_context("spawn").Pool(a.jobs) as pool:
        for k, key in enumerate(pool.imap_unordered(_run_and_write, [(*r, a.out) for r in todo]), 1):
            print(f"[{k}/{len(todo)}] {key} ({time.time() - t0:.0f} s)", flush=True)
    with open(a.out / "run.log", "a", encoding="utf-8") as log:
        log.write(f"{time.strftime('%Y-%m-%dT%H:%MZ', time.gmtime())} done: {len(todo)} runs in "
                  f"{time.time() - t0:.0f} s wall\n")
    aggregate(a.out, runs)


def estimate(a, runs) -> None:
    """Time one 5-epoch warmup per dataset; charge every run at its epochs (fit: 150, a guess stated)."""
    total = 0.0
    for d in a.datasets:
        t0 = time.perf_counter()
        one_run((d, a.noises[0], 0, "5"))
        per_epoch = (time.perf_counter() - t0) / 5
        epochs = sum(planned_epochs(r[3]) for r in runs if r[0] == d)
        total += per_epoch * epochs
        print(f"{d}: {per_epoch:.2f} s per warmup epoch (incl. data and setup) x {epochs} epochs = "
              f"{per_epoch * epochs / 3600:.2f} h of CPU (the fit runs charged 150 epochs each)")
    print(f"total {total / 3600:.2f} h of CPU; with --jobs {a.jobs}: about {total / a.jobs / 3600:.2f} h wall")


if __name__ == "__main__":
    main()
