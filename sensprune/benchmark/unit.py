"""One unit of a bench grid: load and corrupt the data, one warmup, detection, every paired retrain.

:func:`run_unit` is what a worker process runs; it returns the unit's result rows and detection rows.
The retrains of a unit share their seed (init and batch order), so their differences are paired; see
:mod:`sensprune.benchmark.grid.grid` for the grid around it.
"""

from __future__ import annotations

import math
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sensprune.benchmark.config import REWEIGHT_PREFIX, BenchConfig, parse_corruption
from sensprune.benchmark.plan import Unit, plan_retrains
from sensprune.errors import SensPruneError, ValidationError
from sensprune.io import read_npz, write_npz
from sensprune.train.fit import fit_stop  # the fit rule lives in train/ (measures use it); re-exported here

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
    """Checks before any training: every dataset loads, and the model builds on it and maps one of its examples
    to logits (:func:`sensprune.train.model_check.check_model`, the check of ``score`` and ``bench --selection``)."""
    from sensprune.scoring.stage import validate
    from sensprune.train.model_check import check_model

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
        scfg = score_config(cfg, spec, 0)
        check_model(scfg.build_model, data, f"{spec}: [score] model {cfg.score.model!r}")  # before validate builds it
        validate(data, scfg)


def score_config(cfg: BenchConfig, spec: str, seed: int):
    """The ScoreConfig of a unit's warmup: ``[score]``, ``[train]`` at the unit's seed, the grid's measures
    (``[score] mem_models`` / ``mem_subset`` / ``mem_max_epochs`` are memorization's measure options)."""
    from sensprune.scoring.stage import ScoreConfig

    s = cfg.score
    warm = replace(cfg.train, seed=seed, epochs=s.epochs or cfg.train.epochs)
    measures = cfg.score_measures or ("loss",)
    return ScoreConfig(dataset=spec, model=s.model, widths=tuple(s.widths), dropout=s.dropout,
                       measures=measures, seeds=1, el2n_epoch=s.el2n_epoch, train=warm,
                       measure_options={**s.measure_options, "mem_models": s.mem_models, "mem_subset": s.mem_subset,
                                        # only when set: the warmup caches of grids without it keep their keys
                                        **({"mem_max_epochs": s.mem_max_epochs} if s.mem_max_epochs else {})})


