"""Gini coefficient and Lorenz curve of per-example scores (docs/measures.md §4; Arpit et al. 2017, §3.2)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np


def gini(values: np.ndarray) -> float:
    """Gini coefficient of non-negative ``values`` (N,).

    G = 2·Σ i·v_(i) / (N·Σ v) − (N+1)/N with v sorted ascending and i = 1..N: 0 when all values
    are equal, approaching 1 when one example holds everything. Signed values are shifted by their
    minimum first (a choice of ours, stated in ``meta.json``); NaNs are ignored; all-zero → 0.
    """
    v = np.asarray(values, dtype=np.float64).ravel()
    finite = np.isfinite(v)
    if not finite.all():
        v = v[finite]
    if v.size == 0:
        return float("nan")
    lowest = v.min()
    if lowest < 0:
        v = v - lowest
    total = v.sum()
    if total <= 0:
        return 0.0
    n = v.size
    return float(2.0 * np.dot(_ranks(n), np.sort(v)) / (n * total) - (n + 1.0) / n)


@lru_cache(maxsize=8)
def _ranks(n: int) -> np.ndarray:
    """1..n as float64 (read-only): the score run asks for the Gini of every measure at every epoch end."""
    i = np.arange(1, n + 1, dtype=np.float64)
    i.flags.writeable = False
    return i


def lorenz(values: np.ndarray, points: int = 101) -> np.ndarray:
    """Lorenz curve at ``points`` evenly spaced population shares: (points,) cumulative value shares.

    Element k is the share of the total held by the lowest k/(points-1) of examples (0 → 0, last → 1).
    """
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    v = v[np.isfinite(v)]
    if v.size and v.min() < 0:
        v = v - v.min()
    cum = np.concatenate([[0.0], np.cumsum(v)])
    if cum[-1] <= 0:
        return np.linspace(0.0, 1.0, points)
    share = np.linspace(0.0, 1.0, points) * v.size
    return np.interp(share, np.arange(v.size + 1), cum) / cum[-1]
