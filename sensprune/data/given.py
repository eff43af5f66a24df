"""Data given in Python: arrays, tensors or a map-style torch ``Dataset`` as a :class:`~sensprune.data.Dataset`.

The forms :func:`sensprune.score`, :func:`sensprune.bench`, the Tracker and ``Selection.subset`` accept:
a tuple ``(x_train, y_train)`` or ``(x_train, y_train, x_test, y_test)`` of numpy arrays or torch tensors;
a map-style ``torch.utils.data.Dataset`` returning ``(x, y)`` (or a pair of them, train and test), read once
into memory; a :class:`sensprune.data.Dataset`; or a ``--dataset`` spec string. Only numpy is imported at
the top.
"""

from __future__ import annotations

from typing import Mapping

import numpy as np

from sensprune.data.base import Dataset, make_dataset
from sensprune.errors import ValidationError
from sensprune.io import fingerprint_arrays

#: Name of data given as arrays, tensors or a torch Dataset (the spec of its fingerprint).
ARRAYS_SPEC = "python:arrays"


def _numpy(a, name: str, source: str) -> np.ndarray:
    if hasattr(a, "detach") and hasattr(a, "cpu"):  # a torch tensor, on any device
        a = a.detach().cpu().numpy()
    try:
        arr = np.asarray(a)
    except Exception as exc:
        raise ValidationError(f"{source}: {name} cannot be read as an array ({exc}).") from None
    if arr.dtype == object:  # None or mixed types: comparing them (np.unique) would raise TypeError
        raise ValidationError(f"{source}: {name} must hold numbers; got an array of Python objects (dtype object).")
    return arr


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


def is_torch_dataset(obj) -> bool:
    """A map-style dataset: indexable with a length, and not an array, tensor, sequence, mapping or string."""
    if isinstance(obj, (np.ndarray, tuple, list, str, bytes, Mapping)) or hasattr(obj, "shape"):
        return False
    return hasattr(obj, "__getitem__") and hasattr(obj, "__len__")


def _split(data, source: str):
    """(x_train, y_train, x_test or None, y_test or None) as numpy arrays from the accepted forms."""
    if is_torch_dataset(data):
        return (*_read_torch_dataset(data, "the dataset", source), None, None)
    if isinstance(data, (tuple, list)) and len(data) == 2 and all(is_torch_dataset(d) for d in data):
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
    if isinstance(data, (tuple, list)) and len(data) in (2, 4) and not is_torch_dataset(data[0]):
        pair = data[:2]
    elif isinstance(tensors, tuple) and len(tensors) == 2:
        pair = tensors
    else:
        return None
    ds = as_dataset(tuple(pair), source="fingerprint")
    return fingerprint_arrays(ds.x_train, ds.y_train)
