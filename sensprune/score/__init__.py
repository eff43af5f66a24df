"""Stage 1 — score: train a warmup model and compute per-example measures (:mod:`~sensprune.score.stage`).

- :mod:`~sensprune.score.stage`: :class:`ScoreConfig`, :func:`score` (arrays in, a :class:`ScoreTable` out) and
  :func:`run_score` (a score folder on disk, resumable);
- :mod:`~sensprune.score.table`: the score table and its folder format (:func:`load_scores`).

``sensprune.score`` is also the facade verb: ``sp.score(...)`` calls :func:`sensprune.api.score`.
The names below are re-exported lazily: importing this package loads no torch by itself.
"""

from sensprune.plugins import lazy_exports

_NAMES = {"ScoreConfig": "stage", "run_score": "stage", "score_one_seed": "stage",
          "ScoreTable": "table", "load_scores": "table", "save_scores": "table"}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
