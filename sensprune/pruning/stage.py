"""Stage 2: turn per-example scores into a selection (keep / drop indices) or loss weights.

Every score is oriented so that **higher = more sensitive / harder**. ``fraction`` is always the
fraction of examples **removed** (or, for ``clip`` reweighting, down-weighted), never the
fraction kept. Ties are broken by training-set index (stable sort), so every rule is
deterministic; only ``random`` and ``stratified`` draw random numbers, from
``np.random.default_rng(seed)``.

The rules themselves (``keep_mask``: drop-high, drop-low, keep-middle, stratified, threshold,
random) live in :mod:`sensprune.pruning.rules`; this module adds reweighting (``reweight``), rank
averaging of several measures and ``select``, which turns a ScoreTable into a Selection.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from sensprune.errors import ValidationError
from sensprune.io import base_meta, staged_file
from sensprune.pruning.rules import RULES, allocate_budget, check_scores, keep_mask, param_error, unit_fraction
from sensprune.pruning.selection import Selection, export_data, load_matching_dataset, save_selection
from sensprune.scoring.table import ScoreTable

__all__ = ["RULES", "REWEIGHTS", "keep_mask", "reweight", "allocate_budget", "rank_average", "select",
           "counts", "check_scores", "parse_measures", "Selection", "save_selection",
           "load_matching_dataset", "export_data", "write_selection"]

REWEIGHTS = ("inverse-rank", "softmax", "clip")
#: rule options that only some rules read (the others ignore them): meta.json records an option for those only
_USED_BY = {"low": ("keep-middle",), "high": ("keep-middle",), "beta": ("stratified",), "bins": ("stratified",),
            "above": ("threshold",), "below": ("threshold",), "seed": ("random", "stratified")}
DIRECTION = "higher = harder"


def reweight(scores, method: str, *, temperature: float = 1.0, fraction: float | None = None) -> np.ndarray:
    """Per-example loss weights instead of dropping; higher score -> lower or equal weight.

    With ``s`` the scores, ``T`` the temperature and before normalisation to mean 1:

    - ``inverse-rank``: ``w = 1 / (1 + q / T)``, ``q`` = fraction of examples with a strictly lower
      score (0 for the easiest, near 1 for the hardest). Tied scores get equal weights.
    - ``softmax``: ``w = exp(-z / T)``, ``z = (s - mean) / std`` (0 when std = 0).
    - ``clip``: ``t`` = the ``(1 - fraction)`` quantile; ``w = 1`` for ``s <= t`` and
      ``w = 1 / (1 + (s - t) / (T * std))`` above it.

    Every weight is floored at 1e-12 of the largest, so all stay positive.

    Returns
    -------
    ndarray (N,) float64
        Positive weights with mean 1, non-increasing in the score.
    """
    s = check_scores(scores)
    if method not in REWEIGHTS:
        raise param_error("reweight", f"one of {', '.join(REWEIGHTS)}", method)
    ok = isinstance(temperature, (int, float, np.number)) and not isinstance(temperature, bool)
    if not ok or not np.isfinite(temperature) or temperature <= 0:
        raise param_error("temperature", "a float > 0", temperature)
    if method == "clip":
        if fraction is None:
            raise ValidationError("The 'clip' reweighting needs the 'fraction' parameter (--fraction): "
                                  "the fraction of examples down-weighted.")
        fraction = unit_fraction("fraction", fraction)
    return _reweight(s, method, float(temperature), s.std(), fraction)


def _reweight(s, method, T, std, fraction):
    if method == "inverse-rank":
        with np.errstate(divide="ignore", over="ignore"):
            w = 1.0 / (1.0 + np.searchsorted(np.sort(s), s, side="left") / len(s) / T)
    elif method == "softmax":
        z = (s - s.mean()) / std if std > 0 else np.zeros_like(s)
        w = np.exp(-(z - z.min()) / T)
    else:
        t = np.quantile(s, 1 - fraction)
        with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
            w = np.ones_like(s) if std == 0 else np.where(s <= t, 1.0, 1.0 / (1.0 + (s - t) / std / T))
    w = np.maximum(w, 1e-12 * w.max())
    return w / w.mean()


def write_selection(selection: Selection, out, *, force: bool = False, dataset=None,
                    export_path=None) -> str | None:
    """Write the prune folder ``out`` and, with ``export_path``, the cleaned copy of ``dataset`` (see
    :func:`export_data`): both or neither. The export is written first, to a hidden sibling of ``export_path``;
    then the folder is published; then the export moves into place with one rename (which needs no space). On
    any error (a full disk) neither is left behind. Returns the export's format, None without an export.
    """
    if export_path is None:
        save_selection(selection, out, force=force)
        return None
    with staged_file(export_path) as tmp:
        fmt = export_data(dataset, selection, tmp)
        save_selection(selection, out, force=force)
    return fmt


def rank_average(table: ScoreTable, measures: Sequence[str]) -> np.ndarray:
    """Mean over ``measures`` of each example's normalised average rank (0 = easiest, 1 = hardest).

    Returns (N,) float64 in [0, 1]; ties share their average rank; higher = harder.
    """
    out = np.zeros(len(table.index), np.float64)
    for m in measures:
        s = check_scores(table.get(m), name=f"Measure {m!r}")
        srt = np.sort(s)
        rank = (np.searchsorted(srt, s, "left") + np.searchsorted(srt, s, "right") - 1) / 2.0
        out += rank / (len(s) - 1) if len(s) > 1 else 0.5
    return out / len(measures)


def parse_measures(by) -> list[str]:
    """``"el2n,input_grad"`` or a sequence -> list of measure names (order kept; a duplicate is refused)."""
    names = [n.strip() for n in (by.split(",") if isinstance(by, str) else list(by)) if n.strip()]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValidationError(f"--by names {', '.join(dup)} more than once; each measure counts once in the "
                              "rank average, so list it once.")
    if not names:
        raise param_error("by", "one or more measure names", by)
    return names


def counts(mask: np.ndarray, labels: np.ndarray) -> dict[str, Any]:
    """Removed and kept, as counts and fractions, in total and per class."""
    def row(m):
        n, k = len(m), int(m.sum())
        return {"n": n, "kept": k, "removed": n - k, "kept_fraction": k / n, "removed_fraction": (n - k) / n}
    return {**row(mask), "per_class": {str(int(c)): row(mask[labels == c]) for c in np.unique(labels)}}


def select(table: ScoreTable, by, rule: str | None = None, *, reweight_method: str | None = None,
           temperature: float = 1.0, **rule_kwargs) -> Selection:
    """Apply a rule (or a reweighting) to a score table.

    Parameters
    ----------
    table : ScoreTable
    by : str or sequence of str
        One measure, or several (``"el2n,input_grad"``) combined by :func:`rank_average`.
    rule : str, optional
        One of :data:`RULES`; exactly one of ``rule`` and ``reweight_method``.
    reweight_method : str, optional
        One of :data:`REWEIGHTS`: keep every example and weight it (within each class if
        ``per_class``, each class then has mean weight 1).
    **rule_kwargs
        ``fraction``, ``per_class``, ``seed`` and the other options of :func:`keep_mask`.

    Returns
    -------
    Selection
        keep/drop indices into the training set, weights (N,) or None, and ``meta``.
    """
    if (rule is None) == (reweight_method is None):
        raise ValidationError("Pass exactly one of a rule (--rule) or a reweighting (--reweight).")
    measures = parse_measures(by)
    order = np.argsort(table.index, kind="stable")
    index, labels = np.asarray(table.index)[order].astype(np.int64), np.asarray(table.label)[order]
    if len(np.unique(index)) != len(index):
        raise ValidationError("The score file has duplicate indices; it is corrupt.")
    if len(measures) == 1:
        score = check_scores(table.get(measures[0]), name=f"Measure {measures[0]!r}")[order]
    else:
        score = rank_average(table, measures)[order]
    seed, fraction = int(rule_kwargs.get("seed", 0)), rule_kwargs.get("fraction")
    weights = None
    if rule is not None:
        mask = keep_mask(score, rule, labels=labels, **rule_kwargs)
        params = {k: v for k, v in rule_kwargs.items() if v is not None and rule in _USED_BY.get(k, RULES)}
    else:
        unknown = set(rule_kwargs) - {"fraction", "per_class", "seed"}
        if unknown:
            raise ValidationError(f"Reweighting does not take {', '.join(sorted(unknown))}.")
        mask, weights = np.ones(len(score), bool), np.empty(len(score))
        groups = [labels == c for c in np.unique(labels)] if rule_kwargs.get("per_class") else [mask]
        for g in groups:
            weights[g] = reweight(score[g], reweight_method, temperature=temperature, fraction=fraction)
        params = {k: v for k, v in {**rule_kwargs, "temperature": temperature}.items() if v is not None}
    directions = table.meta.get("measures", {})
    meta = {
        **base_meta("selection"), "rule": rule, "reweight": reweight_method, "parameters": params,
        "measure": measures, "combine": "rank-average" if len(measures) > 1 else None, "direction": DIRECTION,
        "measure_directions": {m: directions.get(m, {}).get("direction", DIRECTION) for m in measures},
        "counts": counts(mask, labels), "seed": seed,
        "scores_fingerprint": table.meta.get("scores_fingerprint") or table.fingerprint(),
        "dataset": table.meta.get("dataset", {}),
    }
    source_row = None if table.source_row is None else np.asarray(table.source_row)[order]
    return Selection(index[mask], index[~mask], weights, meta, labels, score, source_row)
