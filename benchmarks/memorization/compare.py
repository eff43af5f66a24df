"""How well does each measure of sensprune track memorization (Feldman & Zhang 2020), the quantity they stand in for?

For every dataset × noise (clean, and ``randY:0.2``: 20% of the training labels flipped to another class, seed 0):

1. ``mem``: the memorization estimator of ``sensprune score --measures memorization``
   (:func:`sensprune.measures.memorization.estimate`) with M = 200 models on random 70% subsets, each trained by
   the fit rule (eval-mode accuracy 0.99 on its own subset, constant lr) with the epoch cap raised from the bench's
   100 to :data:`FIT_CAP` (20% flipped labels need about 140 epochs on digits, Fashion-MNIST 14x14 needs 150-230
   even clean; the lr is constant, so a higher cap changes nothing for a model that fits by 100). The models'
   in/out and correctness files stay in ``runs/<dataset>__<noise>/mem_models/`` (the estimator's work folder).
2. ``score_s0..2``: three scoring runs with sensprune's defaults (:func:`sensprune.scoring.stage.score`, what
   ``sensprune score`` runs: MLP 256-128, SGD, the default warmup of :func:`sensprune.config.default_epochs`),
   every measure of :data:`MEASURES`, seeds 0, 1, 2 on the same (noisy) labels.

Per scoring seed and measure: Spearman with mem, AUROC for the 10% most memorized examples (mem at or above its
90th-percentile value, ties included; ``sensprune.benchmark.stats.detection_metrics``, scikit-learn's
``roc_auc_score``) and, with flips, AUROC for the flipped examples; each measure as registered, higher = more
suspicious. Over the 3 seeds: mean and 95% t interval (``sensprune.benchmark.stats.mean_ci``). The CEILING: the
split-half reliability of mem itself, the Spearman between the estimates of models 0..M/2-1 and M/2..M-1, and its
Spearman-Brown correction 2r/(1+r) to all M models; beside it the AUROC of one half's mem for the other half's top
10% (the mean of both directions). With flips, mem's own AUROC for the flipped examples.

Every part is written atomically to ``OUT/runs/<dataset>__<noise>/`` when done (the mem models one by one), so a
killed run resumes where it stopped; ``OUT/results.csv`` (one row per dataset, noise, measure, seed) and
``OUT/summary.md`` are rebuilt at the end from whatever is finished.

    .venv/bin/python benchmarks/memorization/compare.py --estimate        # time one piece of each part
    .venv/bin/python benchmarks/memorization/compare.py --jobs 2          # the whole plan, resumable
    .venv/bin/python benchmarks/memorization/compare.py --quick --datasets digits --out /tmp/q   # seconds
"""

from __future__ import annotations

import argparse
import datetime
import math
import os
import platform
import subprocess
import sys
import time
from types import SimpleNamespace
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
#: dataset -> stratified training subsample (None = all); fashion-mnist is average-pooled 2x2 to 14x14
DATASETS = {"digits": None, "mnist1d": None, "fashion-mnist-14x14": 2000}
NOISES = ("none", "randY:0.2")
MEASURES = ("loss_sensitivity", "loss_sensitivity_h1", "input_grad", "loss", "el2n", "grand", "forgetting", "aum",
            "confidence", "variability")
SEEDS = (0, 1, 2)
MODELS, SUBSET, FIT_CAP = 200, 0.7, 500
#: --quick: a 200-example subsample, 8 mem models capped at 3 epochs, 2-epoch scoring runs
QUICK = {"subsample": 200, "models": 8, "cap": 3, "epochs": 2}
COLUMNS = ("dataset", "noise", "n_train", "kind", "measure", "seed", "spearman", "spearman_brown", "auroc_top10",
           "auroc_flips", "top10_size", "n_flipped", "models", "models_fit", "fit_cap", "score_epochs", "wall_s")


