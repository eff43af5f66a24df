"""Label and input corruption for the noise-detection benchmarks (docs/measures.md §7). Pure numpy.

Every function is deterministic given ``seed`` (``numpy.random.default_rng(seed)``) and
never touches global random state. Only the training split is corrupted.

Kinds (``apply_corruption``)
----------------------------
``none``
    Unchanged.
``randY``
    ``round(fraction * N)`` training labels, chosen uniformly without replacement, are each
    replaced by a uniformly random *different* class (symmetric noise).
``randY-asym``
    The same number of labels are mapped by the fixed class map ``c -> (c + 1) % K``.
``randY-uniform``
    The same number of labels are each redrawn uniformly from all K classes (so about 1/K of
    them keep their class): the "random labels" of Zhang et al. (2017) and Arpit et al. (2017).
``randX``
    ``round(fraction * N)`` training inputs are replaced by i.i.d. Gaussian noise with the
    (clean) training set's per-feature mean and standard deviation.
``unique``
    Every training example becomes its own class (``K = N``, labels ``0..N-1``): the
    pure-memorisation control. Test labels are kept but test accuracy is meaningless.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sensprune.config import NOISE_KINDS  # noqa: F401  (defined there without numpy, for the CLI)
from sensprune.data.base import Dataset
from sensprune.errors import ValidationError


def _check_fraction(fraction, owner: str) -> float:
    try:
        value = float(fraction)
    except (TypeError, ValueError):
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise ValidationError(f"The 'fraction' parameter of {owner} must be a float in [0, 1]; "
                              f"got {fraction!r}.")
    return value


def _pick(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    k = int(round(fraction * n))
    return np.sort(rng.choice(n, size=k, replace=False)).astype(np.int64)


def corrupt_labels(y, num_classes: int, fraction: float, *, mode: str = "symmetric",
                   seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Replace a fraction of labels by wrong classes.

    Parameters
    ----------
    y : array-like of int, shape (N,)
        Labels in ``0..num_classes-1``.
    num_classes : int
        K, at least 2.
    fraction : float in [0, 1]
        ``round(fraction * N)`` labels are changed.
    mode : {"symmetric", "asymmetric"}
        Symmetric: a uniformly random class different from the true one. Asymmetric: the
        fixed class map ``c -> (c + 1) % K``.
    seed : int

    Returns
    -------
    y_new : ndarray of int64, shape (N,)
        A copy; every label at ``corrupted_idx`` differs from the original.
    corrupted_idx : ndarray of int64, shape (round(fraction * N),), sorted
    """
    fraction = _check_fraction(fraction, "corrupt_labels")
    y = np.asarray(y).astype(np.int64)
    k = int(num_classes)
    if mode not in ("symmetric", "asymmetric"):
        raise ValidationError(f"The 'mode' parameter of corrupt_labels must be 'symmetric' or "
                              f"'asymmetric'; got {mode!r}.")
    if k < 2:
        raise ValidationError(f"corrupt_labels: num_classes must be >= 2 (a flip needs at least 2 classes); got {k}.")
    if y.ndim != 1 or (y.size and (y.min() < 0 or y.max() >= k)):
        raise ValidationError(f"corrupt_labels: y must have shape (N,) with labels in 0..{k - 1}.")
    rng = np.random.default_rng(seed)
    idx = _pick(len(y), fraction, rng)
    y_new = y.copy()
    if mode == "symmetric":
        y_new[idx] = (y[idx] + rng.integers(1, k, size=len(idx))) % k
    else:
        y_new[idx] = (y[idx] + 1) % k
    return y_new, idx


