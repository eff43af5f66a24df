"""Stage 2 — pruning: turn scores into a selection or into per-example weights, and export them.

- :mod:`~sensprune.pruning.rules`: which examples a rule removes (:func:`keep_mask`);
- :mod:`~sensprune.pruning.stage`: :func:`select` (scores → selection) and :func:`reweight` (scores → weights);
- :mod:`~sensprune.pruning.selection`: the prune folder (:func:`load_selection`, :class:`Selection`, subsets);
- :mod:`~sensprune.pruning.export`: the kept rows in the source's own format (``--export-data``).

The facade verb is the plain function ``sp.prune`` (:func:`sensprune.api.prune`).
The names below are re-exported lazily.
"""

from sensprune.plugins import lazy_exports

_NAMES = {"select": "stage", "reweight": "stage", "rank_average": "stage", "keep_mask": "rules",
          "Selection": "selection", "load_selection": "selection", "save_selection": "selection",
          "as_subset": "selection", "as_sampler": "selection", "export_data": "export"}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
