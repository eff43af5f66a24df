"""Stage 1 — score: train warmup model(s) and compute per-example measures online.

``score(dataset, config)`` runs ``config.seeds`` warmup runs through the one training loop
(:func:`sensprune.train.loop.train`) with the requested measures as step hooks, and returns a
:class:`~sensprune.scoring.table.ScoreTable` (mean over seeds, per-seed arrays, Gini per epoch,
Lorenz curves, warmup history). ``run_score`` adds the artifact folder with checkpoints and resume.
"""

from __future__ import annotations

import json
import math
import shutil
import time
import sys
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from sensprune import measures as M
from sensprune.config import DataOptions, MeasureOptions, TrainConfig
from sensprune.data import Dataset
from sensprune.data.base import source_rows
from sensprune.errors import ValidationError
from sensprune.io import atomic_write_text, diff_keys, make_dirs, read_json, read_npz, remove_dirs, write_npz
from sensprune.measures.gini import gini
from sensprune.scoring.table import ScoreTable, save_scores, score_meta
from sensprune.train import distributed as D
from sensprune.train.augment import check_augment
from sensprune.train.hooks import Hook, Run
from sensprune.train.loop import resolve_device, train
from sensprune.train.models import build_model, has_batchnorm
from sensprune.train.sources import predict_logits


@dataclass(frozen=True)
class ScoreConfig:
    """The resolved config of a scoring run (stored in ``meta.json``)."""

    dataset: str = "digits"
    model: str = "mlp"
    widths: tuple[int, ...] = (256, 128)
    dropout: float = 0.0
    measures: tuple[str, ...] = M.DEFAULT_MEASURES
    seeds: int = 1
    el2n_epoch: int | None = None
    at_checkpoints: tuple[int, ...] | None = None
    data_options: DataOptions = field(default_factory=DataOptions)  # a mapping is converted; unknown keys refused
    measure_options: MeasureOptions = field(default_factory=MeasureOptions)  # likewise
    train: TrainConfig = field(default_factory=TrainConfig)
    #: a model given in Python: ``(num_classes, input_shape) -> nn.Module`` used instead of the name ``model``
    #: (which then only describes it, e.g. ``python:MyNet``); not part of :meth:`to_dict`
    model_factory: Callable[[int, tuple], Any] | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        object.__setattr__(self, "data_options", DataOptions.from_value(self.data_options))
        object.__setattr__(self, "measure_options", MeasureOptions.from_value(self.measure_options))
        h = self.measure_options.horizon
        # --horizon H turns the paper's loss_sensitivity into the truncated proxy, which is named as one
        names = [f"loss_sensitivity_h{h}" if m == "loss_sensitivity" and isinstance(h, int) else m
                 for m in self.measures]
        names = M.check_measures(names)
        names = [c for m in names for c in (m, *M.COMPANIONS.get(m, ()))]  # memorization -> its SE and n_in too
        object.__setattr__(self, "measures", tuple(dict.fromkeys(names)))
        if not isinstance(self.seeds, int) or self.seeds < 1:
            raise ValidationError(f"The 'seeds' parameter must be an integer >= 1; got {self.seeds!r}.")
        e = self.resolved_el2n_epoch
        if not 1 <= e <= self.train.epochs:
            raise ValidationError(f"--el2n-epoch must be in 1..{self.train.epochs} (the warmup's epochs); got {e}.")
        for e in self.at_checkpoints or ():
            if not 1 <= e <= self.train.epochs:
                raise ValidationError(f"--at-checkpoints epochs must be in 1..{self.train.epochs}; got {e}.")

    @property
    def resolved_el2n_epoch(self) -> int:
        """EL2N epoch; default 10% of the warmup, at least 1 (Paul et al. 2021 score early in training)."""
        return self.el2n_epoch if self.el2n_epoch is not None else max(1, math.ceil(0.1 * self.train.epochs))

    def build_model(self, num_classes: int, input_shape) -> Any:
        """A fresh model of this config: ``model_factory`` when given, else :func:`sensprune.train.models.build_model`
        of the name ``model`` (the one model builder of scoring, its hooks and ``bench --selection``)."""
        if self.model_factory is not None:
            return self.model_factory(num_classes, tuple(input_shape))
        return build_model(self.model, num_classes, input_shape, widths=self.widths, dropout=self.dropout)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(replace(self, model_factory=None))
        d.pop("model_factory")
        d["el2n_epoch"] = self.resolved_el2n_epoch
        if "memorization" not in {M.measure_spec(m).group for m in self.measures}:
            # options of a measure not requested stay out: configs (resume, caches) from before them still match
            d["measure_options"] = {k: v for k, v in d["measure_options"].items() if not k.startswith("mem_")}
        return json.loads(json.dumps(d))


