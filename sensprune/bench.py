"""Stage 3 — bench: does pruning by a measure help? A grid of paired retrains.

The grid is planned as a deterministic list of *units* ``(dataset, corruption, seed)``. One unit:

1. loads the dataset, corrupts its training split with the unit seed (the test split stays clean);
2. runs one warmup (:func:`sensprune.score.score`, seed = unit seed) on the corrupted training
   set for the grid's measures, plus the ``cv_confidence`` baseline (K-fold out-of-sample
   probability of the given label; cleanlab's confident-learning input) when asked for or when
   noise is injected;
3. measures how well each score detects the corrupted examples (AUROC, AP, precision@k);
4. retrains from scratch, with seed = unit seed (so every selection shares init and batch order:
   a mask over the shared permutation — the differences are paired), the ``full`` set, the
   ``oracle`` (corrupted examples removed), and for each fraction ``random`` and every
   measure × rule, then evaluates on the clean test set.

A unit's rows go atomically to ``DIR/units/<key>.csv`` (and ``<key>.detection.csv``) when it is
done, so ``resume`` skips finished units; ``jobs`` runs units in worker processes; ``shard=(i, n)``
runs ``units[i::n]``. ``DIR/results.csv`` etc. are rebuilt from the unit files in plan order, so
they do not depend on jobs, shards or interruptions (only ``wall_time_s`` does).
"""

from __future__ import annotations

import re
import shutil
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from sensprune.config import BenchConfig, config_from_json, parse_corruption
from sensprune.errors import SensPruneError, ValidationError
from sensprune.io import read_json, write_csv, write_json

RESULT_COLUMNS = ("dataset", "corruption", "seed", "measure", "rule", "fraction", "status", "n_total", "n_train",
                  "n_corrupted", "n_corrupted_kept", "test_acc", "test_loss", "train_acc", "gen_gap", "epochs",
                  "wall_time_s", "message")
DETECTION_COLUMNS = ("dataset", "corruption", "seed", "measure", "n_total", "k", "auroc", "ap",
                     "precision_at_k", "status", "message", "roc_tpr")
CONFIG_JSON = "config.json"


@dataclass(frozen=True)
class Unit:
    """One warmup and all its retrains: a (dataset, corruption, seed) triple."""

    dataset: str
    corruption: str
    seed: int

    @property
    def key(self) -> str:
        return re.sub(r"[^A-Za-z0-9._=+-]", "_", f"{self.dataset}__{self.corruption}__s{self.seed}")


def plan_units(cfg: BenchConfig) -> list[Unit]:
    """All units of the grid, in the fixed order datasets × corruptions × seeds."""
    g = cfg.grid
    units = [Unit(d, c, s) for d in g.datasets for c in g.corruptions for s in g.seeds]
    if len({u.key for u in units}) != len(units):
        raise ValidationError("Two [grid] datasets differ only in punctuation and would share unit files; "
                              "rename one.")
    return units


def plan_retrains(cfg: BenchConfig, unit: Unit) -> list[tuple[str, str, float]]:
    """(measure, rule, fraction) of every retrain of ``unit``, in row order.

    ``full`` (rule ``none``, fraction 0), ``oracle`` (fraction = the noise level) when noise is
    injected, then per fraction ``random`` once and each measure × rule.
    """
    kind, level = parse_corruption(unit.corruption)
    out = [("full", "none", 0.0)]
    if kind != "none":
        out.append(("oracle", "oracle", level))
    for f in cfg.grid.fractions:
        out.append(("random", "random", float(f)))
        out += [(m, r, float(f)) for m in cfg.grid.measures if m != "random" for r in cfg.grid.rules]
    return out


# -- data ------------------------------------------------------------------------------------------------

_DATA_CACHE: dict[tuple, Any] = {}


def load_unit_data(cfg: BenchConfig, spec: str):
    """The clean dataset of ``spec`` with the grid's subsample (cached per process)."""
    from sensprune.data import load_dataset

    key = (spec, cfg.data.subsample, cfg.data.subsample_seed, cfg.data.data_root)
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = load_dataset(spec, data_root=cfg.data.data_root, subsample=cfg.data.subsample,
                                        seed=cfg.data.subsample_seed)
    return _DATA_CACHE[key]


