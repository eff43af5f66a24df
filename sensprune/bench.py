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
   measure × rule, then evaluates on the clean test set. A *reweighting arm* (rule
   ``reweight:inverse-rank``, ``reweight:softmax`` or ``reweight:clip``) keeps every example and
   trains with the per-example loss weights of ``sensprune prune --reweight``
   (:func:`sensprune.prune.reweight`); it is compared with ``full``.

Budgets (``[bench] budget``): ``epochs`` (every retrain runs ``train.epochs``), ``steps`` (a pruned
retrain runs about as many SGD steps as the full one) or ``fit`` (train until the eval-mode accuracy
on the retrain's own, possibly noisy, training examples reaches ``fit_threshold``, or ``max_epochs``,
with the learning-rate schedule ``fit_schedule``: constant by default, cosine/step span ``max_epochs``).
``results.csv`` records the budget, the epochs used and, under ``fit``, whether the threshold was reached.

A unit's rows go atomically to ``DIR/units/<key>.csv`` (and ``<key>.detection.csv``) when it is
done, so ``resume`` skips finished units; ``jobs`` runs units in worker processes; ``shard=(i, n)``
runs ``units[i::n]``. ``DIR/results.csv`` etc. are rebuilt from the unit files in plan order, so
they do not depend on jobs, shards or interruptions (only ``wall_time_s`` does).
"""

from __future__ import annotations

import csv
import re
import shutil
import time
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from sensprune.config import REWEIGHT_PREFIX, BenchConfig, config_from_json, parse_corruption
from sensprune.errors import SensPruneError, ValidationError
from sensprune.io import (atomic_write_text, base_meta, check_not_input, diff_keys, is_artifact, publish_dir, read_json,
                          read_npz, staging_dir, write_csv, write_json, write_npz)

RESULT_COLUMNS = ("dataset", "corruption", "seed", "measure", "rule", "fraction", "status", "n_total", "n_train",
                  "n_corrupted", "n_corrupted_kept", "test_acc", "test_loss", "train_acc", "gen_gap", "epochs",
                  "budget", "fit_reached", "wall_time_s", "message")
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
    injected, the reweighting arms that take no fraction (``reweight:inverse-rank``,
    ``reweight:softmax``; fraction 0) per measure, then per fraction ``random`` once and each
    measure × rule (``reweight:clip`` takes the fraction down-weighted).
    """
    kind, level = parse_corruption(unit.corruption)
    out = [("full", "none", 0.0)]
    if kind != "none":
        out.append(("oracle", "oracle", level))
    arms = [m for m in cfg.grid.measures if m != "random"]
    once = [r for r in cfg.grid.rules if r.startswith(REWEIGHT_PREFIX) and not _takes_fraction(r)]
    per_f = [r for r in cfg.grid.rules if r not in once]
    out += [(m, r, 0.0) for r in once for m in arms]
    for f in cfg.grid.fractions:
        out.append(("random", "random", float(f)))
        out += [(m, r, float(f)) for m in arms for r in per_f]
    return out


def _takes_fraction(rule: str) -> bool:
    return not rule.startswith(REWEIGHT_PREFIX) or rule == REWEIGHT_PREFIX + "clip"


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
        validate(data, score_config(cfg, spec, 0))


