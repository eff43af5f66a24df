"""``sensprune bench --selection DIR [DIR ...]``: retrain on the user's own prune folders.

score → prune → bench as one pipeline. For each seed of ``[grid] seeds`` (every run of a seed shares
init and batch order, so differences are paired, as in the grid):

- ``full``: every training example;
- each selection ``DIR``: its kept examples (``keep.npy``), or every example with its loss weights
  (``weights.npy``, a ``--reweight`` selection);
- the random selection matched to it: for a keep selection, as many examples *per class* as it
  keeps, drawn uniformly with the seed; for a weighted one, its weights shuffled within each class.

The dataset is the one the selections were made from: its spec is reloaded (a recorded ``--corrupt``
replayed) and must have the recorded fingerprint, every selection must come from that same data,
and its indices must cover exactly its training set — otherwise the run is refused with the reason
before anything is trained or written. Training settings come from ``--config`` ([train], [score]
model, [bench] budget; [grid] is not used except ``seeds``) or the defaults. The output folder has
the grid's files (results.csv, summary.csv, verdict.md, meta.json), with one summary row per
selection (rule ``selection:<its rule>``) tested against its matched random selection.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from sensprune.benchmark.config import BenchConfig
from sensprune.benchmark.grid import write_outputs
from sensprune.benchmark.plan import describe_training
from sensprune.benchmark.stats import matched_rule
from sensprune.benchmark.unit import retrain, score_config
from sensprune.errors import ArtifactMismatchError, SensPruneError, ValidationError
from sensprune.io import prepare_out, staged_dir


@dataclass
class UserSelection:
    """One prune folder, checked: ``name`` (unique label), ``mask`` (N,) bool, ``weights`` (N,) or None."""

    folder: Path | None  # None for a selection given in Python (sp.bench)
    name: str
    rule: str
    fraction: float
    mask: np.ndarray
    weights: np.ndarray | None
    meta: dict[str, Any]


def load_selections(dirs: Sequence[str | Path], *, data_root: str | None = None):
    """Load and check the prune folders ``dirs``; returns (dataset, corruption label, [UserSelection]).

    Raises ValidationError for a folder that is not a prune folder and ArtifactMismatchError for a
    selection made from other data (another dataset fingerprint than the first selection, data that
    no longer loads with the recorded fingerprint, or indices that do not cover the training set).
    """
    from sensprune.pruning.selection import load_selection
    from sensprune.pruning.stage import load_matching_dataset

    if not dirs:
        raise ValidationError("--selection needs at least one prune folder.")
    loaded = []
    for d in map(Path, dirs):
        try:
            loaded.append((d, load_selection(d)))
        except ValidationError as exc:
            raise ValidationError(f"--selection {d} is not a prune folder (made by `sensprune prune --out`): "
                                  f"{exc}") from None
    first_dir, first = loaded[0]
    ds_meta = first.meta.get("dataset") or {}
    for d, sel in loaded:
        m = sel.meta.get("dataset") or {}
        if not m.get("fingerprint") and m.get("spec") == "python:tracker":
            raise ValidationError(f"--selection {d} was pruned from a Tracker folder made without dataset=, so it "
                                  "does not say which data it indexes; prune it again with `sensprune prune "
                                  "--dataset SPEC` (checked against the Tracker's training fingerprint), or give "
                                  "Tracker(..., dataset=...).")
        if not m.get("fingerprint"):
            raise ValidationError(f"--selection {d}: its meta.json records no dataset fingerprint; "
                                  "redo it with `sensprune prune`.")
        if m.get("fingerprint") != ds_meta.get("fingerprint"):
            raise ArtifactMismatchError(
                f"--selection {d} was made from other data than {first_dir}: dataset {m.get('spec')!r} "
                f"(fingerprint {m.get('fingerprint')}) vs {ds_meta.get('spec')!r} (fingerprint "
                f"{ds_meta.get('fingerprint')}); bench selections of one dataset per run.")
    try:
        data = load_matching_dataset(ds_meta, data_root=data_root, folder=first_dir)
    except ArtifactMismatchError as exc:
        raise ArtifactMismatchError(f"--selection {first_dir} was made from other data: {exc}") from None
    out = []
    for d, sel in loaded:
        if sel.n != data.n_train:
            raise ArtifactMismatchError(f"--selection {d} was made from other data: it covers {sel.n} training "
                                        f"examples but {ds_meta.get('spec')!r} has {data.n_train}.")
        name = d.resolve().name or str(d)
        name = name if name not in {s.name for s in out} else f"{name}#{len(out) + 1}"
        out.append(user_selection(name, sel, d))
    return data, corruption_label(ds_meta), out


def user_selection(name: str, sel, folder: str | Path | None = None) -> UserSelection:
    """A :class:`sensprune.pruning.selection.Selection` as a bench arm named ``name``: its rule
    (``reweight:<method>`` for a weighted one, ``given`` when it records none) and removed fraction."""
    method = sel.meta.get("reweight")
    rule = f"reweight:{method}" if sel.weights is not None and method else (sel.meta.get("rule") or "given")
    frac = len(sel.drop) / sel.n if sel.weights is None else float(
        (sel.meta.get("parameters") or {}).get("fraction") or 0.0)
    return UserSelection(Path(folder) if folder is not None else None, str(name).replace("|", "_"), rule, frac,
                         sel.mask(), sel.weights, sel.meta)


def corruption_label(dataset_meta: dict) -> str:
    """``kind:level`` of the ``--corrupt`` a score folder's dataset records, else ``none``."""
    corr = dataset_meta.get("corruption")
    return f"{corr['kind']}:{corr['fraction']:g}" if isinstance(corr, dict) and corr.get("kind") else "none"