def preflight(cfg: BenchConfig) -> None:
    """Checks before any training: every dataset loads and the model builds on it."""
    from sensprune.score import validate

    for spec in cfg.grid.datasets:
        try:
            data = load_unit_data(cfg, spec)
        except SensPruneError:
            raise
        except Exception as exc:
            raise ValidationError(f"Dataset {spec!r} failed to load: {type(exc).__name__}: {exc}") from None
        for c in cfg.grid.corruptions:
            kind, level = parse_corruption(c)
            if kind != "none" and round(level * data.n_train) < 1:
                raise ValidationError(f"Corruption {c!r} corrupts no example of {spec!r} ({data.n_train} examples).")
        validate(data, _score_config(cfg, spec, 0))


def _score_config(cfg: BenchConfig, spec: str, seed: int):
    from sensprune.score import ScoreConfig

    s = cfg.score
    warm = replace(cfg.train, seed=seed, epochs=s.epochs or cfg.train.epochs)
    measures = cfg.score_measures or ("loss",)
    return ScoreConfig(dataset=spec, model=s.model, widths=tuple(s.widths), dropout=s.dropout,
                       measures=measures, seeds=1, el2n_epoch=s.el2n_epoch, train=warm,
                       measure_options=dict(s.measure_options))


# -- one unit --------------------------------------------------------------------------------------------

def run_unit(cfg: BenchConfig, unit: Unit, *, on_retrain: Callable[[], None] | None = None,
             progress: bool = False) -> tuple[list[dict], list[dict]]:
    """Run one unit; returns (result rows, detection rows). Failures become rows with status=failed."""
    import torch
    from threadpoolctl import threadpool_limits

    threads = torch.get_num_threads()
    torch.set_num_threads(cfg.bench.threads)
    try:
        with threadpool_limits(cfg.bench.threads):
            return _run_unit(cfg, unit, on_retrain or (lambda: None), progress)
    finally:
        torch.set_num_threads(threads)


def _failed(unit: Unit, measure, rule, fraction, exc: BaseException, n_total: Any = "") -> dict:
    msg = f"{type(exc).__name__}: {exc}" if not isinstance(exc, SensPruneError) else str(exc)
    return {"dataset": unit.dataset, "corruption": unit.corruption, "seed": unit.seed, "measure": measure,
            "rule": rule, "fraction": fraction, "status": "failed", "n_total": n_total,
            "message": " ".join(msg.split())[:500]}


