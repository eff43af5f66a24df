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
import itertools
import types
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from sensprune.data.base import Dataset, make_dataset
from sensprune.errors import ArtifactMismatchError, ValidationError
from sensprune.io import fingerprint_arrays, prepare_out_dir
from sensprune.pruning.selection import Selection as _Selection

__all__ = ["score", "prune", "bench", "as_dataset", "Selection", "BenchResult", "train_fingerprint"]

#: TrainConfig fields that :func:`score` and :func:`bench` accept as keyword arguments.
TRAIN_KEYS = ("batch_size", "optimizer", "lr", "momentum", "weight_decay", "schedule", "device",
              "eval_batch_size", "amp", "compile", "augment")
#: Name of data given as arrays, tensors or a torch Dataset (the spec of its fingerprint).
ARRAYS_SPEC = "python:arrays"

# user models handed to the score stage as ``plugin:sensprune.api:_user_models.<key>`` while it runs
_user_models = types.SimpleNamespace()
_model_keys = itertools.count()


def _numpy(a, name: str, source: str) -> np.ndarray:
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # a torch tensor, on any device
        a = a.detach().cpu().numpy()
    try:
        return np.asarray(a)
    except Exception as exc:
        raise ValidationError(f"{source}: {name} cannot be read as an array ({exc}).") from None


