"""Statistics of a bench grid (pure numerics: arrays and row dicts in, numbers out; no files).

A *cell* is ``(dataset, corruption, measure, rule, fraction)``; its values are one per seed. The
paired difference of a cell vs its baseline (``random`` at the same fraction, or ``full``) is taken
per seed (both runs share init and batch order) and tested with the paired Student-t test
(``scipy.stats.ttest_rel``): mean, 95% t interval and two-sided p-value. ``*_sig`` columns mark an
interval that excludes 0 (uncorrected). Across all tested cells of a grid the p-values are adjusted
with Benjamini–Hochberg (``scipy.stats.false_discovery_control``); ``sig_bh`` marks the cells whose
adjusted p-value ``q_bh`` is below :data:`FDR` (the false discovery rate controlled).

Equivalence (:func:`equivalence`): beside the test of "no difference", each tested cell gets the
largest gain its data rule out, ``upper_95`` (the one-sided 95% upper confidence bound of the paired
difference), and the two one-sided tests (TOST; Schuirmann 1987) of "the difference lies within
±margin", ``tost_p`` (the larger of the two one-sided p-values), BH-adjusted across the tested cells as
``q_tost``. The three-way ``call`` (:func:`call`): *better* / *worse* (the difference is significant
after BH, ``sig_bh`` = +1 / −1), *equivalent* (not significant, and TOST rejects at the margin after
BH: ``q_tost`` < FDR), *inconclusive* otherwise.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any, Iterable, Sequence

import numpy as np

SUMMARY_COLUMNS = ("key", "dataset", "corruption", "measure", "rule", "fraction", "n", "n_failed", "n_train",
                   "test_acc_mean", "test_acc_std", "test_acc_ci95", "test_loss_mean", "train_acc_mean",
                   "gen_gap_mean", "corrupted_kept_mean",
                   "d_random_mean", "d_random_ci95", "d_random_lo", "d_random_hi", "d_random_n", "d_random_sig",
                   "d_full_mean", "d_full_ci95", "d_full_lo", "d_full_hi", "d_full_n", "d_full_sig",
                   "d_random_p", "d_full_p", "vs", "p_value", "q_bh", "sig_bh", "budget", "margin", "upper_95",
                   "tost_p", "q_tost", "call", "steps_mean", "epochs_mean", "fit_reached_frac", "error")
DETECTION_SUMMARY_COLUMNS = ("dataset", "corruption", "measure", "n", "n_failed", "k_mean", "auroc_mean",
                             "auroc_std", "auroc_ci95", "ap_mean", "ap_std", "precision_at_k_mean",
                             "precision_at_k_std", "roc_tpr_mean")
#: false-positive rates at which ROC curves are stored (TPR at FPR <= f, a step ROC), 21 points
ROC_FPR = np.linspace(0.0, 1.0, 21)
NAN = float("nan")
#: false discovery rate of the Benjamini–Hochberg adjustment across the cells of a grid
FDR = 0.05
#: measures that are baselines, not arms: they get no test of their own
BASELINES = ("full", "random", "oracle")
#: the three-way call of a tested cell (and "worse", the mirror of "better"); "" for an untested cell
CALLS = ("better", "worse", "equivalent", "inconclusive")


def t_quantile(p: float, df: int) -> float:
    """Student-t quantile (``scipy.stats.t.ppf``)."""
    from scipy.stats import t

    return float(t.ppf(p, df))


def mean_ci(values: Iterable[float], level: float = 0.95) -> tuple[float, float, int, float]:
    """(mean, sample std, n, half-width of the ``level`` t interval); NaN where undefined (n < 2)."""
    v = np.asarray([x for x in values if np.isfinite(x)], np.float64)
    n = len(v)
    if n == 0:
        return NAN, NAN, 0, NAN
    if n == 1:
        return float(v[0]), NAN, 1, NAN
    sd = float(v.std(ddof=1))
    return float(v.mean()), sd, n, t_quantile(0.5 + level / 2, n - 1) * sd / math.sqrt(n)


def paired_t(a: Sequence[float], b: Sequence[float], level: float = 0.95) -> tuple[float, float, int, float]:
    """Paired Student-t test of ``a - b`` (same seeds) with ``scipy.stats.ttest_rel``.

    Parameters
    ----------
    a, b : sequences of float, shape (S,)
        Paired values (one per seed); pairs with a non-finite value are left out.

    Returns
    -------
    (mean difference, half-width of the ``level`` interval, n pairs, two-sided p-value)
        NaN where undefined (n < 2). When every difference is the same, the interval has width 0
        and p is 0 (if that difference is not 0) or 1.
    """
    from scipy.stats import ttest_rel

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    a, b = a[ok], b[ok]
    d, n = a - b, int(ok.sum())
    if n == 0:
        return NAN, NAN, 0, NAN
    if n == 1:
        return float(d[0]), NAN, 1, NAN
    if np.all(d == d[0]):  # zero variance: t is +-inf (or undefined at 0), scipy returns NaN
        return float(d[0]), 0.0, n, 0.0 if d[0] != 0 else 1.0
    res = ttest_rel(a, b)
    lo, hi = res.confidence_interval(level)
    return float(d.mean()), float(hi - lo) / 2, n, float(res.pvalue)


def equivalence(a: Sequence[float], b: Sequence[float], margin: float) -> tuple[float, float]:
    """(one-sided 95% upper bound of mean(a - b), TOST p-value at ±``margin``) of paired values.

    The upper bound is the largest difference the data do not rule out at 95% (one-sided t bound,
    ``scipy.stats.ttest_1samp(..., alternative="less")``'s interval); gains above it are ruled out.
    TOST (Schuirmann 1987): H0 ``mean <= -margin`` and H0 ``mean >= margin`` are each tested one-sided
    (``ttest_1samp`` against ∓margin); the returned p is the larger of the two, and p < α means the
    difference lies within (−margin, margin) at level α. NaN where undefined (n < 2). When every
    difference is the same, the bound is that difference and p is 0 inside the margin, 1 outside.
    """
    from scipy.stats import ttest_1samp

    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    ok = np.isfinite(a) & np.isfinite(b)
    d = a[ok] - b[ok]
    if len(d) < 2:
        return NAN, NAN
    if np.all(d == d[0]):
        return float(d[0]), 0.0 if abs(d[0]) < margin else 1.0
    upper = float(ttest_1samp(d, 0.0, alternative="less").confidence_interval(0.95).high)
    p_low = float(ttest_1samp(d, -margin, alternative="greater").pvalue)
    p_high = float(ttest_1samp(d, margin, alternative="less").pvalue)
    return upper, max(p_low, p_high)


def call(sig_bh: int, q_tost: float, tested: bool, fdr: float = FDR) -> str:
    """The three-way call of a cell (see the module docstring): better / worse / equivalent / inconclusive,
    or "" for a cell that was not tested (a baseline, or no paired seeds)."""
    if not tested:
        return ""
    if sig_bh:
        return "better" if sig_bh > 0 else "worse"
    return "equivalent" if np.isfinite(q_tost) and q_tost < fdr else "inconclusive"


def bh_adjust(p_values: Sequence[float]) -> np.ndarray:
    """Benjamini–Hochberg adjusted p-values (``scipy.stats.false_discovery_control``, method ``bh``).

    Non-finite entries (cells without a test) stay NaN and do not count as tests. Returns (M,) float64.
    """
    from scipy.stats import false_discovery_control

    p = np.asarray(p_values, np.float64)
    out = np.full(p.shape, NAN)
    ok = np.isfinite(p)
    if ok.any():
        out[ok] = false_discovery_control(p[ok], method="bh")
    return out


def fkey(f: float) -> str:
    return f"{float(f):g}"


def cell_key(dataset: str, corruption: str, measure: str, rule: str, fraction: float) -> str:
    return f"{dataset}|{corruption}|{measure}|{rule}|{fkey(fraction)}"


def matched_rule(measure: str) -> str:
    """Rule name of the random baseline matched to one selection (same size per class).

    See :mod:`sensprune.benchmark.selection`.
    """
    return f"matched:{measure}"


def primary_baseline(measure: str, rule: str) -> str | None:
    """The baseline a cell is tested against: ``full`` for reweighting arms, ``random`` for pruning arms,
    None for the baselines themselves (full, random, oracle)."""
    if measure in BASELINES:
        return None
    return "full" if str(rule).startswith("reweight:") else "random"


def _sig(mean: float, half: float) -> int:
    if not (np.isfinite(mean) and np.isfinite(half)):
        return 0
    return int(np.sign(mean)) if abs(mean) > half else 0


def summarize(rows: Sequence[dict[str, Any]], *, fdr: float = FDR, margin: float = 0.01) -> list[dict[str, Any]]:
    """Per-cell statistics of result rows (plan order kept), paired tests, equivalence and BH adjustment.

    Each cell gets mean/std/95% CI of its test accuracy and the paired difference vs ``random``
    (same fraction; for a user selection, the random selection matched to it) and vs ``full``.
    Its primary comparison (``vs``: random for pruning arms, full for reweighting arms) gives
    ``p_value``; ``q_bh`` is that p-value adjusted by Benjamini–Hochberg across every tested cell
    in ``rows``, and ``sig_bh`` is the sign of the difference where ``q_bh < fdr``, else 0. ``upper_95``,
    ``tost_p`` (at ``margin``), ``q_tost`` and ``call`` are those of :func:`equivalence` and :func:`call`
    for the primary comparison. ``budget`` (the rows' training budget), ``steps_mean``, ``epochs_mean``
    and ``fit_reached_frac`` say what compute the cell's runs had.
    """
    cells: OrderedDict[str, list[dict]] = OrderedDict()
    for r in rows:
        cells.setdefault(cell_key(r["dataset"], r["corruption"], r["measure"], r["rule"], r["fraction"]), []).append(r)
    acc = {k: {r["seed"]: r["test_acc"] for r in v if r["status"] == "ok"} for k, v in cells.items()}
    out = []
    for key, rs in cells.items():
        ds, corr, measure, rule, frac = key.split("|", 4)
        ok = [r for r in rs if r["status"] == "ok"]
        mean, sd, n, half = mean_ci(r["test_acc"] for r in ok)
        row = {"key": key, "dataset": ds, "corruption": corr, "measure": measure, "rule": rule,
               "fraction": float(frac), "n": n, "n_failed": len(rs) - len(ok),
               "n_train": float(np.mean([r["n_train"] for r in ok])) if ok else NAN,
               "test_acc_mean": mean, "test_acc_std": sd, "test_acc_ci95": half,
               "test_loss_mean": _mean(r.get("test_loss") for r in ok),
               "train_acc_mean": _mean(r.get("train_acc") for r in ok),
               "gen_gap_mean": _mean(r.get("gen_gap") for r in ok),
               "corrupted_kept_mean": _mean(r.get("n_corrupted_kept") for r in ok),
               "budget": next((str(r["budget"]) for r in ok if r.get("budget")), ""), "margin": margin,
               "steps_mean": _mean(r.get("steps") for r in ok), "epochs_mean": _mean(r.get("epochs") for r in ok),
               "fit_reached_frac": _mean(r.get("fit_reached") for r in ok),
               "error": next((r["message"] for r in rs if r["status"] != "ok"), "")}
        matched = cell_key(ds, corr, "random", matched_rule(measure), float(frac))
        rand = matched if matched in cells else cell_key(ds, corr, "random", "random", float(frac))
        bases = {"random": None if measure == "random" else rand,
                 "full": None if measure == "full" else cell_key(ds, corr, "full", "none", 0.0)}
        for name, bkey in bases.items():
            base = acc.get(bkey, {}) if bkey else {}
            seeds = [s for s in acc[key] if s in base]
            m, h, dn, p = paired_t([acc[key][s] for s in seeds], [base[s] for s in seeds])
            row.update({f"d_{name}_mean": m, f"d_{name}_ci95": h, f"d_{name}_lo": m - h, f"d_{name}_hi": m + h,
                        f"d_{name}_n": dn, f"d_{name}_sig": _sig(m, h), f"d_{name}_p": p})
        vs = primary_baseline(measure, rule)
        row.update({"vs": vs or "", "p_value": row[f"d_{vs}_p"] if vs else NAN, "upper_95": NAN, "tost_p": NAN})
        if vs:
            base = acc.get(bases[vs], {}) if bases[vs] else {}
            seeds = [s for s in acc[key] if s in base]
            row["upper_95"], row["tost_p"] = equivalence([acc[key][s] for s in seeds], [base[s] for s in seeds],
                                                         margin)
        out.append(row)
    q, qt = bh_adjust([r["p_value"] for r in out]), bh_adjust([r["tost_p"] for r in out])
    for r, qi, qti in zip(out, q, qt):
        r["q_bh"], r["q_tost"] = float(qi), float(qti)
        r["sig_bh"] = int(np.sign(r[f"d_{r['vs']}_mean"])) if np.isfinite(qi) and qi < fdr else 0
        r["call"] = call(r["sig_bh"], r["q_tost"], bool(np.isfinite(qi)), fdr)
    return out


def _mean(values: Iterable[Any]) -> float:
    """Mean of the finite numbers among ``values`` (blanks and NaN left out); NaN if there are none."""
    v = [x for x in values if isinstance(x, (int, float, np.number)) and np.isfinite(x)]
    return float(np.mean(v)) if v else NAN


def summarize_detection(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (dataset, corruption, measure): mean ± std over seeds of AUROC, AP and precision@k."""
    groups: OrderedDict[tuple, list[dict]] = OrderedDict()
    for r in rows:
        groups.setdefault((r["dataset"], r["corruption"], r["measure"]), []).append(r)
    out = []
    for (ds, corr, m), rs in groups.items():
        ok = [r for r in rs if r["status"] == "ok"]
        am, asd, n, ah = mean_ci(r["auroc"] for r in ok)
        pm, psd, _, _ = mean_ci(r["ap"] for r in ok)
        km, ksd, _, _ = mean_ci(r["precision_at_k"] for r in ok)
        curves = [np.array(r["roc_tpr"].split(), np.float64) for r in ok if r.get("roc_tpr")]
        roc = " ".join(f"{v:.4f}" for v in np.mean(curves, axis=0)) if curves else ""
        out.append({"dataset": ds, "corruption": corr, "measure": m, "n": n, "n_failed": len(rs) - len(ok),
                    "k_mean": _mean(r["k"] for r in ok), "auroc_mean": am, "auroc_std": asd, "auroc_ci95": ah,
                    "ap_mean": pm, "ap_std": psd, "precision_at_k_mean": km, "precision_at_k_std": ksd,
                    "roc_tpr_mean": roc})
    return out


# -- detection -----------------------------------------------------------------------------------------

def cv_confidence(x: np.ndarray, y: np.ndarray, *, folds: int = 5, seed: int = 0) -> np.ndarray:
    """1 − out-of-fold probability of the given label (N,), higher = more suspicious.

    Standardised inputs, logistic regression, stratified ``folds``-fold ``cross_val_predict``
    (the confident-learning input popularised by cleanlab).
    """
    import warnings

    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x2 = x.reshape(len(x), -1)
    counts = np.bincount(y)
    k = max(2, min(folds, int(counts[counts > 0].min())))
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=200))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        p = cross_val_predict(model, x2, y, cv=StratifiedKFold(k, shuffle=True, random_state=seed),
                              method="predict_proba")
    classes = np.unique(y)
    col = np.searchsorted(classes, y)
    return 1.0 - p[np.arange(len(y)), col]


def detection_metrics(scores: np.ndarray, corrupted: np.ndarray) -> dict[str, float]:
    """AUROC, average precision and precision@k (k = number corrupted) of ``scores`` (N,) for the
    boolean ``corrupted`` (N,); higher score = predicted corrupted. Ties in the top-k go to lower index."""
    from sklearn.metrics import average_precision_score, roc_auc_score

    s = np.nan_to_num(np.asarray(scores, np.float64), nan=np.nanmedian(scores) if np.isfinite(scores).any() else 0)
    from sklearn.metrics import roc_curve

    k = int(corrupted.sum())
    top = np.argsort(-s, kind="stable")[:k]
    fpr, tpr, _ = roc_curve(corrupted, s)
    roc = [float(tpr[fpr <= f + 1e-12].max()) for f in ROC_FPR]
    return {"k": k, "auroc": float(roc_auc_score(corrupted, s)), "ap": float(average_precision_score(corrupted, s)),
            "precision_at_k": float(corrupted[top].mean()) if k else float("nan"),
            "roc_tpr": " ".join(f"{v:.4f}" for v in roc)}
