"""Verdicts from intervals, not point estimates (pure numerics; scipy for the t and regression).

Every experiment reduces its claim to one or more *effects* oriented so that a positive value is the
paper's direction (e.g. G(real) − G(random)), with a 95% interval: a paired t-interval over seeds
(:func:`t_ci`), a bootstrap over examples (:func:`bootstrap_ci`) or a regression-slope interval
(:func:`slope_ci`). :func:`decide` turns one interval into one of three outcomes:

- ``reproduced`` — the whole interval lies above 0 (clear separation in the paper's direction);
- ``not reproduced at this scale (reason)`` — the whole interval lies below 0 (the opposite direction);
- ``inconclusive (CI overlaps 0)`` — the interval contains 0 (or is undefined: fewer than 2 seeds).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from scipy import stats

from sensprune.measures.gini import gini  # noqa: F401  (re-exported for the experiments)

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced at this scale"
INCONCLUSIVE = "inconclusive"
VERDICT_WORDS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    """An effect estimate with its interval: ``est [lo, hi]`` from ``n`` units (seeds, examples, points)."""

    est: float
    lo: float
    hi: float
    n: int
    how: str  # "paired t over seeds", "bootstrap over examples", ...

    def text(self, digits: int = 3) -> str:
        def f(v):
            return "nan" if not np.isfinite(v) else f"{v:+.{digits}f}"
        return f"{f(self.est)} [{f(self.lo)}, {f(self.hi)}]"


@dataclass(frozen=True)
class Verdict:
    word: str     # one of VERDICT_WORDS
    detail: str   # the reason (not reproduced) or what overlaps (inconclusive); empty for reproduced

    @property
    def label(self) -> str:
        return f"{self.word} ({self.detail})" if self.detail else self.word


def t_ci(values: Sequence[float], level: float = LEVEL, how: str = "paired t over seeds") -> Interval:
    """Mean and t-interval of ``values`` (e.g. per-seed paired differences); (-inf, inf) for n < 2.
    The interval is the bench's (:func:`sensprune.benchmark.stats.mean_ci`): one t-interval in the package."""
    from sensprune.benchmark.stats import mean_ci

    v = [x for x in values if np.isfinite(x)]
    if not v:
        return Interval(float("nan"), -np.inf, np.inf, 0, how)
    m, _, n, half = mean_ci(v, level)
    if n < 2:
        return Interval(m, -np.inf, np.inf, n, how)
    return Interval(m, m - half, m + half, n, how)


def bootstrap_ci(stat: Callable[..., float], *arrays: np.ndarray, n_boot: int = 1000, seed: int = 0,
                 level: float = LEVEL) -> Interval:
    """Percentile bootstrap over examples: ``stat(*arrays)`` recomputed on rows resampled with replacement
    (one index draw shared by all arrays, so paired arrays stay paired)."""
    n = len(arrays[0])
    rng = np.random.default_rng([seed, 0xB007])
    est = float(stat(*arrays))
    reps = np.array([stat(*(a[idx] for a in arrays)) for idx in rng.integers(0, n, size=(n_boot, n))])
    lo, hi = np.quantile(reps, [0.5 - level / 2, 0.5 + level / 2])
    return Interval(est, float(lo), float(hi), n, f"bootstrap over {n} examples ({n_boot} resamples)")


def binomial_se(p: float, n: int) -> float:
    """Standard error of a proportion ``p`` measured on ``n`` independent examples."""
    return float(np.sqrt(max(p * (1 - p), 0.0) / max(n, 1)))


def slope_ci(x: Sequence[float], y: Sequence[float], level: float = LEVEL) -> Interval:
    """OLS slope of y on x with its t-interval (n − 2 degrees of freedom), ``scipy.stats.linregress``."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    n = len(x)
    if n < 3 or np.ptp(x) == 0:
        return Interval(float("nan"), -np.inf, np.inf, n, "OLS slope")
    if np.ptp(y) == 0:  # every point equal: slope 0 with no spread
        return Interval(0.0, 0.0, 0.0, n, "OLS slope, t over points")
    r = stats.linregress(x, y)
    half = float(stats.t.ppf(0.5 + level / 2, n - 2) * r.stderr)
    return Interval(float(r.slope), float(r.slope - half), float(r.slope + half), n, "OLS slope, t over points")


def decide(iv: Interval, reason: str, margin: float = 0.0) -> Verdict:
    """Three outcomes from an interval of an effect whose positive side is the paper's direction.

    ``lo > margin`` → reproduced; ``hi < -margin`` → not reproduced at this scale (``reason``);
    otherwise (the interval reaches 0, or is undefined) → inconclusive (CI overlaps 0).
    """
    if not (np.isfinite(iv.lo) and np.isfinite(iv.hi)):
        return Verdict(INCONCLUSIVE, f"no interval from {iv.n} unit(s)")
    if iv.lo > margin:
        return Verdict(REPRODUCED, "")
    if iv.hi < -margin:
        return Verdict(NOT_REPRODUCED, reason)
    return Verdict(INCONCLUSIVE, "CI overlaps 0")


def extra_row(label: str, iv: Interval, reason: str, detail: str, digits: int = 3) -> tuple[str, Verdict, str]:
    """One extra line of an outcome: ``label``, :func:`decide` on ``iv``, and the interval followed by ``detail``."""
    return label, decide(iv, reason), f"{iv.text(digits)} {detail}"


def all_of(*verdicts: Verdict) -> Verdict:
    """A claim with several parts: reproduced if every part is, not reproduced if any part is not
    (its reasons joined), otherwise inconclusive."""
    bad = [v.detail for v in verdicts if v.word == NOT_REPRODUCED]
    if bad:
        return Verdict(NOT_REPRODUCED, "; ".join(dict.fromkeys(bad)))
    if all(v.word == REPRODUCED for v in verdicts):
        return Verdict(REPRODUCED, "")
    return Verdict(INCONCLUSIVE, "; ".join(dict.fromkeys(v.detail for v in verdicts if v.word == INCONCLUSIVE)))


def judge_paired(a: Sequence[float], b: Sequence[float], reason: str) -> tuple[Verdict, Interval]:
    """The paired rule: the 95% t-interval over seeds of a − b (positive = the paper's direction) against 0."""
    iv = t_ci(np.subtract(a, b))
    return decide(iv, reason), iv