def matched_random(sel: UserSelection, labels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """The random counterpart of ``sel`` for ``seed``: (mask (N,), weights (N,) or None).

    Keep selection: per class ``c`` the same number of kept examples, drawn uniformly without
    replacement. Weighted selection: all examples, its weights permuted within each class.
    """
    rng = np.random.default_rng(seed)
    n = len(labels)
    if sel.weights is not None:
        w = sel.weights.copy()
        for c in np.unique(labels):
            idx = np.flatnonzero(labels == c)
            w[idx] = sel.weights[rng.permutation(idx)]
        return np.ones(n, bool), w
    mask = np.zeros(n, bool)
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        mask[rng.choice(idx, size=int(sel.mask[idx].sum()), replace=False)] = True
    return mask, None


def plan(selections: Sequence[UserSelection]) -> list[tuple[str, str, float, int | None, bool]]:
    """(measure, rule, fraction, selection index, matched random?) of every retrain of one seed, in row order."""
    out = [("full", "none", 0.0, None, False)]
    for k, s in enumerate(selections):
        out.append((s.name, f"selection:{s.rule}", s.fraction, k, False))
        out.append(("random", matched_rule(s.name), s.fraction, k, True))
    return out


def run_selections(dirs: Sequence[str | Path], out: str | Path, cfg: BenchConfig, *, force: bool = False,
                   progress: bool = True) -> dict[str, Any]:
    """Retrain on each prune folder of ``dirs``, its matched random selection and the full set, for every
    seed of ``cfg.grid.seeds``; write the grid's output files into ``out`` (assembled aside, then moved)."""
    out = prepare_out(out, force=force, inputs=list(dirs))  # checks only; written at the end via staged_dir
    data, corruption, sels = load_selections(dirs, data_root=cfg.data.data_root)
    spec = (sels[0].meta.get("dataset") or {}).get("spec", data.spec)
    return bench_selections(data, sels, cfg, out, spec=spec, corruption=corruption, progress=progress)


def bench_selections(data, sels: Sequence[UserSelection], cfg: BenchConfig, out: Path | None = None, *, spec: str,
                     corruption: str = "none", model: tuple[str, Any] | None = None, source: str | None = None,
                     progress: bool = True) -> dict[str, Any]:
    """The retrains of ``bench --selection`` and ``sp.bench``: for every seed of ``cfg.grid.seeds``, the full
    set, then each selection and its :func:`matched_random` counterpart, each through
    :func:`sensprune.benchmark.unit.retrain`; the statistics are the grid's
    (:func:`sensprune.benchmark.stats.summarize`: paired t-tests, Benjamini–Hochberg across the selections).

    ``data`` is the training/test data the selections index; ``spec`` and ``corruption`` label its rows.
    ``model``: ``(name, factory)`` of a model given in Python instead of ``[score] model`` (``factory(num_classes,
    input_shape) -> nn.Module``); the one check that it gives logits is made here, its message prefixed with
    ``source`` (``"sp.bench"``) when given. With ``out`` (checked by the caller) the grid's files are written there
    (assembled aside, then moved); returns ``results`` (the rows of results.csv), ``summary`` (of summary.csv)
    and ``out``.
    """
    from dataclasses import replace

    from sensprune.progress import progress_bar

    from sensprune.benchmark.stats import summarize
    from sensprune.scoring.stage import model_builder, validate
    from sensprune.train.loop import resolve_device
    from sensprune.train.model_check import check_model
    from sensprune.train.sources import ArraySource

    scfg = score_config(cfg, spec, 0)
    model_name = cfg.score.model
    if model is not None:
        model_name = model[0]
        scfg = replace(scfg, model=model_name, model_factory=model[1])
    # one forward on one example, as score runs it (before validate builds the model): a model of the wrong width
    # is one line, not a failed row per retrain
    what = f"the model {model_name}" if model is not None else f"[score] model {model_name!r}"
    check_model(scfg.build_model, data, what if source is None else f"{source}: {what}")
    validate(data, scfg)
    device = resolve_device(cfg.train.device)
    build = model_builder(data, scfg)
    train_src = ArraySource(data.x_train, data.y_train, device)
    test_src = ArraySource(data.x_test, data.y_test, device)
    steps = plan(sels)
    rows = []
    bar = progress_bar(total=len(steps) * len(cfg.grid.seeds), desc="bench retrains", enabled=progress,
                       dynamic_ncols=True)
    try:
        for seed in cfg.grid.seeds:
            full_steps = None  # the SGD steps of the seed's full run (first in the plan), for the fit budgets
            for measure, rule, fraction, k, is_random in steps:
                t0 = time.perf_counter()
                base = {"dataset": spec, "corruption": corruption, "seed": seed, "measure": measure, "rule": rule,
                        "fraction": fraction, "n_total": data.n_train}
                try:
                    if k is None:
                        mask, weights = np.ones(data.n_train, bool), None
                    elif is_random:
                        mask, weights = matched_random(sels[k], data.y_train, seed)
                    else:
                        mask, weights = sels[k].mask, sels[k].weights
                    res = retrain(cfg, seed, build, train_src, test_src, data, mask, weights, full_steps=full_steps)
                    if k is None:
                        full_steps = res["steps"]
                    rows.append({**base, "status": "ok", **res, "wall_time_s": round(time.perf_counter() - t0, 3),
                                 "message": ""})
                except Exception as exc:
                    msg = str(exc) if isinstance(exc, SensPruneError) else f"{type(exc).__name__}: {exc}"
                    rows.append({**base, "status": "failed", "message": " ".join(msg.split())[:500]})
                bar.update(1)
    finally:
        bar.close()
    if out is None:
        return {"results": rows, "summary": summarize(rows), "out": None}
    training = describe_training(cfg).split("; warmup")[0]
    config = cfg.to_dict()
    if model is not None:  # a Python model replaces [score] model (and its widths/dropout)
        training = training.replace(f"model {cfg.score.model} {list(cfg.score.widths)}", f"model {model_name}", 1)
        config["score"].update(model=model_name, widths=None, dropout=None)
    arms = ", ".join(f"{s.name} ({'' if s.folder is None else f'{s.folder}, '}rule {s.rule})" for s in sels)
    header = (f"Selections: {arms} on dataset "
              f"{spec!r} (fingerprint {data.fingerprint}, corruption {corruption}); each against a random selection "
              f"of the same size per class (weighted selections: their weights shuffled within each class) and "
              f"the full set; " + training + f"; seeds {list(cfg.grid.seeds)}.")
    from sensprune.data.locate import record_location

    made_from = {**(sels[0].meta.get("dataset") or {}), "spec": spec, "fingerprint": data.fingerprint}
    located = record_location(made_from, out, read_from=sels[0].folder, data_root=cfg.data.data_root)
    meta = {"mode": "selection", "config": config,
            "dataset": {"spec": spec, "fingerprint": data.fingerprint, "corruption": corruption,
                        **({"location": located["location"]} if "location" in located else {})},
            "selections": [{"name": s.name, "folder": None if s.folder is None else str(s.folder), "rule": s.rule,
                            "fraction": s.fraction, "kept": int(s.mask.sum()), "weighted": s.weights is not None,
                            "scores_fingerprint": s.meta.get("scores_fingerprint")} for s in sels]}
    with staged_dir(out) as stage:
        res = write_outputs(stage, rows, [], header=header, meta=meta, margin=cfg.bench.margin)
    return {**res, "results": rows, "out": out, "missing_units": []}