def _read_torch_dataset(ds, name: str, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Stack every ``(x, y)`` item of a map-style dataset (read once, in index order)."""
    try:
        n = len(ds)
    except TypeError:
        raise ValidationError(f"{source}: {name} must be a map-style Dataset with a length.") from None
    if n == 0:
        raise ValidationError(f"{source}: {name} has zero examples.")
    xs, ys = [], []
    for i in range(n):
        item = ds[i]
        if not isinstance(item, (tuple, list)) or len(item) < 2:
            raise ValidationError(f"{source}: {name}[{i}] must be an (x, y) pair; got {type(item).__name__}.")
        xs.append(_numpy(item[0], f"{name}[{i}] x", source))
        ys.append(_numpy(item[1], f"{name}[{i}] y", source))
    try:
        return np.stack(xs), np.asarray(ys).reshape(n)
    except ValueError as exc:
        raise ValidationError(f"{source}: the items of {name} differ in shape ({exc}).") from None


def _is_torch_dataset(obj) -> bool:
    """A map-style dataset: indexable with a length, and not an array, tensor, sequence, mapping or string."""
    if isinstance(obj, (np.ndarray, tuple, list, str, bytes, Mapping)) or hasattr(obj, "shape"):
        return False
    return hasattr(obj, "__getitem__") and hasattr(obj, "__len__")


def _split(data, source: str):
    """(x_train, y_train, x_test or None, y_test or None) as numpy arrays from the accepted forms."""
    if _is_torch_dataset(data):
        return (*_read_torch_dataset(data, "the dataset", source), None, None)
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(_is_torch_dataset(d) for d in data):
        return (*_read_torch_dataset(data[0], "the training set", source),
                *_read_torch_dataset(data[1], "the test set", source))
    if isinstance(data, (tuple, list)) and len(data) in (2, 4):
        arrs = [_numpy(a, n, source) for a, n in zip(data, ("x_train", "y_train", "x_test", "y_test"))]
        return (*arrs, None, None) if len(arrs) == 2 else tuple(arrs)
    raise ValidationError(f"{source}: data must be (x_train, y_train), (x_train, y_train, x_test, y_test), "
                          f"a map-style torch Dataset returning (x, y), a sensprune Dataset or a --dataset spec; got "
                          f"{type(data).__name__}.")


def as_dataset(data, *, num_classes: int | None = None, source: str = "sp.score"):
    """A :class:`sensprune.data.Dataset` from any accepted form (see the module docstring).

    Without a test split the result has an empty one (no test accuracy is measured). Mismatched
    lengths, a single class, labels that are not integers in ``0..K-1``, NaN inputs: ValidationError.
    """
    if isinstance(data, Dataset) or (hasattr(data, "train_source") and hasattr(data, "y_train")):
        return data
    if isinstance(data, str):  # a --dataset spec, as on the command line
        from sensprune.data import load_dataset

        return load_dataset(data)
    x, y, xt, yt = _split(data, source)
    if x.ndim < 1 or y.ndim != 1 or len(x) != len(y):
        raise ValidationError(f"{source}: x_train has {len(x) if x.ndim else 0} rows but y_train has shape "
                              f"{y.shape}; they must have the same length N.")
    if x.ndim == 1:
        x = x[:, None]
    if len(y) and np.unique(y).size < 2:
        raise ValidationError(f"{source}: y_train has a single class ({y.flat[0]!r}); at least 2 classes are "
                              "needed to train a classifier.")
    if xt is None:
        ds = make_dataset(x, y, x[:1], y[:1], spec=ARRAYS_SPEC, num_classes=num_classes, source=source)
        return _NoTestSplit(ds.x_train, ds.y_train, ds.x_train[:0], ds.y_train[:0], ds.num_classes, ds.spec,
                            {**ds.info, "split": "no test split given"})
    if xt.ndim == 1:
        xt = xt[:, None]
    return make_dataset(x, y, xt, yt, spec=ARRAYS_SPEC, num_classes=num_classes,
                        info={"split": "given in Python"}, source=source)


class _NoTestSplit(Dataset):
    """A :class:`~sensprune.data.Dataset` whose test split is empty: the loop measures no test accuracy."""

    def test_source(self, device, workers: int = 0):
        return None


def train_fingerprint(data) -> str | None:
    """Fingerprint of a training split (inputs as float32, labels as int64), or None when it has none.

    Arrays/tensors tuples, sensprune Datasets and ``TensorDataset`` have one; other torch Datasets do not
    (reading them all would be needed).
    """
    if hasattr(data, "x_train") and hasattr(data, "y_train"):
        return fingerprint_arrays(np.asarray(data.x_train), np.asarray(data.y_train))
    tensors = getattr(data, "tensors", None)  # torch.utils.data.TensorDataset
    if isinstance(data, (tuple, list)) and len(data) in (2, 4) and not _is_torch_dataset(data[0]):
        pair = data[:2]
    elif isinstance(tensors, tuple) and len(tensors) == 2:
        pair = tensors
    else:
        return None
    ds = as_dataset(tuple(pair), source="fingerprint")
    return fingerprint_arrays(ds.x_train, ds.y_train)


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


class _UserModel:
    """Registers a user model as a ``plugin:`` name for the duration of a ``with`` block."""

    def __init__(self, model, source: str):
        self.model, self.source, self.key = model, source, None

    def __enter__(self) -> str:
        if isinstance(self.model, str):
            return self.model
        self.key = f"m{next(_model_keys)}"
        setattr(_user_models, self.key, _factory(self.model, self.source))
        return f"plugin:sensprune.api:_user_models.{self.key}"

    def __exit__(self, *exc):
        if self.key is not None:
            delattr(_user_models, self.key)

    def describe(self) -> str:
        m = self.model
        if isinstance(m, str):
            return m
        name = type(m).__name__ if hasattr(m, "forward") else getattr(m, "__qualname__", type(m).__name__)
        return f"python:{name}"


def _train_config(epochs: int, seed: int, train_kw: Mapping[str, Any], source: str):
    from sensprune.config import TrainConfig

    bad = [k for k in train_kw if k not in TRAIN_KEYS]
    if bad:
        raise ValidationError(f"{source}: unknown keyword argument(s) {', '.join(map(repr, bad))}. Valid: "
                              f"epochs, seed, {', '.join(TRAIN_KEYS)} (and the function's own).")
    return TrainConfig(epochs=epochs, seed=seed, **train_kw)


# -- stage 1 --------------------------------------------------------------------------------------------

def score(data, *, measures: Sequence[str] | None = None, model="mlp", epochs: int = 15, seed: int = 0,
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
        Warmup epochs, base seed, number of warmup runs (seeds ``seed .. seed+seeds-1``).
    measure_options : dict or :class:`sensprune.config.MeasureOptions`
        ``horizon``, ``probe_size``, ... — an unknown key is refused with the valid keys listed.
    out : path, optional
        Also write the score folder (``scores.npz``, ``scores.csv``, ``meta.json``) there.
    **train_kw
        :data:`TRAIN_KEYS` (``batch_size``, ``lr``, ``optimizer``, ``device`` (default ``"auto"``: CUDA if
        available, else MPS, else CPU), ...).
    """
    from sensprune import measures as M
    from sensprune.scoring.stage import ScoreConfig
    from sensprune.scoring.stage import score as _score
    from sensprune.scoring.table import save_scores

    source = "sp.score"
    dataset = as_dataset(data, num_classes=num_classes, source=source)
    tcfg = _train_config(epochs, seed, train_kw, source)
    if out is not None:
        out = prepare_out_dir(out, force=force)  # checked before training; written at the end
    user = _UserModel(model, source)
    with user as model_name:
        cfg = ScoreConfig(dataset=dataset.spec, model=model_name, widths=tuple(widths), dropout=dropout,
                          measures=tuple(measures if measures is not None else M.DEFAULT_MEASURES), seeds=seeds,
                          el2n_epoch=el2n_epoch, at_checkpoints=tuple(at_checkpoints) if at_checkpoints else None,
                          measure_options=measure_options, train=tcfg)
        table = _score(dataset, cfg, progress=progress)
    table.meta["model_python"] = user.describe()
    if hasattr(dataset, "x_train"):
        table.meta["dataset"]["train_fingerprint"] = fingerprint_arrays(dataset.x_train, dataset.y_train)
    if out is not None:
        save_scores(table, out)
    return table


# -- stage 2 --------------------------------------------------------------------------------------------

@dataclass
class Selection(_Selection):
    """A :class:`sensprune.pruning.selection.Selection` with the facade's methods ``subset``, ``sampler``, ``save``."""

    def subset(self, data):
        """``torch.utils.data.Subset`` of the kept examples of ``data`` (a torch Dataset, arrays or a Dataset).

        The length must match, and the training data's fingerprint where both sides have one (arrays,
        tensors, ``TensorDataset`` or a sensprune Dataset against a table made by :func:`score` or the
        tracker with inputs): other data of the same length is refused.
        """
        from sensprune.pruning.selection import as_subset

        want = (self.meta.get("dataset") or {}).get("train_fingerprint")
        if isinstance(data, (tuple, list)) and not _is_torch_dataset(data[0]):
            import torch
            from torch.utils.data import TensorDataset

            ds = as_dataset(tuple(data[:2]), source="sel.subset")
            have = fingerprint_arrays(ds.x_train, ds.y_train)
            data = TensorDataset(torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train))
        else:
            have = train_fingerprint(data) if want else None
        if want and have and want != have and len(data) == self.n:  # (another length: as_subset says so)
            raise ArtifactMismatchError(f"sel.subset: this data has training fingerprint {have}, but the selection "
                                        f"was made from data with fingerprint {want}; it indexes other data.")
        return as_subset(data, self)

    def sampler(self, **kw):
        """``WeightedRandomSampler`` (see :func:`sensprune.pruning.selection.as_sampler`)."""
        from sensprune.pruning.selection import as_sampler

        return as_sampler(self, **kw)

    def save(self, out: str | Path, *, force: bool = False) -> Path:
        """Write the ``sensprune prune`` folder (keep.npy, drop.npy, selection.csv, meta.json)."""
        from sensprune.pruning.selection import save_selection

        return save_selection(self, out, force=force)