def _run_unit(cfg, unit, tick, progress):
    from sensprune.data.noise import apply_corruption
    from sensprune.prune import keep_mask
    from sensprune.score import model_builder, score
    from sensprune.stats import cv_confidence, detection_metrics
    from sensprune.train import ArraySource, evaluate, resolve_device, train

    plan = plan_retrains(cfg, unit)
    kind, level = parse_corruption(unit.corruption)
    try:
        data, corrupted_idx = apply_corruption(load_unit_data(cfg, unit.dataset), kind, level, unit.seed)
    except Exception as exc:  # a dataset that fails mid-grid: every cell of the unit fails, the grid goes on
        rows = []
        for m, r, f in plan:
            rows.append(_failed(unit, m, r, f, exc))
            tick()
        return rows, []
    n = data.n_train
    corrupted = np.zeros(n, bool)
    corrupted[corrupted_idx] = True
    scores: dict[str, np.ndarray] = {}
    errors: dict[str, BaseException] = {}
    scfg = _score_config(cfg, unit.dataset, unit.seed)
    if cfg.score_measures:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN Gini rows of early epochs
                table = score(data, scfg, progress=progress)
            scores.update({m: table.scores[m] for m in cfg.score_measures})
        except Exception as exc:
            errors.update(dict.fromkeys(cfg.score_measures, exc))
    if "cv_confidence" in cfg.grid.measures or kind != "none":
        try:
            scores["cv_confidence"] = cv_confidence(data.x_train, data.y_train, folds=cfg.bench.cv_folds,
                                                    seed=unit.seed)
        except Exception as exc:
            errors["cv_confidence"] = exc
    det = []
    if kind != "none":
        rng = np.random.default_rng(unit.seed)
        det_scores = {**scores, "random": rng.random(n)}
        for m in [*cfg.grid.measures, *(["cv_confidence"] if "cv_confidence" not in cfg.grid.measures else [])]:
            base = {"dataset": unit.dataset, "corruption": unit.corruption, "seed": unit.seed, "measure": m,
                    "n_total": n}
            if m in errors:
                det.append({**base, "status": "failed", "message": str(errors[m])[:500]})
                continue
            det.append({**base, **detection_metrics(det_scores[m], corrupted), "status": "ok", "message": ""})

    device = resolve_device(cfg.train.device)
    tcfg = replace(cfg.train, seed=unit.seed)
    build = model_builder(data, scfg)
    train_src = ArraySource(data.x_train, data.y_train, device)
    test_src = ArraySource(data.x_test, data.y_test, device)
    rows = []
    for measure, rule, fraction in plan:
        t0 = time.perf_counter()
        try:
            if measure in errors:
                raise errors[measure]
            if measure == "full":
                mask = np.ones(n, bool)
            elif measure == "oracle":
                mask = ~corrupted
            elif measure == "random":
                mask = keep_mask(np.zeros(n), "random", fraction=fraction, labels=data.y_train, seed=unit.seed)
            else:
                mask = _rule_mask(cfg, scores[measure], rule, fraction, data.y_train, unit.seed)
            run_cfg = tcfg
            if cfg.bench.budget == "steps":
                run_cfg = replace(tcfg, epochs=max(1, round(tcfg.epochs * n / int(mask.sum()))))
            res = train(build, train_src, run_cfg, mask=mask, progress=False)
            te = evaluate(res.model, test_src, tcfg.eval_batch_size)
            tr = evaluate(res.model, ArraySource(data.x_train[mask], data.y_train[mask], device),
                          tcfg.eval_batch_size)
            rows.append({"dataset": unit.dataset, "corruption": unit.corruption, "seed": unit.seed,
                         "measure": measure, "rule": rule, "fraction": fraction, "status": "ok", "n_total": n,
                         "n_train": int(mask.sum()), "n_corrupted": int(corrupted.sum()),
                         "n_corrupted_kept": int((mask & corrupted).sum()), "test_acc": te["acc"],
                         "test_loss": te["loss"], "train_acc": tr["acc"], "gen_gap": tr["acc"] - te["acc"],
                         "epochs": len(res.history), "wall_time_s": round(time.perf_counter() - t0, 3),
                         "message": ""})
        except Exception as exc:
            rows.append(_failed(unit, measure, rule, fraction, exc, n))
        tick()
    return rows, det


def _rule_mask(cfg, s, rule, fraction, labels, seed):
    from sensprune.prune import keep_mask

    b = cfg.bench
    kw = {"labels": labels, "per_class": b.per_class, "min_per_class": b.min_per_class, "seed": seed}
    if rule == "stratified":
        kw.update(beta=b.beta, bins=b.bins)
    return keep_mask(s, rule, fraction=fraction, **kw)


# -- the grid --------------------------------------------------------------------------------------------

def unit_paths(out: Path, unit: Unit) -> tuple[Path, Path]:
    """The unit's result file (its presence = unit done) and detection file."""
    return out / "units" / f"{unit.key}.csv", out / "units" / f"{unit.key}.detection.csv"


def _run_and_write(args) -> int:
    cfg, unit, out = args
    rows, det = run_unit(cfg, unit)
    _write_unit(out, unit, rows, det)
    return len(rows)


def _write_unit(out: Path, unit: Unit, rows: list[dict], det: list[dict]) -> None:
    res_path, det_path = unit_paths(out, unit)
    write_csv(det_path, DETECTION_COLUMNS, ([r.get(c, "") for c in DETECTION_COLUMNS] for r in det))
    write_csv(res_path, RESULT_COLUMNS, ([r.get(c, "") for c in RESULT_COLUMNS] for r in rows))


