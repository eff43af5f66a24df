"""The Python facade, with the CLI's names: :func:`score`, :func:`prune`, :func:`bench`.

::

    import sensprune as sp
    table = sp.score((x_train, y_train), measures=["aum", "loss_sensitivity"], model=my_factory, epochs=15, seed=0)
    sel = sp.prune(table, by="aum", rule="drop-high", fraction=0.2, per_class=True)
    loader = DataLoader(sel.subset(my_dataset), batch_size=128, shuffle=True)   # fingerprint-checked
    result = sp.bench((x_train, y_train, x_test, y_test), selections={"mine": sel}, model=my_factory, seeds=5)

Data is any of: a ``--dataset`` spec string (``"digits"``, ``"npz:PATH"``, ...); a tuple
``(x_train, y_train)`` or ``(x_train, y_train, x_test, y_test)`` of numpy arrays or torch tensors; a
map-style ``torch.utils.data.Dataset`` returning ``(x, y)`` (or a pair of them, train and
test), read once into memory; or a :class:`sensprune.data.Dataset`. A model is a name (``"mlp"``,
``"cnn"``, ``"resnet18"``, ``"plugin:module:callable"``), an ``nn.Module`` (each run trains a deep copy,
starting from the module's weights as given) or a factory: a callable returning a fresh module, called
with no arguments or with ``(num_classes, input_shape)``, under the run's seed.

Everything goes through the same code as the CLI (:func:`sensprune.scoring.stage.score`,
:func:`sensprune.pruning.stage.select`, :func:`sensprune.train.loop.train`); bad input is a one-line
:class:`~sensprune.errors.ValidationError`.
"""

from __future__ import annotations

import copy
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from sensprune.data.given import as_dataset, train_fingerprint
from sensprune.errors import ArtifactMismatchError, ValidationError
from sensprune.io import fingerprint_arrays, prepare_out
from sensprune.pruning.selection import Selection

__all__ = ["score", "prune", "bench", "as_dataset", "Selection", "BenchResult", "train_fingerprint"]

#: TrainConfig fields that :func:`score` and :func:`bench` accept as keyword arguments.
TRAIN_KEYS = ("batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule", "device",
              "eval_batch_size", "amp", "compile", "augment")


# -- models ---------------------------------------------------------------------------------------------

def _factory(model, source: str) -> Callable[[int, tuple], Any]:
    """``(num_classes, input_shape) -> nn.Module`` from a module or a factory."""
    from torch import nn

    if isinstance(model, nn.Module):
        snapshot = copy.deepcopy(model)
        return lambda k, shape: copy.deepcopy(snapshot)
    if not callable(model):
        raise ValidationError(f"{source}: model must be a name ('mlp', 'cnn', 'resnet18', 'plugin:module:callable'), "
                              f"an nn.Module or a factory returning one; got {type(model).__name__}.")
    try:
        params = inspect.signature(model).parameters.values()
        takes_args = sum(p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
                         for p in params) >= 2
    except (TypeError, ValueError):
        takes_args = False

    def build(k, shape):
        m = model(k, tuple(shape)) if takes_args else model()
        if not isinstance(m, nn.Module):
            raise ValidationError(f"{source}: the model factory returned {type(m).__name__}, expected an nn.Module.")
        return m
    return build


def _model(model, source: str) -> tuple[str, Callable[[int, tuple], Any] | None]:
    """(name, factory): a model name as given (factory None), or ``python:<name>`` and the user's object as a
    ``(num_classes, input_shape) -> nn.Module`` factory (``ScoreConfig.model_factory``)."""
    if isinstance(model, str):
        return model, None
    factory = _factory(model, source)
    name = type(model).__name__ if hasattr(model, "forward") else getattr(model, "__qualname__", type(model).__name__)
    return f"python:{name}", factory


def _train_config(epochs: int, seed: int, train_kw: Mapping[str, Any], source: str):
    from sensprune.config import TrainConfig

    bad = [k for k in train_kw if k not in TRAIN_KEYS]
    if bad:
        raise ValidationError(f"{source}: unknown keyword argument(s) {', '.join(map(repr, bad))}. Valid: "
                              f"epochs, seed, {', '.join(TRAIN_KEYS)} (and the function's own).")
    return TrainConfig(epochs=epochs, seed=seed, **train_kw)


# -- stage 1 --------------------------------------------------------------------------------------------