def load_data(name: str, noise: str, quick: bool):
    """The training set of one (dataset, noise) and its flipped mask (N,) bool (all False when clean)."""
    import torch
    import torch.nn.functional as F

    from sensprune.data import load_dataset, make_dataset
    from sensprune.data.noise import apply_corruption

    sub = QUICK["subsample"] if quick else DATASETS[name]
    if name == "fashion-mnist-14x14":
        d = load_dataset("fashion-mnist", subsample=sub)

        def pool(x):
            return F.avg_pool2d(torch.as_tensor(x)[:, None], 2)[:, 0].numpy()
        d = make_dataset(pool(d.x_train), d.y_train, pool(d.x_test[:2000]), d.y_test[:2000],
                         spec=f"{name}?subsample={sub}", num_classes=10, info={"input_range": 1.0})
    else:
        d = load_dataset(name, subsample=sub)
    flipped = np.zeros(d.n_train, bool)
    if noise != "none":
        kind, level = noise.split(":")
        d, idx = apply_corruption(d, kind, float(level), 0)
        flipped[idx] = True
    return d, flipped


def mem_config(quick: bool, jobs: int = 1, models: int | None = None):
    from sensprune.scoring.stage import ScoreConfig

    m = models or (QUICK["models"] if quick else MODELS)
    opts = {"mem_models": m, "mem_subset": SUBSET, "mem_jobs": jobs}
    return ScoreConfig(measures=("memorization",), measure_options=opts)


def score_config(spec: str, seed: int, quick: bool, epochs: int | None = None):
    from sensprune.config import TrainConfig, default_epochs
    from sensprune.scoring.stage import ScoreConfig

    e = epochs or (QUICK["epochs"] if quick else default_epochs(MEASURES))
    return ScoreConfig(dataset=spec, measures=MEASURES, train=TrainConfig(epochs=e, seed=seed))


def folder(out: Path, name: str, noise: str) -> Path:
    return out / "runs" / f"{name}__{noise.replace(':', '_')}"


def run_mem(out: Path, name: str, noise: str, quick: bool, jobs: int, progress: bool) -> None:
    """Part ``mem``: the M subset models (resumed model by model) and mem.npz / mem.json."""
    from sensprune.io import write_json, write_npz
    from sensprune.measures import memorization as mz

    f = folder(out, name, noise)
    if (f / "mem.json").is_file():
        return
    data, flipped = load_data(name, noise, quick)
    cap = QUICK["cap"] if quick else FIT_CAP
    t0 = time.perf_counter()
    values, note = mz.estimate(data, mem_config(quick, jobs), workdir=f / "mem_models", progress=progress,
                               max_epochs=cap)
    write_npz(f / "mem.npz", {**values, "flipped": flipped})
    write_json(f / "mem.json", {"wall_s": time.perf_counter() - t0, "n_train": data.n_train, "spec": data.spec,
                                "note": note})


def run_score(args) -> None:
    """Part ``score_s<seed>``: one scoring run of every measure (one torch thread) and its arrays."""
    import torch

    from sensprune.io import write_json, write_npz
    from sensprune.measures import estimator_text
    from sensprune.scoring.stage import score

    out, name, noise, seed, quick = args
    torch.set_num_threads(1)
    f = folder(out, name, noise)
    data, _ = load_data(name, noise, quick)
    cfg = score_config(data.spec, seed, quick)
    t0 = time.perf_counter()
    table = score(data, cfg, progress=False)
    f.mkdir(parents=True, exist_ok=True)
    write_npz(f / f"score_s{seed}.npz", table.scores)
    notes = table.meta.get("measure_notes", {})
    write_json(f / f"score_s{seed}.json", {
        "wall_s": time.perf_counter() - t0, "epochs": cfg.train.epochs,
        "train_acc": table.meta["history"][str(seed)][-1]["train_acc"],
        "estimators": {m: estimator_text(notes.get(m)) for m in MEASURES if estimator_text(notes.get(m))}})


def run_all(out: Path, names, quick: bool, jobs: int, progress: bool) -> None:
    import multiprocessing as mp

    import torch

    torch.set_num_threads(1)
    for name in names:
        for noise in NOISES:
            run_mem(out, name, noise, quick, jobs, progress)
    todo = [(out, n, z, s, quick) for n in names for z in NOISES for s in SEEDS
            if not (folder(out, n, z) / f"score_s{s}.json").is_file()]
    if jobs == 1 or len(todo) <= 1:
        for a in todo:
            run_score(a)
    else:
        with mp.get_context("spawn").Pool(min(jobs, len(todo))) as pool:
            for _ in pool.imap_unordered(run_score, todo):
                pass
            pool.close()
            pool.join()