def prune(table, *, by, rule: str | None = None, fraction: float | None = None, per_class: bool = False,
          reweight: str | None = None, **options) -> Selection:
    """Select (or reweight) examples by a measure (``sensprune prune``); returns a :class:`Selection`.

    ``table`` is a ScoreTable (from :func:`score`, the tracker or ``load_scores``) or a score folder.
    ``fraction`` is the fraction REMOVED. ``options``: ``min_per_class``, ``low``, ``high``, ``beta``,
    ``bins``, ``above``, ``below``, ``allow_empty_class``, ``seed``, ``temperature`` (reweighting).
    """
    from sensprune.pruning.stage import select
    from sensprune.scoring.table import ScoreTable, load_scores

    if isinstance(table, (str, Path)):
        table = load_scores(table)
    if not isinstance(table, ScoreTable):
        raise ValidationError(f"sp.prune: table must be a ScoreTable or a score folder; got {type(table).__name__}.")
    known = ("min_per_class", "low", "high", "beta", "bins", "above", "below", "allow_empty_class", "seed",
             "temperature")
    bad = [k for k in options if k not in known]
    if bad:
        raise ValidationError(f"sp.prune: unknown option(s) {', '.join(map(repr, bad))}. Valid: by, rule, fraction, "
                              f"per_class, reweight, {', '.join(known)}.")
    temperature = options.pop("temperature", 1.0)
    if reweight is not None:
        extra = [k for k in options if k != "seed"]
        if extra:
            raise ValidationError(f"sp.prune: reweighting does not take {', '.join(extra)}.")
    sel = select(table, by, rule, reweight_method=reweight, temperature=temperature, fraction=fraction,
                 per_class=per_class, **options)
    return Selection(**{f.name: getattr(sel, f.name) for f in fields(sel)})