def score_config(cfg: BenchConfig, spec: str, seed: int):
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
    from sensprune.train import ArraySource, resolve_device

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
    scfg = score_config(cfg, unit.dataset, unit.seed)
    want_cv = "cv_confidence" in cfg.grid.measures or kind != "none"
    cache = warmup_cache_path(cfg, unit, data, scfg, want_cv)
    if cache is not None and cache.exists():
        scores.update(read_npz(cache))
    else:
        if cfg.score_measures:
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN Gini rows of early epochs
                    table = score(data, scfg, progress=progress)
                scores.update({m: table.get(m) for m in cfg.score_measures})
            except Exception as exc:
                errors.update(dict.fromkeys(cfg.score_measures, exc))
        if want_cv:
            try:
                scores["cv_confidence"] = cv_confidence(data.x_train, data.y_train, folds=cfg.bench.cv_folds,
                                                        seed=unit.seed)
            except Exception as exc:
                errors["cv_confidence"] = exc
        if cache is not None and not errors:
            write_npz(cache, scores)
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
    build = model_builder(data, scfg)
    train_src = ArraySource(data.x_train, data.y_train, device)
    test_src = ArraySource(data.x_test, data.y_test, device)
    rows = []
    for measure, rule, fraction in plan:
        t0 = time.perf_counter()
        try:
            if measure in errors:
                raise errors[measure]
            weights = None
            if measure == "full":
                mask = np.ones(n, bool)
            elif measure == "oracle":
                mask = ~corrupted
            elif measure == "random":
                mask = keep_mask(np.zeros(n), "random", fraction=fraction, labels=data.y_train, seed=unit.seed)
            elif rule.startswith(REWEIGHT_PREFIX):
                mask = np.ones(n, bool)
                weights = reweight_weights(cfg, scores[measure], rule, fraction, data.y_train)
            else:
                mask = _rule_mask(cfg, scores[measure], rule, fraction, data.y_train, unit.seed)
            res = retrain(cfg, unit.seed, build, train_src, test_src, data, mask, weights)
            rows.append({"dataset": unit.dataset, "corruption": unit.corruption, "seed": unit.seed,
                         "measure": measure, "rule": rule, "fraction": fraction, "status": "ok", "n_total": n,
                         "n_corrupted": int(corrupted.sum()), "n_corrupted_kept": int((mask & corrupted).sum()),
                         **res, "wall_time_s": round(time.perf_counter() - t0, 3), "message": ""})
        except Exception as exc:
            rows.append(_failed(unit, measure, rule, fraction, exc, n))
        tick()
    return rows, det


def warmup_cache_path(cfg: BenchConfig, unit: Unit, data, scfg, with_cv: bool) -> Path | None:
    """Where the unit's warmup scores are cached (``[bench] warmup_cache``), or None without a cache.

    The file name carries a fingerprint of everything the scores depend on: the corrupted training
    arrays, the resolved warmup config (measures, model, training, seed, measure options) and the
    cv_confidence settings, so a grid with another budget but the same warmup reuses it.
    """
    if not cfg.bench.warmup_cache:
        return None
    import json

    from sensprune.io import fingerprint_arrays

    extra = json.dumps({"score": scfg.to_dict(), "cv": [with_cv, cfg.bench.cv_folds, unit.seed]}, sort_keys=True)
    key = fingerprint_arrays(data.x_train, data.y_train, extra=extra)
    return Path(cfg.bench.warmup_cache) / f"{unit.key}__{key}.npz"


def retrain(cfg: BenchConfig, seed: int, build, train_src, test_src, data, mask: np.ndarray,
            weights: np.ndarray | None = None) -> dict[str, Any]:
    """One retrain from scratch on ``mask`` (N,) bool with optional loss ``weights`` (N,), under the
    grid's budget; returns the result-row fields n_train, test/train accuracy, epochs, budget, fit_reached.

    ``train_acc`` is the eval-mode accuracy on the retrain's own training examples (the kept ones,
    with their possibly noisy labels); under ``budget = "fit"`` training stops at the end of the
    first epoch where it reaches ``fit_threshold`` (or at ``max_epochs``).
    """
    from sensprune.train import ArraySource, evaluate, train

    b, tcfg = cfg.bench, replace(cfg.train, seed=seed)
    kept = ArraySource(data.x_train[mask], data.y_train[mask], train_src.y.device)
    stop = None
    if b.budget == "steps":
        tcfg = replace(tcfg, epochs=max(1, round(tcfg.epochs * len(mask) / int(mask.sum()))))
    elif b.budget == "fit":
        tcfg = replace(tcfg, epochs=b.max_epochs, schedule=b.fit_schedule)
        stop = fit_stop(kept, b.fit_threshold, tcfg.eval_batch_size)
    res = train(build, train_src, tcfg, mask=mask, weights=weights, stop=stop, progress=False)
    te = evaluate(res.model, test_src, tcfg.eval_batch_size)
    tr = evaluate(res.model, kept, tcfg.eval_batch_size)
    return {"n_train": int(mask.sum()), "test_acc": te["acc"], "test_loss": te["loss"], "train_acc": tr["acc"],
            "gen_gap": tr["acc"] - te["acc"], "epochs": len(res.history), "budget": b.budget,
            "fit_reached": int(tr["acc"] >= b.fit_threshold) if b.budget == "fit" else ""}