def top10(mem: np.ndarray) -> np.ndarray:
    """(N,) bool: mem at or above the value of its ceil(0.1 n)-th largest finite entry (ties included)."""
    ok = np.isfinite(mem)
    k = math.ceil(0.1 * ok.sum())
    thr = np.sort(mem[ok])[::-1][k - 1]
    return ok & (mem >= thr)


def spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    ok = np.isfinite(a) & np.isfinite(b)
    return float(spearmanr(a[ok], b[ok]).statistic) if ok.sum() > 2 else float("nan")


def auroc(scores: np.ndarray, positive: np.ndarray, among: np.ndarray) -> float:
    from sensprune.benchmark.stats import detection_metrics

    pos = positive[among]
    if pos.all() or not pos.any():
        return float("nan")
    return detection_metrics(scores[among], pos)["auroc"]


def analyse(out: Path, name: str, noise: str, quick: bool) -> list[dict] | None:
    """The rows of one (dataset, noise), or None while a part is missing."""
    from sensprune.io import read_json, read_npz
    from sensprune.measures import memorization as mz
    from sensprune.measures.memorization import estimate_from

    f = folder(out, name, noise)
    parts = [f / "mem.json"] + [f / f"score_s{s}.json" for s in SEEDS]
    if not all(p.is_file() for p in parts):
        return None
    mj, arrs = read_json(f / "mem.json"), read_npz(f / "mem.npz")
    note, mem, flipped = mj["note"], arrs["memorization"], arrs["flipped"].astype(bool)
    inside, correct = mz.matrices(SimpleNamespace(n_train=len(mem)), mem_config(quick, models=note["models"]),
                                  f / "mem_models", max_epochs=note["fit_rule"]["max_epochs"])
    ok, pos, noisy = np.isfinite(mem), top10(mem), noise != "none"
    base = {"dataset": name, "noise": noise, "n_train": len(mem), "top10_size": int(pos.sum()),
            "n_flipped": int(flipped.sum()), "models": note["models"], "models_fit": note["models_fit"],
            "fit_cap": note["fit_rule"]["max_epochs"]}
    nan = float("nan")
    rows = []
    for s in SEEDS:
        sj, scores = read_json(f / f"score_s{s}.json"), read_npz(f / f"score_s{s}.npz")
        for m in MEASURES:
            v = scores[m]
            rows.append({**base, "kind": "measure", "measure": m, "seed": s, "spearman": spearman(v, mem),
                         "spearman_brown": nan, "auroc_top10": auroc(v, pos, ok),
                         "auroc_flips": auroc(v, flipped, ok) if noisy else nan, "score_epochs": sj["epochs"],
                         "wall_s": sj["wall_s"]})
    half = note["models"] // 2
    a = estimate_from(inside[:half], correct[:half])["memorization"]
    b = estimate_from(inside[half:], correct[half:])["memorization"]
    both = np.isfinite(a) & np.isfinite(b)
    r = spearman(a, b)
    cross = np.mean([auroc(a, top10(np.where(both, b, np.nan)), both),
                     auroc(b, top10(np.where(both, a, np.nan)), both)])
    rows.append({**base, "kind": "memorization", "measure": "memorization", "seed": "", "spearman": nan,
                 "spearman_brown": nan, "auroc_top10": nan, "auroc_flips": auroc(mem, flipped, ok) if noisy else nan,
                 "score_epochs": "", "wall_s": mj["wall_s"]})
    rows.append({**base, "kind": "ceiling", "measure": "memorization_split_half", "seed": "", "spearman": r,
                 "spearman_brown": 2 * r / (1 + r), "auroc_top10": float(cross), "auroc_flips": nan,
                 "score_epochs": "", "wall_s": ""})
    return rows


def interval(values) -> str:
    from sensprune.benchmark.stats import mean_ci

    m, _, n, h = mean_ci(values)
    if n == 0:
        return "—"
    return f"{m:.3f}" if n < 2 else f"{m:.3f} [{m - h:.3f}, {m + h:.3f}]"