class GiniTracker(Hook):
    """After every epoch, the Gini coefficient of each measure's current values (NaN until defined)."""

    replicated = True  # computed from already-synced values, identically on every rank

    def __init__(self, hooks: list[Hook], names: list[str]):
        self.hooks, self.names = hooks, names
        self.rows = np.zeros((0, len(names)))

    def on_epoch_end(self, epoch: int, run: Run) -> None:
        vals = collect(self.hooks)
        row = [gini(vals[m]) for m in self.names]  # NaN while a measure has no finite value yet
        self.rows = np.vstack([self.rows, row])

    def state_dict(self):
        return {"rows": self.rows}

    def load_state_dict(self, state):
        self.rows = state["rows"].copy()


def collect(hooks: list[Hook]) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for h in hooks:
        if hasattr(h, "values"):
            out.update(h.values())
    return out


def hook_measures(config: ScoreConfig) -> list[str]:
    """The measures of ``config`` computed by hooks of the warmup run (not by their own runs, M.STANDALONE)."""
    return [m for m in config.measures if M.measure_spec(m).group not in M.STANDALONE]


def standalone_groups(config: ScoreConfig) -> list[str]:
    """The groups of ``config.measures`` that train their own models (M.STANDALONE), in order."""
    return list(dict.fromkeys(g for g in (M.measure_spec(m).group for m in config.measures) if g in M.STANDALONE))


def build_hooks(dataset: Dataset, config: ScoreConfig) -> tuple[list[Hook], list[Hook]]:
    """The measure hooks for ``config.measures`` (one per group) and all hooks including the Gini tracker."""
    ctx = M.HookContext(dataset.n_train, dataset.num_classes, config, dataset)
    groups = list(dict.fromkeys(M.measure_spec(m).group for m in hook_measures(config)))
    measure_hooks = [M.hook_builder(g)(ctx) for g in groups]
    opts = config.measure_options or {}
    extra_hooks = [builder(ctx) for option, builder, _ in M.EXTRAS.values() if opts.get(option)]
    tracker = GiniTracker(measure_hooks, hook_measures(config))
    return measure_hooks, [*measure_hooks, *extra_hooks, tracker]