def fit_stop(kept, threshold: float, batch_size: int):
    """The stop callback of the ``fit`` budget: True once the eval-mode accuracy on ``kept`` reaches ``threshold``."""
    from sensprune.train import evaluate

    def stop(rec: dict, run) -> bool:
        return evaluate(run.model, kept, batch_size)["acc"] >= threshold
    return stop


def reweight_weights(cfg: BenchConfig, scores: np.ndarray, rule: str, fraction: float,
                     labels: np.ndarray) -> np.ndarray:
    """Per-example loss weights (N,) of the arm ``reweight:<method>``: :func:`sensprune.prune.reweight`
    with ``[bench] temperature``, within each class when ``[bench] per_class`` (as ``sensprune prune``)."""
    from sensprune.prune import reweight

    method = rule[len(REWEIGHT_PREFIX):]
    frac = fraction if method == "clip" else None
    groups = [labels == c for c in np.unique(labels)] if cfg.bench.per_class else [np.ones(len(scores), bool)]
    w = np.empty(len(scores), np.float64)
    for g in groups:
        w[g] = reweight(scores[g], method, temperature=cfg.bench.temperature, fraction=frac)
    return w


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


def prepare_dir(cfg: BenchConfig, out: Path, *, resume: bool, force: bool) -> Path:
    """Check ``out`` and return the folder to work in, holding ``config.json``.

    A new folder is ``out`` itself. An existing grid needs ``resume`` (same config: work in ``out``)
    or ``force``: then the new grid is built in a staging folder beside ``out`` and replaces it only
    when complete (:func:`finish_dir`), so a failed or killed ``--force`` run leaves the old grid intact.
    """
    path = out / CONFIG_JSON
    replace_old = False
    if path.exists():
        if force:
            if not _replaceable_grid(out):  # refused now, not after the whole grid has run
                raise ValidationError(f"{out} holds a config.json but is not a sensprune output; --force replaces "
                                      "only sensprune's own folders. Choose another --out.")
            replace_old = True
        elif not resume:
            raise ValidationError(f"{out} already holds a bench grid; pass --resume to continue it or --force "
                                  "to start over.")
        else:
            # resolve the stored config, so keys added with defaults since it was written compare equal
            have = config_from_json(read_json(path)).to_dict()
            if have != cfg.to_dict():
                raise ValidationError(f"Cannot resume {out}: it was run with another config (differs in: "
                                      f"{', '.join(diff_keys(have, cfg.to_dict()))}); pass --force to start over.")
    elif out.exists() and not out.is_dir():
        raise ValidationError(f"{out} exists and is not a folder; choose another --out.")
    elif out.exists() and any(out.iterdir()):
        if not (force and is_artifact(out)):  # --force never replaces a folder sensprune did not write
            raise ValidationError(f"{out} exists and is not a bench folder; choose another --out"
                                  + (" or pass --force." if is_artifact(out) else "."))
        replace_old = True
    work = staging_dir(out) if replace_old else out
    work.mkdir(parents=True, exist_ok=True)
    write_json(work / CONFIG_JSON, cfg.to_dict())
    return work


def _replaceable_grid(folder: Path) -> bool:
    """A sensprune output (``meta.json`` says so), or a grid from before bench wrote ``meta.json``."""
    return is_artifact(folder) or ((folder / CONFIG_JSON).is_file() and (folder / "units").is_dir())


def finish_dir(work: Path, out: Path) -> None:
    """Publish a grid built in a staging folder over ``out`` (no-op when it was built in place)."""
    if work.resolve() != out.resolve():
        publish_dir(work, out, replaceable=_replaceable_grid)