# -- stage 3 --------------------------------------------------------------------------------------------

@dataclass
class BenchResult:
    """Retrains of :func:`bench`: one row per (seed, arm) and paired differences per arm.

    ``rows``: dicts with ``arm``, ``seed``, ``n_train``, ``test_acc``, ``test_loss``. ``summary``: per arm,
    mean test accuracy with its 95% t interval, and the paired difference to ``full`` and to
    ``random`` (same number kept, same seeds) with its interval and p-value.
    """

    rows: list[dict[str, Any]]
    summary: dict[str, dict[str, Any]] = field(default_factory=dict)

    def __str__(self) -> str:
        lines = [f"{'arm':<16}{'n_train':>8}{'test_acc':>10}{'±95%':>8}{'vs full':>9}{'vs random':>11}"]
        for arm, s in self.summary.items():
            vf, vr = s.get("vs_full", {}), s.get("vs_random", {})
            lines.append(f"{arm:<16}{s['n_train']:>8}{s['test_acc']:>10.4f}{s['ci']:>8.4f}"
                         f"{vf.get('diff', float('nan')):>+9.4f}{vr.get('diff', float('nan')):>+11.4f}")
        return "\n".join(lines)


def bench(data, *, selections: Mapping[str, Any], model="mlp", seeds: int = 5, epochs: int = 15,
          widths: Sequence[int] = (256, 128), dropout: float = 0.0, num_classes: int | None = None,
          progress: bool = False, **train_kw) -> BenchResult:
    """Does training on a selection help? Paired retrains (``sensprune bench``'s design) on your data.

    For each seed ``0..seeds-1`` it trains from scratch, with that seed (shared initial weights and
    batch order: the arms differ only by the mask, so the differences are paired), the ``full`` training
    set, each selection, and a ``random`` selection keeping as many examples per selection (per class
    when the selection was made per class; for a reweighting, its weights shuffled within each class),
    and evaluates on the test split (required). ``sensprune bench --selection`` does the same from prune
    folders with a reloadable ``--dataset`` spec; this function works on in-memory data and your model.

    ``selections`` maps a name to a :class:`Selection`, a ``sensprune prune`` folder, or a boolean
    keep-mask (N,). A selection's reweighting weights are used as loss weights.
    """
    from sensprune.benchmark.stats import mean_ci, paired_t
    from sensprune.pruning.rules import keep_mask
    from sensprune.pruning.selection import load_selection
    from sensprune.train.loop import resolve_device, train
    from sensprune.train.models import build_model
    from sensprune.train.sources import ArraySource, evaluate

    source = "sp.bench"
    ds = as_dataset(data, num_classes=num_classes, source=source)
    if not hasattr(ds, "x_test") or len(ds.y_test) == 0:
        raise ValidationError(f"{source}: the data needs a test split, e.g. (x_train, y_train, x_test, y_test).")
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise ValidationError(f"{source}: seeds must be an integer >= 1; got {seeds!r}.")
    if not isinstance(selections, Mapping) or not selections:
        raise ValidationError(f"{source}: selections must be a non-empty mapping name -> selection.")
    n = ds.n_train
    fp = fingerprint_arrays(ds.x_train, ds.y_train)
    arms: dict[str, tuple[np.ndarray, np.ndarray | None, bool]] = {}
    for name, sel in selections.items():
        if name in ("full",) or str(name).startswith("random"):
            raise ValidationError(f"{source}: the selection name {name!r} is reserved; choose another.")
        if isinstance(sel, (str, Path)):
            sel = load_selection(sel)
        if isinstance(sel, _Selection):
            want = (sel.meta.get("dataset") or {}).get("train_fingerprint")
            if sel.n != n:
                raise ArtifactMismatchError(f"{source}: selection {name!r} covers {sel.n} examples, the data has {n}.")
            if want and want != fp:
                raise ArtifactMismatchError(f"{source}: selection {name!r} was made from other data "
                                            f"(fingerprint {want}, this data {fp}).")
            per_class = bool((sel.meta.get("parameters") or {}).get("per_class"))
            arms[name] = (sel.mask(), sel.weights, per_class)
        else:
            mask = np.asarray(sel)
            if mask.shape != (n,) or mask.dtype != bool:
                raise ValidationError(f"{source}: selection {name!r} must be a Selection, a prune folder or a "
                                      f"boolean mask of shape ({n},); got {mask.dtype} {mask.shape}.")
            arms[name] = (mask, None, False)
    tcfg = _train_config(epochs, 0, train_kw, source)
    device = resolve_device(tcfg.device)
    train_src = ArraySource(ds.x_train, ds.y_train, device)
    test_src = ArraySource(ds.x_test, ds.y_test, device)
    rows: list[dict[str, Any]] = []
    with _UserModel(model, source) as model_name:
        def build():
            return build_model(model_name, ds.num_classes, ds.input_shape, widths=widths, dropout=dropout)
        for s in range(seeds):
            cfg = replace(tcfg, seed=s)
            plan = [("full", None, None)]
            for name, (mask, w, per_class) in arms.items():
                rmask, rw = np.ones(n, bool), None
                if mask.sum() < n:
                    rmask = keep_mask(np.zeros(n), "random", fraction=1 - mask.sum() / n, labels=ds.y_train,
                                      per_class=per_class, seed=s)
                if w is not None:  # a reweighting: its weights shuffled within each class (as bench --selection)
                    rng, rw = np.random.default_rng(s), np.array(w, np.float64)
                    for c in np.unique(ds.y_train):
                        members = np.flatnonzero(ds.y_train == c)
                        rw[members] = rng.permutation(rw[members])
                plan += [(name, mask, w), (f"random[{name}]", rmask, rw)]
            for arm, mask, w in plan:
                res = train(build, train_src, cfg, mask=mask, weights=w, progress=progress, desc=f"{arm} s{s}")
                ev = evaluate(res.model, test_src, cfg.eval_batch_size)
                rows.append({"arm": arm, "seed": s, "n_train": int(n if mask is None else mask.sum()),
                             "test_acc": ev["acc"], "test_loss": ev["loss"]})
    by_arm: dict[str, list[dict]] = {}
    for r in rows:
        by_arm.setdefault(r["arm"], []).append(r)
    acc = {a: [r["test_acc"] for r in rs] for a, rs in by_arm.items()}
    summary = {}
    for arm, rs in by_arm.items():
        m, _, k, half = mean_ci(acc[arm])
        summary[arm] = {"n_train": rs[0]["n_train"], "test_acc": m, "ci": half, "seeds": k}
        if arm != "full":
            d, h, _, p = paired_t(acc[arm], acc["full"])
            summary[arm]["vs_full"] = {"diff": d, "ci": h, "p": p}
        if arm in arms:
            d, h, _, p = paired_t(acc[arm], acc[f"random[{arm}]"])
            summary[arm]["vs_random"] = {"diff": d, "ci": h, "p": p}
    return BenchResult(rows, summary)
