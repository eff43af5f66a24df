"""Verdicts from intervals, not point estimates (pure numerics; scipy for the t and regression).

Every experiment reduces its claim to one or more *effects* oriented so that a positive value is the
paper's direction (e.g. G(real) − G(random)), with a 95% interval: a paired t-interval over seeds
(:func:`paired`, :func:`t_ci`), a bootstrap over examples (:func:`bootstrap_ci`) or the mean of per-seed
regression slopes with a t-interval over seeds (:func:`seed_slopes`: seeds are the clusters, the points of
one seed are not independent). Every t-interval, paired test, TOST and Benjamini–Hochberg adjustment is the
bench's (:mod:`sensprune.benchmark.stats`); there is no second copy here. :func:`decide` turns one interval
into one of three outcomes (:func:`decide_q` the same from a BH-adjusted p-value where an experiment makes
several tests):

- ``reproduced`` — the whole interval lies above 0 (clear separation in the paper's direction);
- ``not reproduced at this scale (reason)`` — the whole interval lies below 0 (the opposite direction);
- ``inconclusive (CI overlaps 0)`` — the interval contains 0 (or is undefined: fewer than 2 seeds);
  ``inconclusive (did not fit: …)`` where fewer than 2 seeds' runs reached the fit threshold (:func:`fitted`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
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
    p: float = float("nan")  # two-sided p-value of "effect = 0" where a test gives one

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


def paired(a: Sequence[float], b: Sequence[float], level: float = LEVEL) -> Interval:
    """Mean of ``a − b`` (paired by seed), its t-interval and p (:func:`sensprune.benchmark.stats.paired_t`)."""
    from sensprune.benchmark.stats import paired_t

    m, half, n, p = paired_t(a, b, level)
    if n < 2 or not np.isfinite(half):
        return Interval(m, -np.inf, np.inf, n, "paired t over seeds", p)
    return Interval(m, m - half, m + half, n, "paired t over seeds", p)


def seed_slopes(x_by_seed: Sequence[Sequence[float]], y_by_seed: Sequence[Sequence[float]],
                level: float = LEVEL) -> tuple[Interval, list[float]]:
    """Seeds as clusters: the OLS slope of y on x within each seed, averaged, with the t-interval over seeds.

    Returns (Interval of the mean slope, per-seed slopes); a seed with fewer than 2 distinct x is left out.
    """
    slopes = []
    for x, y in zip(x_by_seed, y_by_seed):
        x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
        if len(x) >= 2 and np.ptp(x) > 0:
            slopes.append(0.0 if np.ptp(y) == 0 else float(np.polyfit(x, y, 1)[0]))  # flat: exactly 0
    iv = t_ci(slopes, level, how="mean of per-seed OLS slopes, t over seeds")
    return iv, slopes


def fitted(acc_a: Sequence[float], acc_b: Sequence[float], threshold: float) -> np.ndarray:
    """Mask of the seeds whose two runs both reached training accuracy ``threshold`` (memorization shown)."""
    return (np.asarray(acc_a, np.float64) >= threshold) & (np.asarray(acc_b, np.float64) >= threshold)


def judge_fitted(a, b, acc_a, acc_b, threshold: float, reason: str) -> tuple[Verdict, Interval, int]:
    """The paired rule on the seeds whose runs both fit (:func:`fitted`); fewer than 2 → inconclusive (did not fit).

    Returns (Verdict, Interval over the kept seeds, number kept).
    """
    keep = fitted(acc_a, acc_b, threshold)
    k = int(keep.sum())
    iv = paired(np.asarray(a, np.float64)[keep], np.asarray(b, np.float64)[keep])
    if k < 2:
        return Verdict(INCONCLUSIVE, f"did not fit: {k} of {len(keep)} seeds reached training accuracy "
                                     f">= {threshold:g} in both runs"), iv, k
    return decide(iv, reason), iv, k


def decide_q(iv: Interval, q: float, reason: str, fdr: float) -> Verdict:
    """Three outcomes from a BH-adjusted p-value ``q`` and the sign of the effect: q < fdr and positive →
    reproduced, q < fdr and negative → not reproduced at this scale (``reason``), else inconclusive."""
    if not np.isfinite(q) or not np.isfinite(iv.est):
        return Verdict(INCONCLUSIVE, f"no test from {iv.n} unit(s)")
    if q < fdr:
        return Verdict(REPRODUCED, "") if iv.est > 0 else Verdict(NOT_REPRODUCED, reason)
    return Verdict(INCONCLUSIVE, f"not significant after BH, q = {q:.2g}")


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
    iv = paired(a, b)
    return decide(iv, reason), iv
