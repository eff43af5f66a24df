"""The in-memory dataset every stage consumes."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from sensprune.errors import SensPruneWarning, ValidationError
from sensprune.io import fingerprint_arrays


@dataclass(frozen=True)
class Dataset:
    """A train/test split held as arrays.

    Attributes
    ----------
    x_train : ndarray, shape (N, ...), float32
        Training inputs (images scaled to [0, 1]; other data as given).
    y_train : ndarray, shape (N,), int64
        Training labels in ``0..num_classes-1``.
    x_test, y_test : as above, shape (M, ...) and (M,)
    num_classes : int
    spec : str
        The ``--dataset`` spec that produced it, e.g. ``"digits"``.
    info : dict
        JSON-able description: split rule, subsample, source files, ``input_range``
        (max - min of the training inputs, used to rescale CSR radii).
    train_files : list of str or None
        For folder datasets, the file behind each training example (for ``--export-data``).
    train_rows : ndarray (N,) int64 or None
        Where each training example sits in its source: the data row of a CSV file (0-based, header
        and blank lines not counted, as ``pandas.read_csv`` numbers them), the index in the NPZ
        file's ``x_train``, the index in the original dataset for builtin and torchvision datasets
        (e.g. the row of ``sklearn.datasets.load_digits().data``). None means ``0..N-1``.
        See :meth:`source_rows`.
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    num_classes: int
    spec: str
    info: dict[str, Any] = field(default_factory=dict)
    train_files: list[str] | None = None
    train_rows: np.ndarray | None = None

    def source_rows(self) -> np.ndarray:
        """(N,) where each training example comes from: the file path (relative to the folder) for
        ImageFolder datasets, else :attr:`train_rows` (int64; ``0..N-1`` when not set)."""
        return source_rows(self)

    @property
    def input_shape(self) -> tuple[int, ...]:
        return tuple(self.x_train.shape[1:])

    @property
    def n_train(self) -> int:
        return int(self.x_train.shape[0])

    @property
    def fingerprint(self) -> str:
        """Hash of the four arrays plus the spec: equal fingerprints mean the same data in the same order."""
        fp = self.__dict__.get("_fingerprint")
        if fp is None:
            fp = fingerprint_arrays(self.x_train, self.y_train, self.x_test, self.y_test, extra=self.spec)
            object.__setattr__(self, "_fingerprint", fp)
        return fp

    def train_source(self, device, workers: int = 0):
        """The training split as tensors on ``device`` (the loop's in-memory fast path)."""
        from sensprune.train.sources import ArraySource

        return ArraySource(self.x_train, self.y_train, device)

    def test_source(self, device, workers: int = 0):
        from sensprune.train.sources import ArraySource

        return ArraySource(self.x_test, self.y_test, device)

    def describe(self) -> dict[str, Any]:
        """JSON-able summary stored in every artifact's ``meta.json``."""
        return {
            "spec": self.spec,
            "fingerprint": self.fingerprint,
            "n_train": self.n_train,
            "n_test": int(self.x_test.shape[0]),
            "num_classes": int(self.num_classes),
            "input_shape": list(self.input_shape),
            **self.info,
        }


class DataWarning(SensPruneWarning):
    """Data that can be used but looks unintended (e.g. a class id with no training example)."""


def _shown(labels, limit: int = 20) -> str:
    labels = [int(v) for v in labels]
    more = f" (and {len(labels) - limit} more)" if len(labels) > limit else ""
    return ", ".join(map(str, labels[:limit])) + more


def _check_label_sets(y_train: np.ndarray, y_test: np.ndarray, k: int, source: str) -> list[int]:
    """Refuse fewer than 2 training classes and test labels unseen in training; warn about gaps in 0..K-1."""
    present = np.unique(y_train)
    if len(present) < 2:
        raise ValidationError(f"{source}: the training split has a single class (label {int(present[0])}); "
                              "at least 2 classes are needed to train a classifier.")
    unseen = np.setdiff1d(np.unique(y_test), present)
    if len(unseen):
        raise ValidationError(f"{source}: test labels {_shown(unseen)} never occur in the training split; "
                              "a model cannot learn them (remove those test examples or add training ones).")
    gaps = np.setdiff1d(np.arange(k), present)
    if len(gaps):
        warnings.warn(f"{source}: class ids {_shown(gaps)} of 0..{k - 1} have no training example; the model "
                      f"still has {k} outputs.", DataWarning, stacklevel=3)
    return gaps.tolist()


def source_rows(dataset) -> np.ndarray:
    """(N,) source of each training example of a Dataset or StreamedDataset (see ``Dataset.train_rows``)."""
    if getattr(dataset, "train_files", None) is not None:
        return np.array(dataset.train_files, dtype=str)
    rows = getattr(dataset, "train_rows", None)
    return np.arange(dataset.n_train, dtype=np.int64) if rows is None else np.asarray(rows, np.int64)


#: The most classes a dataset may have: a label is a class id, and K-sized tables are allocated from it.
MAX_CLASSES = 100_000