def uniform_random_labels(y, num_classes: int, fraction: float, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Redraw ``round(fraction * N)`` labels uniformly from all ``num_classes`` classes (``randY-uniform``).

    Unlike :func:`corrupt_labels` (always a *different* class), a redrawn label equals the original
    with probability 1/K: at fraction 1 the labels are independent of the inputs, the "random
    labels" of Arpit et al. (2017, §2). Returns (y_new int64 (N,), redrawn indices int64, sorted).
    """
    fraction = _check_fraction(fraction, "uniform_random_labels")
    y = np.asarray(y).astype(np.int64)
    k = int(num_classes)
    if k < 2 or y.ndim != 1 or (y.size and (y.min() < 0 or y.max() >= k)):
        raise ValidationError(f"uniform_random_labels: y must have shape (N,) with labels in 0..{k - 1} (K >= 2).")
    rng = np.random.default_rng(seed)
    idx = _pick(len(y), fraction, rng)
    y_new = y.copy()
    y_new[idx] = rng.integers(0, k, size=len(idx))
    return y_new, idx


def corrupt_inputs(x, fraction: float, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Replace a fraction of inputs by Gaussian noise matching the per-feature mean and std.

    Parameters
    ----------
    x : array-like, shape (N, ...)
        Training inputs; mean and std are computed over all N (before corruption).
    fraction : float in [0, 1]
    seed : int

    Returns
    -------
    x_new : ndarray of float32, shape (N, ...)
        A copy with ``round(fraction * N)`` rows replaced.
    corrupted_idx : ndarray of int64, sorted
    """
    fraction = _check_fraction(fraction, "corrupt_inputs")
    x = np.asarray(x, dtype=np.float32)
    if x.ndim < 2:
        raise ValidationError(f"corrupt_inputs: x must have shape (N, ...); got {x.shape}.")
    rng = np.random.default_rng(seed)
    idx = _pick(len(x), fraction, rng)
    mean = x.mean(axis=0, dtype=np.float64)
    std = x.std(axis=0, dtype=np.float64)
    x_new = x.copy()
    if len(idx):
        noise = rng.standard_normal((len(idx),) + x.shape[1:])
        x_new[idx] = (mean + std * noise).astype(np.float32)
    return x_new, idx


def unique_class_labels(n: int) -> np.ndarray:
    """Labels ``0..n-1``: every example its own class. Shape (n,), int64."""
    return np.arange(int(n), dtype=np.int64)


def apply_corruption(dataset: Dataset, kind: str, fraction: float,
                     seed: int) -> tuple[Dataset, np.ndarray]:
    """Corrupt the training split of ``dataset``; the test split is never changed.

    Parameters
    ----------
    dataset : Dataset
    kind : {"none", "randY", "randY-asym", "randY-uniform", "randX", "unique"}
    fraction : float in [0, 1]
        Ignored (but still checked) for "none" and "unique".
    seed : int

    Returns
    -------
    dataset : Dataset
        A new Dataset whose ``spec`` is suffixed (``digits+randY0.2s0``, ``digits+unique``)
        and whose ``info["corruption"]`` records kind, fraction, seed and count.
    corrupted_idx : ndarray of int64, sorted
        Training indices that were corrupted (all of them for "unique", none for "none").
    """
    fraction = _check_fraction(fraction, "apply_corruption")
    if kind not in NOISE_KINDS:
        raise ValidationError(f"Unknown corruption {kind!r}. Choose one of: {', '.join(NOISE_KINDS)}.")
    n = dataset.n_train
    if kind == "none":
        return dataset, np.zeros(0, dtype=np.int64)
    x, y, k = dataset.x_train, dataset.y_train, dataset.num_classes
    info = dict(dataset.info)
    record = {"kind": kind, "fraction": fraction, "seed": int(seed)}
    if kind in ("randY", "randY-asym"):
        mode = "symmetric" if kind == "randY" else "asymmetric"
        y, idx = corrupt_labels(y, k, fraction, mode=mode, seed=seed)
        record["mode"] = mode
        suffix = f"{kind}{fraction:g}s{seed}"
    elif kind == "randY-uniform":
        y, idx = uniform_random_labels(y, k, fraction, seed=seed)
        record["mode"] = "uniform over all classes"
        suffix = f"randYu{fraction:g}s{seed}"
    elif kind == "randX":
        x, idx = corrupt_inputs(x, fraction, seed=seed)
        suffix = f"randX{fraction:g}s{seed}"
    else:
        y, idx, k = unique_class_labels(n), np.arange(n, dtype=np.int64), n
        record["fraction"] = 1.0
        record["note"] = "every training example is its own class; test accuracy is meaningless"
        info["test_accuracy_meaningful"] = False
        suffix = "unique"
    record["n_corrupted"] = int(len(idx))
    info["corruption"] = record
    new = dataclasses.replace(dataset, x_train=x, y_train=y, num_classes=k,
                              spec=f"{dataset.spec}+{suffix}", info=info)
    return new, idx