def run_grid(cfg: BenchConfig, out: str | Path, *, jobs: int = 1, shard: tuple[int, int] = (0, 1),
             resume: bool = False, force: bool = False, progress: bool = True) -> dict[str, Any]:
    """Run (the shard ``i/n`` of) the grid into ``out`` and write the aggregate files.

    Returns the dict of :func:`aggregate` (paths and counts).
    """
    from tqdm.auto import tqdm

    out = Path(out)
    i, n = shard
    if not (isinstance(n, int) and n >= 1 and isinstance(i, int) and 0 <= i < n):
        raise ValidationError(f"--shard must be i/n with 0 <= i < n; got {i}/{n}.")
    if not isinstance(jobs, int) or jobs < 1:
        raise ValidationError(f"--jobs must be an integer >= 1; got {jobs!r}.")
    units = plan_units(cfg)[i::n]
    preflight(cfg)
    work = prepare_dir(cfg, out, resume=resume, force=force)
    write_json(work / "shard.json", {"shard": [i, n], "units": [u.key for u in units]})
    todo = [u for u in units if not unit_paths(work, u)[0].exists()]
    total = sum(len(plan_retrains(cfg, u)) for u in todo)
    bar = tqdm(total=total, desc="bench retrains", disable=not progress, dynamic_ncols=True)
    _exit_on_sigterm()  # so a killed grid also stops its worker processes (finished units stay)
    try:
        if jobs == 1 or len(todo) <= 1:
            for u in todo:
                rows, det = run_unit(cfg, u, on_retrain=lambda: bar.update(1))
                _write_unit(work, u, rows, det)
        else:
            import multiprocessing as mp
            import threading

            tqdm.set_lock(threading.RLock())  # tqdm's default multiprocessing lock leaks a semaphore under spawn
            with mp.get_context("spawn").Pool(min(jobs, len(todo))) as pool:
                for k in pool.imap_unordered(_run_and_write, [(cfg, u, work) for u in todo]):
                    bar.update(k)
    finally:
        bar.close()
    res = aggregate(cfg, work, units)
    finish_dir(work, out)
    return {**res, "out": out}


def _exit_on_sigterm() -> None:
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(SystemExit(143)))


def merge(dirs: Sequence[str | Path], out: str | Path, *, force: bool = False) -> dict[str, Any]:
    """Join shard folders (same config) into ``out`` and recompute the aggregate files over the full plan."""
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
    check_not_input(out, dirs)  # the shards are inputs: the merged grid goes to a folder of its own
    work = prepare_dir(cfg, out, resume=True, force=force)
    for d in dirs:
        for f in sorted((d / "units").glob("*.csv")) if (d / "units").is_dir() else []:
            dest = work / "units" / f.name
            if dest.resolve() != f.resolve():
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(f, dest)
    res = aggregate(cfg, work, plan_units(cfg))
    finish_dir(work, out)
    return {**res, "out": out}


# -- files -----------------------------------------------------------------------------------------------

def aggregate(cfg: BenchConfig, out: Path, units) -> dict[str, Any]:
    """Concatenate the unit files of ``units`` (plan order) and write results/summary/detection/verdict."""
    out = Path(out)
    rows, det, missing = [], [], []
    for u in units:
        res_path, det_path = unit_paths(out, u)
        if not res_path.exists():
            missing.append(u.key)
            continue
        rows += read_rows(res_path)
        if det_path.exists():
            det += read_rows(det_path)
    header = f"Grid: datasets {', '.join(cfg.grid.datasets)} (subsample {cfg.data.subsample or 'none'}); " + \
        describe_training(cfg) + f"; seeds {list(cfg.grid.seeds)}."
    if missing:
        header += f"\n\n**Incomplete:** {len(missing)} unit(s) not run yet: {', '.join(missing)}."
    meta = {"config": cfg.to_dict(), "units": [u.key for u in units], "missing_units": missing,
            "measures": measure_meta(cfg)}
    return {**write_outputs(out, rows, det, header=header, meta=meta), "missing_units": missing}


def measure_meta(cfg: BenchConfig) -> dict[str, dict[str, Any]]:
    """Direction, description and estimator of each warmup measure of the grid (for meta.json).

    ``loss_sensitivity`` is the paper's full-horizon measure (Arpit et al. 2017 §3.2), estimated
    from ``probe_times`` sampled steps unless ``probe_times = "all"`` (exact); ``loss_sensitivity_hH``
    is the truncated proxy.
    """
    from sensprune.measures import MEASURES, truncated_horizon
    from sensprune.options import DEFAULT_PROBE_TIMES  # not measures.sampled: merging needs no torch

    opts = dict(cfg.score.measure_options)
    out = {}
    for m in cfg.score_measures:
        spec = MEASURES[m]
        entry = {"direction": spec.direction, "description": spec.description}
        if m == "loss_sensitivity":
            k = opts.get("probe_times")
            entry["estimator"] = ("full horizon, exact at every step" if k == "all" or opts.get("horizon") == "all"
                                  else f"full horizon, sampled: {k or DEFAULT_PROBE_TIMES} probe steps (at most "
                                       "the number of SGD steps; each exact through every earlier update)")
        elif truncated_horizon(m):
            entry["estimator"] = f"PROXY: truncated to the last {truncated_horizon(m)} update(s)"
        out[m] = entry
    return out


