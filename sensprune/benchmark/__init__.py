"""Stage 3 — benchmark: retrain from scratch on each selection, paired by seed, and answer the question.

- :mod:`~sensprune.benchmark.config`: the grid's TOML config (:class:`BenchConfig`, torch-free);
- :mod:`~sensprune.benchmark.plan`: the units of a grid and their retrains (no training);
- :mod:`~sensprune.benchmark.unit`: one unit: warmup, detection, every paired retrain;
- :mod:`~sensprune.benchmark.grid`: the grid runner (:func:`run_grid`, jobs, shards, resume, :func:`merge`);
- :mod:`~sensprune.benchmark.selection`: the user's own prune folders against random selections (``--selection``);
- :mod:`~sensprune.benchmark.stats`: pure numerics (paired t intervals, Benjamini–Hochberg);
- :mod:`~sensprune.benchmark.verdict`: ``verdict.md`` in words.

The facade verb is the plain function ``sp.bench`` (:func:`sensprune.api.bench`).
The names below are re-exported lazily.
"""

from sensprune.plugins import lazy_exports

_NAMES = {"BenchConfig": "config", "load_config": "config", "plan_units": "plan", "run_unit": "unit",
          "run_grid": "grid", "merge": "grid", "read_rows": "grid", "run_selections": "selection"}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