def score(data, *, measures: Sequence[str] | None = None, model="mlp", epochs: int | None = None, seed: int = 0,
          seeds: int = 1, widths: Sequence[int] = (256, 128), dropout: float = 0.0, el2n_epoch: int | None = None,
          at_checkpoints: Sequence[int] | None = None, measure_options=None, num_classes: int | None = None,
          out: str | Path | None = None, force: bool = False, progress: bool = False, **train_kw):
    """Score every training example (``sensprune score``); returns a :class:`~sensprune.scoring.table.ScoreTable`.

    Parameters
    ----------
    data : see the module docstring
    measures : list of str
        Registered measure names (``sensprune.measures.MEASURES``); default the CLI's default set.
    model : str, nn.Module or factory
    epochs, seed, seeds : int
        Warmup epochs (default :func:`sensprune.config.default_epochs`: 80 with ``loss_sensitivity``, else 40,
        as ``sensprune score``), base seed, number of warmup runs (seeds ``seed .. seed+seeds-1``).
    measure_options : dict or :class:`sensprune.config.MeasureOptions`
        ``horizon``, ``probe_size``, ... — an unknown key is refused with the valid keys listed.
    out : path, optional
        Also write the score folder (``scores.npz``, ``scores.csv``, ``meta.json``) there.
    **train_kw
        :data:`TRAIN_KEYS` (``batch_size``, ``lr``, ``optimizer``, ``device`` (default ``"auto"``: CUDA if
        available, else MPS, else CPU), ...).
    """
    from sensprune import measures as M
    from sensprune.config import default_epochs
    from sensprune.scoring.stage import ScoreConfig
    from sensprune.scoring.stage import score as _score
    from sensprune.scoring.table import save_scores

    from sensprune.config import MAX_SEEDS, check_seed_range
    from sensprune.train.model_check import check_model

    source = "sp.score"
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
        raise ValidationError(f"{source}: seeds must be an integer in 1..{MAX_SEEDS}; got {seeds!r}.")
    check_seed_range(seed, seeds, where=f"{source}: ")  # the warmup runs are seeded seed .. seed+seeds-1
    dataset = as_dataset(data, num_classes=num_classes, source=source)
    measures = tuple(measures if measures is not None else M.DEFAULT_MEASURES)
    tcfg = _train_config(epochs or default_epochs(measures), seed, train_kw, source)
    if out is not None:
        out = prepare_out(out, force=force)  # checked before training; written at the end
    model_name, factory = _model(model, source)
    cfg = ScoreConfig(dataset=dataset.spec, model=model_name, model_factory=factory, widths=tuple(widths),
                      dropout=dropout, measures=measures,
                      seeds=seeds, el2n_epoch=el2n_epoch,
                      at_checkpoints=tuple(at_checkpoints) if at_checkpoints else None,
                      measure_options=measure_options, train=tcfg)
    check_model(cfg.build_model, dataset, f"{source}: the model {model_name}")  # one forward, before training
    table = _score(dataset, cfg, progress=progress)
    if hasattr(dataset, "x_train"):
        table.meta["dataset"]["train_fingerprint"] = fingerprint_arrays(dataset.x_train, dataset.y_train)
    if out is not None:
        save_scores(table, out)
    return table


# -- stage 2 --------------------------------------------------------------------------------------------