def collect_extras(hooks: list[Hook]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Non-per-example arrays (``extras()``, e.g. the (K, K) per-class matrix) and notes (``meta()``)."""
    extras: dict[str, np.ndarray] = {}
    notes: dict[str, Any] = {}
    for h in hooks:
        if hasattr(h, "extras"):
            extras.update(h.extras())
        if hasattr(h, "meta"):
            notes.update(h.meta())
    return extras, notes


def model_builder(dataset: Dataset, config: ScoreConfig):
    """``build() -> nn.Module`` of ``config`` on ``dataset`` (:meth:`ScoreConfig.build_model`)."""
    def build():
        return config.build_model(dataset.num_classes, dataset.input_shape)
    return build


def validate(dataset: Dataset, config: ScoreConfig) -> None:
    """Everything that can be checked before training: model builds on this data, device exists."""
    resolve_device(config.train.device)
    check_augment(config.train.augment, tuple(dataset.input_shape))
    model = model_builder(dataset, config)()
    if has_batchnorm(model) and "input_grad" in config.measures and not config.at_checkpoints:
        raise ValidationError(f"Model {config.model!r} has BatchNorm, which couples the examples of a batch; "
                              "pass --at-checkpoints EPOCHS to measure input_grad per example in eval mode.")
    opts = config.measure_options or {}
    if not hasattr(dataset, "x_train"):
        needs_memory = [m for m in ("loss_sensitivity", "grand") if m in config.measures]
        needs_memory += [f"--{o.replace('_', '-')}" for o in ("per_class", "csr") if opts.get(o)]
        if needs_memory:
            raise ValidationError(f"{', '.join(needs_memory)} need(s) the data in memory; drop --stream "
                                  "or these measures.")
    for g in standalone_groups(config):
        M.STANDALONE[g][0](dataset, config)
    _, hooks = build_hooks(dataset, config)  # hook builders check their options (and refuse what they cannot do)
    for h in hooks:  # the loss_sensitivity memory plan, before anything trains
        if getattr(h, "plan_preview", None) is not None:
            print(h.plan_preview.describe(), file=sys.stderr)
    if D.world_size() > 1 and ("loss_sensitivity" in config.measures or opts.get("per_class")):
        raise ValidationError("loss_sensitivity and --per-class do not support data-parallel (torchrun) runs yet; "
                              "run them in a single process.")


def score_one_seed(dataset: Dataset, config: ScoreConfig, seed: int, *, workdir: Path | None = None,
                   progress: bool = True) -> dict[str, Any]:
    """One warmup run at ``seed``: returns measure values (N,), Gini rows (epochs, M) and history."""
    cfg = replace(config.train, seed=seed)
    device = resolve_device(cfg.device)
    measure_hooks, hooks = build_hooks(dataset, config)
    workers = int((config.data_options or {}).get("workers") or 0)
    train_src = dataset.train_source(device, workers)  # built once: on CUDA it holds the data on the GPU
    result = train(model_builder(dataset, config), train_src, cfg,
                   test_data=dataset.test_source(device, workers), hooks=hooks,
                   checkpoint_dir=workdir, progress=progress, desc=f"score seed {seed}")
    vals = collect(measure_hooks)
    extras, notes = collect_extras(hooks)
    pred = predict_logits(result.model, train_src, cfg.eval_batch_size).argmax(1)
    return {"values": {m: vals[m] for m in hook_measures(config)}, "gini": hooks[-1].rows,
            "history": result.history, "extras": extras, "notes": notes, "predicted": pred.cpu().numpy()}


def score(dataset: Dataset, config: ScoreConfig, *, workdir: Path | None = None,
          progress: bool = True, validated: bool = False) -> ScoreTable:
    """Run the warmup(s) and return the score table (mean over seeds; higher = harder).

    With ``workdir``, each seed checkpoints there every epoch and a finished seed's arrays are kept,
    so a killed run continues where it stopped (same config required). ``validated``: the caller already ran
    :func:`validate`.
    """
    t0 = time.perf_counter()
    if not validated:
        validate(dataset, config)
    hooked = hook_measures(config)
    seeds = [config.train.seed + k for k in range(config.seeds)] if hooked else []  # no warmup without hooks
    runs = []
    for s in seeds:
        sub = None if workdir is None else workdir / f"seed{s}"
        runs.append(_cached_seed(dataset, config, s, sub, progress))
    per_seed = {m: np.stack([r["values"][m] for r in runs]) for m in hooked}
    with np.errstate(all="ignore"):
        own = {m: np.nanmean(v, axis=0) if np.isfinite(v).any() else v[0] for m, v in per_seed.items()}
    notes = dict(runs[0]["notes"]) if runs else {}
    for g in standalone_groups(config):  # measures that are their own training runs (memorization)
        vals, notes[g] = M.STANDALONE[g][1](dataset, config, workdir=None if workdir is None else workdir / g,
                                            progress=progress)
        own.update(vals)
    mean = {m: own[m] for m in config.measures}
    extras = {k: np.mean(np.stack([r["extras"][k] for r in runs]), axis=0) for k in runs[0]["extras"]} if runs else {}
    with warnings.catch_warnings():  # a measure not defined yet at an epoch (el2n before its epoch) is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        g_hooked = np.nanmean(np.stack([r["gini"] for r in runs]), axis=0) if runs else np.zeros((0, 0))
    gini_mean = np.full((len(g_hooked), len(mean)), np.nan)  # no per-epoch Gini for a standalone measure
    for j, m in enumerate(mean):
        if m in hooked:
            gini_mean[:, j] = g_hooked[:, hooked.index(m)]
    extras_meta = {k: {**M.EXTRAS[k][2](v), "mean_over_seeds": len(runs)} for k, v in extras.items()}
    meta = score_meta(config=config.to_dict(), seeds=seeds, dataset=dataset.describe(), values=mean,
                      gini_rows=gini_mean, history={str(s): r["history"] for s, r in zip(seeds, runs)},
                      notes=notes, extras=extras_meta, note="computed by sensprune score: warmup run(s) "
                      "of the training loop, the mean over seeds", wall_time_s=time.perf_counter() - t0)
    idx = np.arange(dataset.n_train, dtype=np.int64)
    votes = np.zeros((dataset.n_train, dataset.num_classes), np.int64)
    for r in runs:
        votes[np.arange(dataset.n_train), r["predicted"]] += 1
    return ScoreTable(idx, dataset.y_train.astype(np.int64), mean, per_seed, meta, extras,
                      votes.argmax(1) if runs else None, source_rows(dataset))


def _cached_seed(dataset, config, seed, sub: Path | None, progress):
    if sub is not None and (sub / "done.npz").exists():
        arrs = read_npz(sub / "done.npz")
        done = read_json(sub / "done.json")
        done = done if isinstance(done, dict) else {"history": done, "notes": {}}
        extras = {k[len("__extra/"):]: v for k, v in arrs.items() if k.startswith("__extra/")}
        return {"values": {m: arrs[m] for m in hook_measures(config)}, "gini": arrs["__gini"],
                "predicted": arrs["__pred"],
                "history": done["history"], "extras": extras, "notes": done["notes"]}
    if sub is not None and D.is_main():
        sub.mkdir(parents=True, exist_ok=True)
    r = score_one_seed(dataset, config, seed, workdir=sub, progress=progress)
    if sub is not None and D.is_main():
        extras = {f"__extra/{k}": v for k, v in r["extras"].items()}
        write_npz(sub / "done.npz", {**r["values"], "__gini": r["gini"], "__pred": r["predicted"], **extras})
        atomic_write_text(sub / "done.json", json.dumps({"history": r["history"], "notes": r["notes"]}))
    return r


def run_score(dataset: Dataset, config: ScoreConfig, out: Path, *, force: bool = False, resume: bool = False,
              progress: bool = True, extra_files: dict | None = None) -> ScoreTable:
    """Score and write the artifact folder ``out``; checkpoints live in ``<out>.partial`` until done.

    ``resume`` continues a killed run (the config must be identical); ``force`` replaces ``out``
    and discards any interrupted run.
    """
    out = Path(out)
    partial = out.parent / (out.name + ".partial")
    want = {"config": config.to_dict(), "dataset_fingerprint": dataset.fingerprint}
    if out.exists() and not force and not resume:
        raise ValidationError(f"{out} already exists; pass --force to overwrite it.")
    if partial.exists() and resume:
        try:
            have = read_json(partial / "config.json")
        except ValidationError:
            raise ValidationError(f"{partial} is not a resumable run; pass --force to start over.") from None
        if have != want:
            diff = diff_keys(have, want)
            raise ValidationError(f"Cannot resume {out}: the interrupted run used another config "
                                  f"(differs in: {', '.join(diff)}); pass --force to start over.")
    elif partial.exists() and not force:
        raise ValidationError(f"An interrupted run exists at {partial}; pass --resume to continue it "
                              "or --force to start over.")
    elif resume and out.exists():
        raise ValidationError(f"{out} is already complete; nothing to resume (pass --force to redo it).")
    validate(dataset, config)
    D.barrier()  # every rank has checked the folders before rank 0 touches them
    made = []  # the folders this run creates: removed again on an OSError (a full disk), nothing left behind
    try:
        if D.is_main():  # with torchrun, rank 0 alone writes
            if partial.exists() and not resume:
                shutil.rmtree(partial)
            made = make_dirs(partial)
            atomic_write_text(partial / "config.json", json.dumps(want))
        D.barrier()
        table = score(dataset, config, workdir=partial, progress=progress, validated=True)
        if D.is_main():
            from sensprune.data.locate import record_location

            table.meta["dataset"] = record_location(table.meta.get("dataset") or {}, out)  # folders that travel
            save_scores(table, out, extra_files=extra_files)
            shutil.rmtree(partial, ignore_errors=True)
    except OSError:
        if made:
            shutil.rmtree(partial, ignore_errors=True)
            remove_dirs(made[:-1])
        raise
    D.barrier()
    return table


def summary_rows(table: ScoreTable) -> list[tuple]:
    """(measure, mean, std, min, median, max, gini) per measure, for the stdout summary."""
    rows = []
    for m, v in table.scores.items():
        f = v[np.isfinite(v)]
        if f.size == 0:
            rows.append((m, *([float("nan")] * 6)))
            continue
        rows.append((m, f.mean(), f.std(), f.min(), np.median(f), f.max(), gini(f)))
    return rows
