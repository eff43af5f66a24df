"""Stage 1 — scoring: train a warmup model and compute per-example measures (:mod:`~sensprune.scoring.stage`).

- :mod:`~sensprune.scoring.stage`: :class:`ScoreConfig`, :func:`score` (arrays in, a :class:`ScoreTable` out) and
  :func:`run_score` (a score folder on disk, resumable);
- :mod:`~sensprune.scoring.table`: the score table and its folder format (:func:`load_scores`).

The facade verb is the plain function ``sp.score`` (:func:`sensprune.api.score`).
The names below are re-exported lazily: importing this package loads no torch by itself.
"""

from sensprune.plugins import lazy_exports

_NAMES = {"ScoreConfig": "stage", "run_score": "stage", "score_one_seed": "stage",
          "ScoreTable": "table", "load_scores": "table", "save_scores": "table"}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