def prune(table, *, by, rule: str | None = None, fraction: float | None = None, per_class: bool = False,
          reweight: str | None = None, out: str | Path | None = None, force: bool = False,
          **options) -> Selection:
    """Select (or reweight) examples by a measure (``sensprune prune``); returns a :class:`Selection`.

    ``table`` is a ScoreTable (from :func:`score`, the tracker or ``load_scores``) or a score folder.
    ``fraction`` is the fraction REMOVED. ``options``: ``min_per_class``, ``low``, ``high``, ``beta``,
    ``bins``, ``above``, ``below``, ``allow_empty_class``, ``seed`` (0..2**32-1), ``temperature`` (reweighting).
    ``out``: also write the ``sensprune prune`` folder there (``force`` replaces one), with the location of the
    data recorded relative to it as the CLI does, so that ``bench --selection`` finds the data when the folder
    and the data move together.
    """
    from sensprune.config import check_seed
    from sensprune.data.locate import record_location
    from sensprune.pruning.selection import save_selection
    from sensprune.pruning.stage import select
    from sensprune.scoring.table import ScoreTable, load_scores

    folder = None
    if isinstance(table, (str, Path)):
        folder = table
        if out is not None:
            prepare_out(out, force=force, inputs=[folder])  # checked before anything is read or written
        table = load_scores(table)
    elif out is not None:
        prepare_out(out, force=force)
    if not isinstance(table, ScoreTable):
        raise ValidationError(f"sp.prune: table must be a ScoreTable or a score folder; got {type(table).__name__}.")
    known = ("min_per_class", "low", "high", "beta", "bins", "above", "below", "allow_empty_class", "seed",
             "temperature")
    bad = [k for k in options if k not in known]
    if bad:
        raise ValidationError(f"sp.prune: unknown option(s) {', '.join(map(repr, bad))}. Valid: by, rule, fraction, "
                              f"per_class, reweight, {', '.join(known)}.")
    if "seed" in options:
        check_seed(options["seed"], "sp.prune: seed")
    temperature = options.pop("temperature", 1.0)
    if reweight is not None:
        extra = [k for k in options if k != "seed"]
        if extra:
            raise ValidationError(f"sp.prune: reweighting does not take {', '.join(extra)}.")
    sel = select(table, by, rule, reweight_method=reweight, temperature=temperature, fraction=fraction,
                 per_class=per_class, **options)
    if out is not None:  # folders that travel: where the data is, relative to out too (as sensprune prune)
        sel.meta["dataset"] = record_location(sel.meta["dataset"], out, read_from=folder)
        save_selection(sel, out, force=force)
    return sel


# -- stage 3 --------------------------------------------------------------------------------------------

@dataclass
class BenchResult:
    """Retrains of :func:`bench` (those of ``sensprune bench --selection``): one row per (seed, arm), and per arm
    the statistics of its ``summary.csv`` row.

    ``rows``: the rows of ``results.csv`` (``seed``, ``measure``, ``rule``, ``n_train``, ``test_acc``, ...), each
    with its ``arm``: ``full``, a selection's name, or ``random[<name>]`` (the random selection matched to it).
    ``summary``: per arm, ``n_train``, mean test accuracy ``test_acc`` with its 95% t interval ``ci``, ``seeds``,
    the paired difference to ``full`` (``vs_full``) and, for a selection, to its matched random selection
    (``vs_random``): ``diff``, ``ci``, ``p``; ``q_bh`` is the Benjamini–Hochberg adjusted p-value of its primary
    test (``vs``). ``out``: the folder written (``out=``), else None.
    """

    rows: list[dict[str, Any]]
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)
    out: Path | None = None

    def __str__(self) -> str:
        lines = [f"{'arm':<16}{'n_train':>8}{'test_acc':>10}{'±95%':>8}{'vs full':>9}{'vs random':>11}"]
        for arm, s in self.summary.items():
            vf, vr = s.get("vs_full", {}), s.get("vs_random", {})
            lines.append(f"{arm:<16}{s['n_train']:>8}{s['test_acc']:>10.4f}{s['ci']:>8.4f}"
                         f"{vf.get('diff', float('nan')):>+9.4f}{vr.get('diff', float('nan')):>+11.4f}")
        return "\n".join(lines)


def _arm(row: dict) -> str:
    """``full``, the selection's name, or ``random[<name>]`` for the random selection matched to it."""
    rule = str(row["rule"])
    if row["measure"] == "random" and rule.startswith("matched:"):
        return f"random[{rule[len('matched:'):]}]"
    return row["measure"]


