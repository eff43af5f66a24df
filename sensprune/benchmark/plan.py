"""The plan of a bench grid: its units ``(dataset, corruption, seed)``, each unit's retrains, the output columns.

Pure bookkeeping, no training: :func:`plan_units` lists the units in a deterministic order (which
``--shard`` and ``--resume`` rely on), :func:`plan_retrains` the ``(measure, rule, fraction)`` arms of one
unit, :func:`measure_meta` and :func:`describe_training` what ``meta.json`` and ``verdict.md`` say about them.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from sensprune.benchmark.config import REWEIGHT_PREFIX, BenchConfig, parse_corruption
from sensprune.errors import ValidationError

RESULT_COLUMNS = ("dataset", "corruption", "seed", "measure", "rule", "fraction", "status", "n_total", "n_train",
                  "n_corrupted", "n_corrupted_kept", "test_acc", "test_loss", "train_acc", "gen_gap", "epochs",
                  "steps", "budget", "fit_reached", "warmup_budget", "warmup_epochs", "warmup_train_acc",
                  "wall_time_s", "message")


DETECTION_COLUMNS = ("dataset", "corruption", "seed", "measure", "n_total", "k", "auroc", "ap",
                     "precision_at_k", "warmup_budget", "warmup_epochs", "warmup_train_acc", "status", "message",
                     "roc_tpr")


@dataclass(frozen=True)
class Unit:
    """One warmup and all its retrains: a (dataset, corruption, seed) triple."""

    dataset: str
    corruption: str
    seed: int

    @property
    def key(self) -> str:
        return re.sub(r"[^A-Za-z0-9._=+-]", "_", f"{self.dataset}__{self.corruption}__s{self.seed}")


def plan_units(cfg: BenchConfig) -> list[Unit]:
    """All units of the grid, in the fixed order datasets × corruptions × seeds."""
    g = cfg.grid
    units = [Unit(d, c, s) for d in g.datasets for c in g.corruptions for s in g.seeds]
    if len({u.key for u in units}) != len(units):
        raise ValidationError("Two [grid] datasets differ only in punctuation and would share unit files; "
                              "rename one.")
    return units


def plan_retrains(cfg: BenchConfig, unit: Unit) -> list[tuple[str, str, float]]:
    """(measure, rule, fraction) of every retrain of ``unit``, in row order.

    ``full`` (rule ``none``, fraction 0), ``oracle`` (fraction = the noise level) when noise is
    injected, the reweighting arms that take no fraction (``reweight:inverse-rank``,
    ``reweight:softmax``; fraction 0) per measure, then per fraction ``random`` once and each
    measure × rule (``reweight:clip`` takes the fraction down-weighted).
    """
    kind, level = parse_corruption(unit.corruption)
    out = [("full", "none", 0.0)]
    if kind != "none":
        out.append(("oracle", "oracle", level))
    arms = [m for m in cfg.grid.measures if m != "random"]
    once = [r for r in cfg.grid.rules if r.startswith(REWEIGHT_PREFIX) and not _takes_fraction(r)]
    per_f = [r for r in cfg.grid.rules if r not in once]
    out += [(m, r, 0.0) for r in once for m in arms]
    for f in cfg.grid.fractions:
        out.append(("random", "random", float(f)))
        out += [(m, r, float(f)) for m in arms for r in per_f]
    return out


def _takes_fraction(rule: str) -> bool:
    return not rule.startswith(REWEIGHT_PREFIX) or rule == REWEIGHT_PREFIX + "clip"


def measure_meta(cfg: BenchConfig) -> dict[str, dict[str, Any]]:
    """Direction, description and estimator of each warmup measure of the grid (for meta.json).

    ``loss_sensitivity`` is the paper's full-horizon measure (Arpit et al. 2017 §3.2), estimated
    from ``probe_times`` sampled steps unless ``probe_times = "all"`` (exact); ``loss_sensitivity_hH``
    is the truncated proxy.
    """
    from sensprune.config import DEFAULT_PROBE_TIMES  # not measures.loss_sensitivity.sampled: merging needs no torch
    from sensprune.train.fit import FIT_MAX_EPOCHS, FIT_THRESHOLD
    from sensprune.measures import measure_spec, truncated_horizon

    opts = dict(cfg.score.measure_options)
    out = {}
    for m in cfg.score_measures:
        spec = measure_spec(m)
        entry = {"direction": spec.direction, "description": spec.description}
        if m == "loss_sensitivity":
            k = opts.get("probe_times")
            entry["estimator"] = ("full horizon, exact at every step" if k == "all" or opts.get("horizon") == "all"
                                  else f"full horizon, sampled: {k or DEFAULT_PROBE_TIMES} probe steps (at most "
                                       "the number of SGD steps; each exact through every earlier update)")
        elif truncated_horizon(m):
            entry["estimator"] = f"PROXY: truncated to the last {truncated_horizon(m)} update(s)"
        elif m == "memorization":
            entry["estimator"] = memorization_text(cfg) + (f" (train accuracy {FIT_THRESHOLD:g} on the subset, "
                                                           f"at most {FIT_MAX_EPOCHS} epochs)")
        out[m] = entry
    return out


def describe_training(cfg: BenchConfig) -> str:
    """The retrain budget and warmup in words, for verdict.md headers."""
    t, b = cfg.train, cfg.bench
    fit = (f"until {b.fit_threshold:g} training accuracy on its (noisy) training examples, at most "
           f"{b.max_epochs} epochs, {b.fit_schedule} lr")
    budget = {"epochs": f"{t.epochs} epochs", "steps": f"about the SGD steps of {t.epochs} full-set epochs",
              "fit": f"{fit}; reweighting arms the SGD steps of their seed's full run",
              "fit-steps": f"the full set {fit}; every other run of its seed exactly the SGD steps that took "
                           "(equal compute)"}[b.budget]
    warm = (f"warmup to fit ({b.fit_threshold:g} training accuracy on its noisy labels, at most {b.max_epochs} "
            f"epochs, {b.fit_schedule} lr)" if cfg.score.budget == "fit" else
            f"warmup {cfg.score.epochs or t.epochs} epochs")
    mem = f"; {memorization_text(cfg)}" if "memorization" in cfg.score_measures else ""
    return (f"model {cfg.score.model} {list(cfg.score.widths)}; retrain budget `{b.budget}`: {budget}, "
            f"{t.optimizer} lr {t.lr}, batch {t.batch_size}; {warm}{mem}")


def memorization_text(cfg: BenchConfig) -> str:
    """How the grid's memorization is estimated, in words: its M models and their subsets."""
    s = cfg.score
    return (f"memorization (Feldman & Zhang 2020, subsampled) from {s.mem_models} models per unit, each on a "
            f"random {s.mem_subset:g} of its training set, trained to fit")