def prepare_dir(cfg: BenchConfig, out: Path, *, resume: bool, force: bool) -> None:
    """Create ``out`` with ``config.json``; an existing grid needs ``resume`` (same config) or ``force``."""
    path = out / CONFIG_JSON
    if path.exists():
        if force:
            shutil.rmtree(out)
        elif not resume:
            raise ValidationError(f"{out} already holds a bench grid; pass --resume to continue it or --force "
                                  "to start over.")
        else:
            # resolve the stored config, so keys added with defaults since it was written compare equal
            have = config_from_json(read_json(path)).to_dict()
            if have != cfg.to_dict():
                from sensprune.score import _diff_keys

                raise ValidationError(f"Cannot resume {out}: it was run with another config (differs in: "
                                      f"{', '.join(_diff_keys(have, cfg.to_dict()))}); pass --force to start over.")
    elif out.exists() and any(out.iterdir()) and not force:
        raise ValidationError(f"{out} exists and is not a bench folder; choose another --out or pass --force.")
    out.mkdir(parents=True, exist_ok=True)
    write_json(path, cfg.to_dict())


def run_grid(cfg: BenchConfig, out: str | Path, *, jobs: int = 1, shard: tuple[int, int] = (0, 1),
             resume: bool = False, force: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run (the shard ``i/n`` of) the grid into ``out`` and write the aggregate files.

    Returns the dict of :func:`sensprune.stats.aggregate` (paths and counts).
    """
    from tqdm.auto import tqdm

    from sensprune.stats import aggregate

    out = Path(out)
    i, n = shard
    if not (isinstance(n, int) and n >= 1 and isinstance(i, int) and 0 <= i < n):
        raise ValidationError(f"--shard must be i/n with 0 <= i < n; got {i}/{n}.")
    if not isinstance(jobs, int) or jobs < 1:
        raise ValidationError(f"--jobs must be an integer >= 1; got {jobs!r}.")
    units = plan_units(cfg)[i::n]
    preflight(cfg)
    prepare_dir(cfg, out, resume=resume, force=force)
    write_json(out / "shard.json", {"shard": [i, n], "units": [u.key for u in units]})
    todo = [u for u in units if not unit_paths(out, u)[0].exists()]
    total = sum(len(plan_retrains(cfg, u)) for u in todo)
    bar = tqdm(total=total, desc="bench retrains", disable=not progress, dynamic_ncols=True)
    _exit_on_sigterm()  # so a killed grid also stops its worker processes (finished units stay)
    try:
        if jobs == 1 or len(todo) <= 1:
            for u in todo:
                rows, det = run_unit(cfg, u, on_retrain=lambda: bar.update(1))
                _write_unit(out, u, rows, det)
        else:
            import multiprocessing as mp
            import threading

            tqdm.set_lock(threading.RLock())  # tqdm's default multiprocessing lock leaks a semaphore under spawn
            with mp.get_context("spawn").Pool(min(jobs, len(todo))) as pool:
                for k in pool.imap_unordered(_run_and_write, [(cfg, u, out) for u in todo]):
                    bar.update(k)
    finally:
        bar.close()
    return aggregate(cfg, out, units)


def _exit_on_sigterm() -> None:
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit(143)))


def merge(dirs: Sequence[str | Path], out: str | Path, *, force: bool = False) -> dict[str, Any]:
    """Join shard folders (same config) into ``out`` and recompute the aggregate files over the full plan."""
    from sensprune.stats import aggregate

    dirs, out = [Path(d) for d in dirs], Path(out)
    if not dirs:
        raise ValidationError("bench-merge needs at least one shard folder.")
    configs = []
    for d in dirs:
        if not (d / CONFIG_JSON).exists():
            raise ValidationError(f"{d} is not a bench folder (no {CONFIG_JSON}).")
        configs.append(config_from_json(read_json(d / CONFIG_JSON)).to_dict())
    for d, c in zip(dirs[1:], configs[1:]):
        if c != configs[0]:
            raise ValidationError(f"{d} was run with another config than {dirs[0]}; only shards of one grid merge.")
    cfg = config_from_json(configs[0])
    if out.resolve() not in [d.resolve() for d in dirs]:
        prepare_dir(cfg, out, resume=True, force=force)
    for d in dirs:
        for f in sorted((d / "units").glob("*.csv")) if (d / "units").is_dir() else []:
            dest = out / "units" / f.name
            if dest.resolve() != f.resolve():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, dest)
    return aggregate(cfg, out, plan_units(cfg))