def bench(data, *, selections: Mapping[str, Any], model="mlp", seeds: int = 5, epochs: int = 15,
          widths: Sequence[int] = (256, 128), dropout: float = 0.0, num_classes: int | None = None,
          out: str | Path | None = None, force: bool = False, progress: bool = False, **train_kw) -> BenchResult:
    """Does training on a selection help? ``sensprune bench --selection``'s retrains on your data and model.

    It calls the code of ``bench --selection`` (:func:`sensprune.benchmark.selection.bench_selections`): for each
    seed ``0..seeds-1`` it trains from scratch, with that seed (shared initial weights and batch order: the arms
    differ only by the mask, so the differences are paired), the ``full`` training set, each selection, and the
    random selection matched to it (as many examples per class, drawn with the seed; for a reweighting, its
    weights shuffled within each class), evaluates on the test split (required), and tests each selection
    against its baseline (paired t-test, Benjamini–Hochberg across the selections). The same prune folders and
    seeds give the same ``summary.csv`` as the CLI.

    ``selections`` maps a name to a :class:`Selection`, a ``sensprune prune`` folder, or a boolean
    keep-mask (N,). A selection's reweighting weights are used as loss weights. ``out``: also write the
    CLI's folder there (results.csv, summary.csv, verdict.md, meta.json; ``force`` replaces it).
    """
    from sensprune.benchmark.config import BenchConfig, GridSpec, ScoreSpec
    from sensprune.benchmark.selection import bench_selections, corruption_label, user_selection
    from sensprune.config import MAX_SEEDS
    from sensprune.pruning.selection import load_selection

    source = "sp.bench"
    ds = as_dataset(data, num_classes=num_classes, source=source)
    if not hasattr(ds, "x_test") or len(ds.y_test) == 0:
        raise ValidationError(f"{source}: the data needs a test split, e.g. (x_train, y_train, x_test, y_test).")
    if not isinstance(seeds, int) or isinstance(seeds, bool) or not 1 <= seeds <= MAX_SEEDS:
        raise ValidationError(f"{source}: seeds must be an integer in 1..{MAX_SEEDS}; got {seeds!r}.")
    if not isinstance(selections, Mapping) or not selections:
        raise ValidationError(f"{source}: selections must be a non-empty mapping name -> selection.")
    n = ds.n_train
    fp = fingerprint_arrays(ds.x_train, ds.y_train)
    sels, folders = [], []
    for name, sel in selections.items():
        if name in ("full",) or str(name).startswith("random"):
            raise ValidationError(f"{source}: the selection name {name!r} is reserved; choose another.")
        folder = None
        if isinstance(sel, (str, Path)):
            folder, sel = sel, load_selection(sel)
            folders.append(folder)
        if isinstance(sel, Selection):
            want = (sel.meta.get("dataset") or {}).get("train_fingerprint")
            if sel.n != n:
                raise ArtifactMismatchError(f"{source}: selection {name!r} covers {sel.n} examples, the data has {n}.")
            if want and want != fp:
                raise ArtifactMismatchError(f"{source}: selection {name!r} was made from other data "
                                            f"(fingerprint {want}, this data {fp}).")
        else:
            mask = np.asarray(sel)
            if mask.shape != (n,) or mask.dtype != bool:
                raise ValidationError(f"{source}: selection {name!r} must be a Selection, a prune folder or a "
                                      f"boolean mask of shape ({n},); got {mask.dtype} {mask.shape}.")
            sel = Selection(np.flatnonzero(mask), np.flatnonzero(~mask), meta={"rule": "given"})
        sels.append(user_selection(name, sel, folder))
    tcfg = _train_config(epochs, 0, train_kw, source)
    model_name, factory = _model(model, source)
    score = ScoreSpec(model=model_name if factory is None else "mlp", widths=tuple(widths), dropout=dropout)
    cfg = BenchConfig(grid=GridSpec(seeds=tuple(range(seeds))), train=tcfg, score=score)
    if out is not None:
        out = prepare_out(out, force=force, inputs=folders)  # checked before training; written at the end
    # rows are labelled with the dataset the selections were made from when it is this data (as the CLI does)
    made_from = (sels[0].meta.get("dataset") or {})
    same = made_from.get("fingerprint") is not None and made_from.get("fingerprint") == getattr(ds, "fingerprint", None)
    res = bench_selections(ds, sels, cfg, out, spec=made_from.get("spec", ds.spec) if same else ds.spec,
                           corruption=corruption_label(made_from) if same else "none",
                           model=None if factory is None else (model_name, factory), source=source,
                           progress=progress)  # which checks the model (one forward) before training
    rows = [{**r, "arm": _arm(r)} for r in res["results"]]
    summary = {}
    for r in res["summary"]:
        arm = _arm(r)
        k = r["n_train"]
        s = {"n_train": int(k) if np.isfinite(k) else k, "test_acc": r["test_acc_mean"],
             "ci": r["test_acc_ci95"], "seeds": r["n"], "q_bh": r["q_bh"], "vs": r["vs"]}
        if arm != "full":
            s["vs_full"] = {"diff": r["d_full_mean"], "ci": r["d_full_ci95"], "p": r["d_full_p"]}
        if arm in {u.name for u in sels}:
            s["vs_random"] = {"diff": r["d_random_mean"], "ci": r["d_random_ci95"], "p": r["d_random_p"]}
        summary[arm] = s
    return BenchResult(rows, summary, res["out"])