def machine() -> str:
    import torch

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), platform.processor() or platform.machine()) \
        if Path("/proc/cpuinfo").is_file() else platform.machine()
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "none"
    return f"{os.cpu_count()} CPU cores ({cpu}), GPU: {gpu}, torch {torch.__version__}"


def commit() -> str:
    def git(*a):
        return subprocess.run(["git", *a], cwd=HERE, capture_output=True, text=True).stdout.strip()
    head = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = git("status", "--porcelain", "--", "sensprune", "benchmarks/memorization")
    return head + (" (with uncommitted changes in sensprune/ or benchmarks/memorization/)" if dirty else "")


def summary(rows: list[dict], out: Path, names, quick: bool, command: str, wall_s: float) -> str:
    from sensprune.io import read_json

    lines = ["# Which measure tracks memorization? (Feldman & Zhang 2020 subsampled estimator as the reference)", "",
             f"Made by `benchmarks/memorization/compare.py` (its docstring says how). Command: `{command}`",
             f"Machine: {machine()}. Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC. "
             f"Commit: {commit()}. This invocation: {wall_s:.0f} s."
             + (" QUICK MODE (a test, not results)." if quick else ""), "",
             "Each cell: mean [95% t interval] over scoring seeds 0, 1, 2 (sensprune's defaults); every measure as "
             "registered, higher = more suspicious. Top 10%: the examples whose mem is at or above its 90th "
             "percentile (ties included)."]
    for name in names:
        for noise in NOISES:
            f = folder(out, name, noise)
            rs = [r for r in rows if r["dataset"] == name and r["noise"] == noise]
            title = f"{name}, {'clean' if noise == 'none' else noise + ' (20% of labels flipped)'}"
            if not rs:
                lines += ["", f"## {title}", "", "Not finished yet (rerun the command to resume)."]
                continue
            r0, noisy = rs[0], noise != "none"
            ceil = next(r for r in rs if r["kind"] == "ceiling")
            memr = next(r for r in rs if r["kind"] == "memorization")
            walls = [read_json(f / f"score_s{s}.json")["wall_s"] for s in SEEDS]
            est = read_json(f / "score_s0.json").get("estimators", {})
            lines += ["", f"## {title}", "",
                      f"N = {r0['n_train']}; M = {r0['models']} models on {SUBSET:.0%} subsets, "
                      f"**{r0['models_fit']} of {r0['models']} fit** (train accuracy >= 0.99 on their subset by the "
                      f"cap of {r0['fit_cap']} epochs); top 10% = {r0['top10_size']} examples"
                      + (f"; {r0['n_flipped']} labels flipped" if noisy else "") + f". Scoring runs: "
                      f"{r0['score_epochs']} epochs. Wall time: mem {memr['wall_s']:.0f} s, scoring "
                      + " + ".join(f"{w:.0f}" for w in walls) + " s."
                      + "".join(f" {m}: {t}." for m, t in est.items()), "",
                      "| measure | Spearman with mem | AUROC, top 10% by mem | AUROC, flipped labels |",
                      "|---|---|---|---|"]
            for m in MEASURES:
                mr = [r for r in rs if r["kind"] == "measure" and r["measure"] == m]
                lines.append(f"| {m} | {interval([r['spearman'] for r in mr])} | "
                             f"{interval([r['auroc_top10'] for r in mr])} | "
                             f"{interval([r['auroc_flips'] for r in mr]) if noisy else '—'} |")
            flips = f"{memr['auroc_flips']:.3f}" if noisy else "—"
            lines.append(f"| memorization itself (all {r0['models']} models) | — | — | {flips} |")
            lines.append(f"| **CEILING**: split-half reliability of mem ({r0['models'] // 2} vs {r0['models'] // 2} "
                         f"models) | {ceil['spearman']:.3f} between halves; Spearman-Brown corrected to all "
                         f"{r0['models']}: {ceil['spearman_brown']:.3f} | {ceil['auroc_top10']:.3f} (one half's mem "
                         f"for the other half's top 10%) | — |")
    return "\n".join(lines) + "\n"