def make_dataset(x_train, y_train, x_test, y_test, *, spec: str, num_classes: int | None = None,
                 info: dict | None = None, train_files: list[str] | None = None,
                 train_rows=None, source: str = "data") -> Dataset:
    """Validate arrays and build a :class:`Dataset`.

    Inputs become float32 (uint8 is scaled to [0, 1]); labels become int64.
    Raises :class:`ValidationError` naming ``source`` for: mismatched lengths, zero
    examples, examples with no input value (shape ``(N, 0)``), complex inputs, labels outside
    ``0..K-1`` or non-integer, NaN/inf features, fewer than 2 classes
    in the training split, test labels that never occur in training. Warns
    (:class:`DataWarning`) when a class id in ``0..K-1`` has no training example, and records
    those ids in ``info["classes_without_training_examples"]``.
    """
    arrays = {}
    for name, arr in (("x_train", x_train), ("y_train", y_train), ("x_test", x_test), ("y_test", y_test)):
        arr = np.asarray(arr)
        if arr.dtype == object:
            raise ValidationError(f"{source}: {name} has non-numeric values.")
        arrays[name] = arr
    for split in ("train", "test"):
        x, y = arrays[f"x_{split}"], arrays[f"y_{split}"]
        if x.ndim < 2:
            raise ValidationError(f"{source}: x_{split} must have shape (N, ...); got {x.shape}.")
        if y.ndim != 1:
            raise ValidationError(f"{source}: y_{split} must have shape (N,); got {y.shape}.")
        if len(x) != len(y):
            raise ValidationError(f"{source}: x_{split} has {len(x)} rows but y_{split} has {len(y)}.")
        if len(x) == 0:
            raise ValidationError(f"{source}: the {split} split has zero examples.")
    if arrays["x_train"].shape[1:] != arrays["x_test"].shape[1:]:
        raise ValidationError(f"{source}: x_train rows have shape {arrays['x_train'].shape[1:]} "
                              f"but x_test rows have {arrays['x_test'].shape[1:]}.")
    if 0 in arrays["x_train"].shape[1:]:  # (N, 0): nothing to learn from, and no input range
        raise ValidationError(f"{source}: each example must have at least one input value; got x_train of shape "
                              f"{arrays['x_train'].shape}.")
    xs = {}
    for name in ("x_train", "x_test"):
        x = arrays[name]
        if x.dtype == np.uint8:
            x = x.astype(np.float32) / 255.0
        elif not np.issubdtype(x.dtype, np.number) and x.dtype != np.bool_:
            raise ValidationError(f"{source}: {name} has dtype {x.dtype}, expected numbers.")
        elif np.iscomplexobj(x):  # float32 would drop the imaginary part without a word
            raise ValidationError(f"{source}: {name} must hold real numbers; got dtype {x.dtype}.")
        if not np.isfinite(x).all():
            raise ValidationError(f"{source}: {name} contains NaN or inf values.")
        big = float(np.finfo(np.float32).max)
        if np.issubdtype(x.dtype, np.floating) and x.size and float(np.abs(x).max()) > big:  # would cast to inf
            raise ValidationError(f"{source}: {name} values must fit in float32 (|x| <= {big:.3g}); got "
                                  f"{float(np.abs(x).max()):.3g}.")
        x = np.ascontiguousarray(x, dtype=np.float32)
        xs[name] = x
    ys = {}
    for name in ("y_train", "y_test"):
        y = arrays[name]
        if np.issubdtype(y.dtype, np.floating):
            if not np.isfinite(y).all() or not np.all(y == np.round(y)):
                raise ValidationError(f"{source}: {name} must hold integer class labels.")
        elif not np.issubdtype(y.dtype, np.integer):
            raise ValidationError(f"{source}: {name} has dtype {y.dtype}, expected integer labels.")
        ys[name] = y.astype(np.int64)
    top = int(max(ys["y_train"].max(), ys["y_test"].max()))
    if top >= MAX_CLASSES or (num_classes is not None and int(num_classes) > MAX_CLASSES):
        # checked before anything of size K is allocated (one-hot targets, per-class tables)
        raise ValidationError(f"{source}: labels must be class ids below {MAX_CLASSES}; got "
                              f"{max(top, int(num_classes or 0))} (map class names or sparse ids to 0..K-1).")
    k = int(num_classes) if num_classes is not None else top + 1
    for name, y in ys.items():
        if y.min() < 0 or y.max() >= k:
            raise ValidationError(f"{source}: {name} has labels outside 0..{k - 1} "
                                  f"(found {int(y.min())}..{int(y.max())}).")
    gaps = _check_label_sets(ys["y_train"], ys["y_test"], k, source)
    info = dict(info or {})
    if gaps:
        info["classes_without_training_examples"] = gaps
    info.setdefault("input_range", float(xs["x_train"].max() - xs["x_train"].min()))
    if train_rows is not None:
        train_rows = np.asarray(train_rows, dtype=np.int64)
        if train_rows.shape != (len(ys["y_train"]),):
            raise ValidationError(f"{source}: train_rows has shape {train_rows.shape}, expected "
                                  f"({len(ys['y_train'])},).")
    return Dataset(xs["x_train"], ys["y_train"], xs["x_test"], ys["y_test"], k, spec, info, train_files,
                   train_rows)