def warmup_scores(cfg: BenchConfig, data, scfg, *, progress: bool = False) -> dict[str, np.ndarray]:
    """The grid's warmup measures on ``data`` (N,) each, by :func:`sensprune.scoring.stage.score` (the function
    ``sensprune score`` calls), plus :data:`WARMUP_EPOCHS` and :data:`WARMUP_ACC` when a warmup run trained.

    Under ``[score] budget = "fit"`` the warmup's epochs are found first (:func:`fit_warmup_config`), unless
    every measure trains its own models (memorization alone: no warmup run).
    """
    from sensprune.scoring.stage import hook_measures, score

    warm = bool(hook_measures(scfg))
    if cfg.score.budget == "fit" and warm:
        scfg = fit_warmup_config(cfg, data, scfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN Gini rows of early epochs
        table = score(data, scfg, progress=progress)
    out = {m: table.get(m) for m in cfg.score_measures}
    if warm:
        out[WARMUP_EPOCHS] = np.array([scfg.train.epochs])
        out[WARMUP_ACC] = np.array([np.mean(table.predicted == data.y_train)])
    return out


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
    from sensprune.benchmark.stats import cv_confidence, detection_metrics
    from sensprune.data.noise import apply_corruption
    from sensprune.pruning.stage import keep_mask
    from sensprune.scoring.stage import model_builder
    from sensprune.train.loop import resolve_device
    from sensprune.train.sources import ArraySource

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
    warm = {"warmup_budget": cfg.score.budget, "warmup_epochs": "", "warmup_train_acc": ""}
    if cache is not None and cache.exists():
        scores.update(read_npz(cache))
    else:
        if cfg.score_measures:
            try:
                scores.update(warmup_scores(cfg, data, scfg, progress=progress))
            except Exception as exc:
                errors.update(dict.fromkeys(cfg.score_measures, exc))
            if "memorization" in scores and not np.isfinite(scores["memorization"]).all():
                errors["memorization"] = memorization_undefined(cfg, scores["memorization"])
        if want_cv:
            try:
                scores["cv_confidence"] = cv_confidence(data.x_train, data.y_train, folds=cfg.bench.cv_folds,
                                                        seed=unit.seed)
            except Exception as exc:
                errors["cv_confidence"] = exc
        if cache is not None and not errors:
            write_npz(cache, scores)
    if WARMUP_EPOCHS in scores:  # caches written before these were recorded lack them
        warm.update(warmup_epochs=int(scores.pop(WARMUP_EPOCHS)[0]), warmup_train_acc=float(scores.pop(WARMUP_ACC)[0]))
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
            det.append({**base, **detection_metrics(det_scores[m], corrupted), **warm, "status": "ok",
                        "message": ""})

    device = resolve_device(cfg.train.device)
    build = model_builder(data, scfg)
    train_src = ArraySource(data.x_train, data.y_train, device)
    test_src = ArraySource(data.x_test, data.y_test, device)
    rows, full_steps = [], None
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
            res = retrain(cfg, unit.seed, build, train_src, test_src, data, mask, weights, full_steps=full_steps)
            if measure == "full":
                full_steps = res["steps"]
            rows.append({"dataset": unit.dataset, "corruption": unit.corruption, "seed": unit.seed,
                         "measure": measure, "rule": rule, "fraction": fraction, "status": "ok", "n_total": n,
                         "n_corrupted": int(corrupted.sum()), "n_corrupted_kept": int((mask & corrupted).sum()),
                         **res, **warm, "wall_time_s": round(time.perf_counter() - t0, 3), "message": ""})
        except Exception as exc:
            rows.append(_failed(unit, measure, rule, fraction, exc, n))
        tick()
    return rows, det


#: keys of a warmup cache file that are not scores: the warmup's epochs and its final training accuracy
WARMUP_EPOCHS, WARMUP_ACC = "_warmup_epochs", "_warmup_train_acc"


def memorization_undefined(cfg: BenchConfig, mem: np.ndarray) -> ValidationError:
    """Why a memorization array (N,) with NaN (an example in every subset model's subset, or in none) cannot
    rank the examples: its cells fail with this, the other measures of the unit go on."""
    bad = int(np.sum(~np.isfinite(mem)))
    return ValidationError(f"[score] mem_models must be large enough that every example is in some subsets and out "
                           f"of others; got {cfg.score.mem_models}, which leaves memorization undefined (NaN) for "
                           f"{bad} of {len(mem)} examples.")


def fit_warmup_config(cfg: BenchConfig, data, scfg):
    """The warmup config of ``[score] budget = "fit"``: as many epochs as the same run needs to fit.

    A plain training run with the warmup's seed, model and data, the ``[bench]`` fit rule
    (``fit_threshold`` on its own, possibly noisy, training labels, eval mode, checked after every
    epoch, at most ``max_epochs``) and ``fit_schedule`` finds the epoch count E; the scoring run then
    trains E epochs with that schedule, so the measures are averaged over the whole run to fit (the
    same seed gives the same trajectory; the scoring run's own final accuracy is recorded as
    ``warmup_train_acc``). A run that does not fit by ``max_epochs`` scores over ``max_epochs``.
    """
    from sensprune.scoring.stage import model_builder
    from sensprune.train.loop import resolve_device, train
    from sensprune.train.sources import ArraySource

    b = cfg.bench
    tcfg = replace(scfg.train, epochs=b.max_epochs, schedule=b.fit_schedule)
    src = ArraySource(data.x_train, data.y_train, resolve_device(tcfg.device))
    res = train(model_builder(data, scfg), src, tcfg, stop=fit_stop(src, b.fit_threshold, tcfg.eval_batch_size),
                progress=False)
    return replace(scfg, train=replace(tcfg, epochs=len(res.history)))


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

    doc = {"score": scfg.to_dict(), "cv": [with_cv, cfg.bench.cv_folds, unit.seed]}
    if cfg.score.budget == "fit":  # the epochs are found by the fit rule: the rule is the key
        b = cfg.bench
        doc["warmup"] = ["fit", b.fit_threshold, b.max_epochs, b.fit_schedule]
    extra = json.dumps(doc, sort_keys=True)
    key = fingerprint_arrays(data.x_train, data.y_train, extra=extra)
    return Path(cfg.bench.warmup_cache) / f"{unit.key}__{key}.npz"


def retrain(cfg: BenchConfig, seed: int, build, train_src, test_src, data, mask: np.ndarray,
            weights: np.ndarray | None = None, *, full_steps: int | None = None) -> dict[str, Any]:
    """One retrain from scratch on ``mask`` (N,) bool with optional loss ``weights`` (N,), under the
    grid's budget; returns the result-row fields n_train, test/train accuracy, epochs, steps, budget,
    fit_reached.

    ``train_acc`` is the eval-mode accuracy on the retrain's own training examples (the kept ones,
    with their possibly noisy labels); under ``budget = "fit"`` training stops at the end of the
    first epoch where it reaches ``fit_threshold`` (or at ``max_epochs``). ``full_steps`` is the SGD
    steps of the seed's ``full`` run, which the arms that must match it train exactly
    (:func:`fixed_steps`); None for the full run itself.
    """
    from sensprune.train.loop import train
    from sensprune.train.sources import ArraySource, evaluate

    b, tcfg = cfg.bench, replace(cfg.train, seed=seed)
    kept = ArraySource(data.x_train[mask], data.y_train[mask], train_src.y.device)
    stop, steps = None, fixed_steps(cfg, mask, weights, full_steps)
    if b.budget == "steps":
        tcfg = replace(tcfg, epochs=max(1, round(tcfg.epochs * len(mask) / int(mask.sum()))))
    elif b.budget in ("fit", "fit-steps"):
        tcfg = replace(tcfg, schedule=b.fit_schedule)
        if steps is None:
            tcfg = replace(tcfg, epochs=b.max_epochs)
            stop = fit_stop(kept, b.fit_threshold, tcfg.eval_batch_size)
        else:
            tcfg = replace(tcfg, epochs=math.ceil(steps / math.ceil(int(mask.sum()) / tcfg.batch_size)))
    res = train(build, train_src, tcfg, mask=mask, weights=weights, stop=stop, progress=False, max_steps=steps)
    te = evaluate(res.model, test_src, tcfg.eval_batch_size)
    tr = evaluate(res.model, kept, tcfg.eval_batch_size)
    fit = b.budget in ("fit", "fit-steps")
    return {"n_train": int(mask.sum()), "test_acc": te["acc"], "test_loss": te["loss"], "train_acc": tr["acc"],
            "gen_gap": tr["acc"] - te["acc"], "epochs": len(res.history),
            "steps": res.history[-1]["steps"] if res.history else 0, "budget": b.budget,
            "fit_reached": int(tr["acc"] >= b.fit_threshold) if fit else ""}


def fixed_steps(cfg: BenchConfig, mask: np.ndarray, weights: np.ndarray | None, full_steps: int | None) -> int | None:
    """The exact SGD steps a retrain must take, or None when its budget decides (epochs, steps, to fit).

    Under ``fit-steps`` every run but the full set's trains ``full_steps`` (the steps the seed's full run
    needed to fit: equal compute); under ``fit`` the reweighting arms do (they keep every example, so
    they are compared with the full run at its own compute, not trained to a cap they rarely reach).
    Raises SensPruneError when that full run is missing (it failed, or the plan has none).
    """
    full = weights is None and bool(np.all(mask))
    need = (cfg.bench.budget == "fit-steps" and not full) or (cfg.bench.budget == "fit" and weights is not None)
    if not need:
        return None
    if full_steps is None:
        raise SensPruneError(f"budget {cfg.bench.budget!r} trains this run for the SGD steps of its seed's `full` "
                             "run, and there is none (it failed or was not run); fix the full run first.")
    return int(full_steps)


def reweight_weights(cfg: BenchConfig, scores: np.ndarray, rule: str, fraction: float,
                     labels: np.ndarray) -> np.ndarray:
    """Per-example loss weights (N,) of the arm ``reweight:<method>``: :func:`sensprune.pruning.stage.reweight`
    with ``[bench] temperature``, within each class when ``[bench] per_class`` (as ``sensprune prune``)."""
    from sensprune.pruning.stage import reweight

    method = rule[len(REWEIGHT_PREFIX):]
    frac = fraction if method == "clip" else None
    groups = [labels == c for c in np.unique(labels)] if cfg.bench.per_class else [np.ones(len(scores), bool)]
    w = np.empty(len(scores), np.float64)
    for g in groups:
        w[g] = reweight(scores[g], method, temperature=cfg.bench.temperature, fraction=frac)
    return w


def _rule_mask(cfg, s, rule, fraction, labels, seed):
    from sensprune.pruning.stage import keep_mask

    b = cfg.bench
    kw = {"labels": labels, "per_class": b.per_class, "min_per_class": b.min_per_class, "seed": seed}
    if rule == "stratified":
        kw.update(beta=b.beta, bins=b.bins)
    return keep_mask(s, rule, fraction=fraction, **kw)