def aggregate(out: Path, names, quick: bool, command: str, wall_s: float) -> None:
    from sensprune.io import atomic_write_text, write_csv

    rows = [r for n in names for z in NOISES for r in (analyse(out, n, z, quick) or [])]
    write_csv(out / "results.csv", COLUMNS, [[r[c] for c in COLUMNS] for r in rows])
    atomic_write_text(out / "summary.md", summary(rows, out, names, quick, command, wall_s))


def estimate(names, jobs: int, models: int = 2, epochs: int = 4) -> None:
    """Time ``models`` mem models trained to fit and one ``epochs``-epoch scoring run per (dataset, noise);
    print the projected wall time of the whole plan with ``jobs`` processes (ideal scaling)."""
    import torch

    from sensprune.measures import memorization as mz
    from sensprune.scoring.stage import score

    torch.set_num_threads(1)
    full_epochs = score_config("x", 0, False).train.epochs
    print(f"{'dataset':<22}{'noise':<11}{'N':>6}{'fit':>6}{'epochs':>8}{'mem_s':>9}{'score_s':>9}  (projected, "
          f"{jobs} job(s), ideal scaling)", flush=True)
    total = 0.0
    for name in names:
        sub = 0.0
        for noise in NOISES:
            data, _ = load_data(name, noise, False)
            t0 = time.perf_counter()
            _, note = mz.estimate(data, mem_config(False, models=models), progress=False, max_epochs=FIT_CAP)
            t1 = time.perf_counter()
            score(data, score_config(data.spec, 0, False, epochs=epochs), progress=False)
            t2 = time.perf_counter()
            mem_s = (t1 - t0) * MODELS / models / jobs
            score_s = (t2 - t1) * full_epochs / epochs * len(SEEDS) / min(jobs, len(SEEDS))
            ep = np.mean([m["epochs"] for m in note["per_model"]])
            print(f"{name:<22}{noise:<11}{data.n_train:>6}{note['models_fit']:>3}/{models:<2}{ep:>8.0f}{mem_s:>9.0f}"
                  f"{score_s:>9.0f}", flush=True)
            sub += mem_s + score_s
        print(f"{name:<22}{'total':<11}{'':>20}{sub:>18.0f} s = {sub / 3600:.1f} h", flush=True)
        total += sub
    print(f"all ({', '.join(names)}): {total:.0f} s = {total / 3600:.1f} h; command: .venv/bin/python "
          f"benchmarks/memorization/compare.py --datasets {','.join(names)} --jobs {jobs}")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default=",".join(DATASETS), help=f"comma-separated, of {', '.join(DATASETS)}")
    ap.add_argument("--out", type=Path, default=HERE, help="results.csv, summary.md and runs/ go here")
    ap.add_argument("--jobs", type=int, default=1, help="processes (mem models: the estimator's --jobs; scoring "
                                                        "runs: one per process), each with one torch thread")
    ap.add_argument("--quick", action="store_true", help=f"a test: {QUICK}")
    ap.add_argument("--estimate", action="store_true", help="time one piece of each part, print the projection")
    ap.add_argument("--quiet", action="store_true", help="no progress bars")
    a = ap.parse_args(argv)
    names = [n.strip() for n in a.datasets.split(",") if n.strip()]
    bad = [n for n in names if n not in DATASETS]
    if bad or not names:
        ap.error(f"--datasets must name some of {', '.join(DATASETS)}; got {a.datasets!r}.")
    if a.jobs < 1:
        ap.error(f"--jobs must be an integer >= 1; got {a.jobs}.")
    if a.estimate:
        return estimate(names, a.jobs)
    t0 = time.perf_counter()
    a.out.mkdir(parents=True, exist_ok=True)
    run_all(a.out, names, a.quick, a.jobs, not a.quiet)
    given = sys.argv[1:] if argv is None else [str(x) for x in argv]
    command = " ".join([".venv/bin/python benchmarks/memorization/compare.py", *given])
    aggregate(a.out, names, a.quick, command, time.perf_counter() - t0)
    print(f"wrote {a.out / 'results.csv'} and {a.out / 'summary.md'}")


if __name__ == "__main__":
    main()