def describe_training(cfg: BenchConfig) -> str:
    """The retrain budget and warmup in words, for verdict.md headers."""
    t, b = cfg.train, cfg.bench
    budget = {"epochs": f"{t.epochs} epochs", "steps": f"about the SGD steps of {t.epochs} full-set epochs",
              "fit": f"until {b.fit_threshold:g} training accuracy on its (noisy) training examples, at most "
                     f"{b.max_epochs} epochs, {b.fit_schedule} lr"}[b.budget]
    return (f"model {cfg.score.model} {list(cfg.score.widths)}; retrain budget `{b.budget}`: {budget}, "
            f"{t.optimizer} lr {t.lr}, batch {t.batch_size}; warmup {cfg.score.epochs or t.epochs} epochs")


def write_outputs(out: Path, rows: list[dict], det: list[dict], *, header: str, meta: dict[str, Any],
                  question: str = "loss_sensitivity") -> dict[str, Any]:
    """Write results.csv, detection_per_seed.csv, summary.csv, detection.csv, verdict.md and meta.json."""
    from sensprune.bench_verdict import verdict
    from sensprune.stats import DETECTION_SUMMARY_COLUMNS, FDR, SUMMARY_COLUMNS, summarize, summarize_detection

    write_csv(out / "results.csv", RESULT_COLUMNS, ([r.get(c, "") for c in RESULT_COLUMNS] for r in rows))
    write_csv(out / "detection_per_seed.csv", DETECTION_COLUMNS,
              ([r.get(c, "") for c in DETECTION_COLUMNS] for r in det))
    summary, dsum = summarize(rows), summarize_detection(det)
    write_csv(out / "summary.csv", SUMMARY_COLUMNS, ([r[c] for c in SUMMARY_COLUMNS] for r in summary))
    write_csv(out / "detection.csv", DETECTION_SUMMARY_COLUMNS,
              ([r[c] for c in DETECTION_SUMMARY_COLUMNS] for r in dsum))
    atomic_write_text(out / "verdict.md", verdict(summary, dsum, header=header, question=question))
    n_failed = sum(r["status"] != "ok" for r in rows)
    tested = [r for r in summary if np.isfinite(r["q_bh"])]
    write_json(out / "meta.json", {
        **base_meta("bench"), **meta, "retrain_rows": len(rows), "failed_rows": n_failed,
        "files": ["results.csv", "summary.csv", "detection.csv", "detection_per_seed.csv", "verdict.md"],
        "statistics": "per cell mean, std, n and 95% Student-t CI; paired per-seed differences vs random (same "
                      "fraction, or the random selection matched to a user selection) and vs full: paired t-test "
                      "(scipy.stats.ttest_rel), 95% CI, p-value; d_*_sig = the CI excludes 0 (uncorrected); "
                      f"q_bh = Benjamini-Hochberg adjusted p of each arm vs its baseline (vs), across all tested "
                      f"cells; sig_bh = q_bh < {FDR}",
        "bh": {"fdr": FDR, "tested": len(tested), "survive": sum(bool(r["sig_bh"]) for r in tested)}})
    return {"out": out, "rows": len(rows), "failed": n_failed, "summary": summary, "detection": dsum}


def read_rows(path: Path) -> list[dict[str, Any]]:
    """Read a unit/results CSV back with numbers as numbers (empty cells -> NaN or '')."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    for r in rows:
        for k, v in r.items():
            if k in _INT_COLS and v != "":
                r[k] = int(v)
            elif k == "fit_reached":
                r[k] = int(float(v)) if v not in ("", "nan") else ""
            elif k not in _TEXT_COLS:
                r[k] = float(v) if v != "" else float("nan")
    return rows


_TEXT_COLS = {"dataset", "corruption", "measure", "rule", "status", "message", "roc_tpr", "budget"}
_INT_COLS = {"seed", "n_total", "n_train", "n_corrupted", "n_corrupted_kept", "epochs", "k"}
