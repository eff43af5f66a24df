"""Selection rules: which training examples to remove, given their scores (higher = harder).

``keep_mask(scores, rule, ...)`` validates its input and hands off to one private ``_keep_<rule>`` per
rule. ``fraction`` is always the fraction **removed**. Ties are broken by training-set index (stable
sort); only ``random`` and ``stratified`` draw random numbers, from ``np.random.default_rng(seed)``.

drop-high    remove the ``round(fraction * N)`` highest scores (the most sensitive).
drop-low     remove the ``round(fraction * N)`` lowest scores.
keep-middle  remove the ``round(low * N)`` lowest and the highest, ``round((low + high) * N)`` in all.
stratified   coverage-centric coreset selection (Zheng et al. 2023): remove the hardest ``beta``,
             then sample the kept budget evenly across ``bins`` equal-width score bins.
threshold    remove scores ``above`` and/or ``below`` a value: a number, a quantile ``"q0.9"``
             or a z-score ``"z2.0"`` of the scores.
random       remove ``round(fraction * N)`` examples uniformly at random (the baseline).

Rounding is half-up: ``round(x) = floor(x + 0.5)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from sensprune.errors import ValidationError

RULES = ("drop-high", "drop-low", "keep-middle", "stratified", "threshold", "random")


def param_error(name: str, what: str, got: Any) -> ValidationError:
    return ValidationError(f"The '{name}' parameter must be {what}; got {got!r}.")


def unit_fraction(name: str, value, *, closed_low: bool = False) -> float:
    ok = isinstance(value, (int, float, np.number)) and not isinstance(value, bool) and np.isfinite(value)
    if not ok or not ((0 <= value) if closed_low else (0 < value)) or not value < 1:
        raise param_error(name, "a float in [0, 1)" if closed_low else "a float in (0, 1)", value)
    return float(value)


def _round(x: float) -> int:
    return int(np.floor(x + 0.5))


def check_scores(scores, *, name: str = "scores") -> np.ndarray:
    """Return ``scores`` as a finite (N,) float64 array, N >= 1, or raise ValidationError."""
    s = np.asarray(scores)
    if s.ndim != 1 or len(s) == 0 or not (np.issubdtype(s.dtype, np.number) and s.dtype != np.bool_):
        raise ValidationError(f"{name} must be a non-empty 1-D numeric array; got {s.dtype} {s.shape}.")
    s = s.astype(np.float64)
    bad = np.flatnonzero(~np.isfinite(s))
    if len(bad):
        raise ValidationError(f"{name} has {len(bad)} NaN or infinite value(s) (first at position "
                              f"{bad[0]}); rescore or remove them before pruning.")
    return s


def _threshold(value, s: np.ndarray, name: str) -> float:
    """Absolute value, ``"q<p>"`` quantile or ``"z<k>"`` z-score of ``s``, as an absolute score."""
    text = str(value).strip().lower()
    try:
        if text[:1] == "q":
            q = float(text[1:])
            if not 0 <= q <= 1:
                raise ValueError
            return float(np.quantile(s, q))
        if text[:1] == "z":
            z = float(text[1:])
            return float(s.mean() + z * s.std())
        t = float(text)
    except ValueError:
        raise param_error(name, "a number, a quantile like 'q0.9' (0..1) or a z-score like 'z2.0'", value) from None
    if not np.isfinite(t):
        raise param_error(name, "finite", value)
    return t


def _keep_drop_high(s, p, rng):
    m = np.ones(len(s), bool)
    d = _round(p["fraction"] * len(s))
    m[np.argsort(s, kind="stable")[len(s) - d:]] = False
    return m


def _keep_drop_low(s, p, rng):
    m = np.ones(len(s), bool)
    m[np.argsort(s, kind="stable")[:_round(p["fraction"] * len(s))]] = False
    return m


def _keep_keep_middle(s, p, rng):
    n, m = len(s), np.ones(len(s), bool)
    order = np.argsort(s, kind="stable")
    n_low, n_all = _round(p["low"] * n), _round(p["fraction"] * n)
    m[order[:n_low]] = False
    m[order[n - (n_all - n_low):]] = False
    return m


def _keep_random(s, p, rng):
    m = np.ones(len(s), bool)
    m[rng.permutation(len(s))[:_round(p["fraction"] * len(s))]] = False
    return m


def _keep_threshold(s, p, rng):
    m = np.ones(len(s), bool)
    if p.get("above") is not None:
        m &= s <= _threshold(p["above"], s, "above")
    if p.get("below") is not None:
        m &= s >= _threshold(p["below"], s, "below")
    return m


def allocate_budget(budget: int, sizes: np.ndarray) -> np.ndarray:
    """Zheng et al. (2023), Algorithm 1: split ``budget`` over bins, smallest bin first.

    Each bin, in increasing size, gets ``min(size, remaining_budget // remaining_bins)``.
    Returns (B,) int64; the total equals ``min(budget, sizes.sum())``.
    """
    sizes = np.asarray(sizes, dtype=np.int64)
    out, rest = np.zeros(len(sizes), np.int64), int(budget)
    for i, b in enumerate(np.argsort(sizes, kind="stable")):
        out[b] = min(int(sizes[b]), rest // (len(sizes) - i))
        rest -= out[b]
    return out


def _keep_stratified(s, p, rng):
    """Coverage-centric selection: Zheng, Liu, Li & Prakash, "Coverage-centric Coreset Selection
    for High Pruning Rates", ICLR 2023. Drop the hardest ``beta`` fraction, split the remaining
    score range into ``bins`` equal-width bins and keep ``N - round(fraction * N)`` examples,
    allocated by :func:`allocate_budget` and drawn uniformly inside each bin."""
    n = len(s)
    order = np.argsort(s, kind="stable")
    n_keep, n_hard = n - _round(p["fraction"] * n), _round(p["beta"] * n)
    pool = order[:n - n_hard]
    if n_keep > len(pool):
        raise ValidationError(f"The 'beta' parameter ({p['beta']}) removes more than 'fraction' "
                              f"({p['fraction']}); beta must not exceed fraction.")
    lo, hi = s[pool].min(), s[pool].max()
    ids = np.zeros(len(pool), np.int64)
    if hi > lo:
        edges = np.linspace(lo, hi, p["bins"] + 1)
        ids = np.clip(np.searchsorted(edges, s[pool], side="right") - 1, 0, p["bins"] - 1)
    budgets = allocate_budget(n_keep, np.bincount(ids, minlength=p["bins"]))
    m = np.zeros(n, bool)
    for b in np.flatnonzero(budgets):
        members = pool[ids == b]
        m[members[rng.permutation(len(members))[:budgets[b]]]] = True
    return m


_RULE_FUNCS = {"drop-high": _keep_drop_high, "drop-low": _keep_drop_low, "keep-middle": _keep_keep_middle,
               "stratified": _keep_stratified, "threshold": _keep_threshold, "random": _keep_random}


def _rule_params(rule, fraction, low, high, beta, bins, above, below) -> dict:
    if rule not in RULES:
        raise param_error("rule", f"one of {', '.join(RULES)}", rule)
    p = dict.fromkeys(("fraction", "low", "high", "beta", "bins", "above", "below"))
    if rule == "threshold":
        if fraction is not None or (above is None and below is None):
            raise ValidationError("The 'threshold' rule takes 'above' and/or 'below' (--above/--below), "
                                  "not 'fraction'.")
        for name, v in (("above", above), ("below", below)):
            if v is not None:
                _threshold(v, np.zeros(1), name)
        p.update(above=above, below=below)
    elif rule == "keep-middle":
        if low is None and high is None:
            if fraction is None:
                raise ValidationError("The 'keep-middle' rule needs 'low' and 'high' (--low/--high) "
                                      "or 'fraction' (split evenly between both tails).")
            low = high = unit_fraction("fraction", fraction) / 2
        low = unit_fraction("low", low or 0.0, closed_low=True)
        high = unit_fraction("high", high or 0.0, closed_low=True)
        if not 0 < low + high < 1:
            raise param_error("low + high", "a float in (0, 1)", low + high)
        if fraction is not None and abs(unit_fraction("fraction", fraction) - (low + high)) > 1e-9:
            raise ValidationError(f"The 'fraction' parameter ({fraction}) must equal low + high "
                                  f"({low + high}) for rule 'keep-middle'; pass one or the other.")
        p.update(fraction=low + high, low=low, high=high)
    else:
        if fraction is None:
            raise ValidationError(f"The '{rule}' rule needs the 'fraction' parameter (--fraction).")
        p["fraction"] = unit_fraction("fraction", fraction)
    if rule == "stratified":
        p["beta"] = unit_fraction("beta", beta, closed_low=True)
        if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
            raise param_error("bins", "an int >= 1", bins)
        p["bins"] = int(bins)
    return {k: v for k, v in p.items() if v is not None}


def keep_mask(scores, rule: str, *, fraction: float | None = None, labels=None, per_class: bool = False,
              min_per_class: int = 0, low: float | None = None, high: float | None = None,
              beta: float = 0.0, bins: int = 50, above=None, below=None,
              allow_empty_class: bool = False, seed: int = 0) -> np.ndarray:
    """Which examples a rule keeps.

    Parameters
    ----------
    scores : array-like (N,)
        Finite scores, higher = harder.
    rule : {"drop-high", "drop-low", "keep-middle", "stratified", "threshold", "random"}
    fraction : float in (0, 1)
        Fraction **removed** (within each class when ``per_class``).
    labels : array-like (N,) of int, optional
        Needed for ``per_class``, ``min_per_class`` and the empty-class check.
    per_class : bool
        Apply the rule inside each class separately.
    min_per_class : int
        Classes left with fewer kept examples get back their removed examples closest to the
        class median score until they have ``min(min_per_class, class size)``.
    low, high : float in [0, 1)
        ``keep-middle``: fractions removed from the bottom and the top.
    beta : float in [0, 1), bins : int
        ``stratified``: hardest fraction removed first, and number of score bins.
    above, below : float or str
        ``threshold``: remove scores > above / < below; a number, ``"q0.9"`` or ``"z2.0"``.
    allow_empty_class : bool
        Otherwise a rule that keeps no example of some class raises ValidationError.
    seed : int

    Returns
    -------
    ndarray (N,) bool
        True where the example is kept.
    """
    s = check_scores(scores)
    p = _rule_params(rule, fraction, low, high, beta, bins, above, below)
    if isinstance(min_per_class, bool) or not isinstance(min_per_class, (int, np.integer)) \
            or min_per_class < 0:
        raise param_error("min_per_class", "an int >= 0", min_per_class)
    y = None
    if labels is not None:
        y = np.asarray(labels)
        if y.shape != s.shape or not np.issubdtype(y.dtype, np.integer):
            raise ValidationError(f"labels must be an integer array of shape {s.shape}, "
                                  f"got {y.dtype} {y.shape}.")
    elif per_class or min_per_class:
        raise ValidationError("'per_class' and 'min_per_class' need labels.")
    return _keep_mask(s, rule, p, y, per_class, int(min_per_class), allow_empty_class, int(seed))


def _keep_mask(s, rule, p, y, per_class, min_per_class, allow_empty_class, seed):
    rng, func = np.random.default_rng(seed), _RULE_FUNCS[rule]
    if per_class:
        mask = np.zeros(len(s), bool)
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            mask[idx] = func(s[idx], p, rng)
    else:
        mask = func(s, p, rng)
    if y is not None:
        for c in np.unique(y):
            idx = np.flatnonzero(y == c)
            need = min(min_per_class, len(idx)) - int(mask[idx].sum())
            if need > 0:
                gone = idx[~mask[idx]]
                mask[gone[np.argsort(np.abs(s[gone] - np.median(s[idx])), kind="stable")[:need]]] = True
            if not allow_empty_class and not mask[idx].any():
                raise ValidationError(
                    f"Rule '{rule}' would remove every example of class {int(c)} ({len(idx)} example(s)); "
                    "lower the fraction, or pass --min-per-class or --allow-empty-class.")
    if not mask.any():
        raise ValidationError(f"Rule '{rule}' would remove every example.")
    return mask
