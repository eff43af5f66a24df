"""Stage 4 — reporting: one self-contained HTML page (plus its PNGs) for a score, prune or bench folder.

- :mod:`~sensprune.reporting.build`: :func:`build_report` (which page a folder gets, written atomically);
- one builder per artifact kind: :mod:`~sensprune.reporting.scores`, :mod:`~sensprune.reporting.selection`,
  :mod:`~sensprune.reporting.bench`;
- :mod:`~sensprune.reporting.page` (the HTML page) and :mod:`~sensprune.reporting.plots` (arrays in, PNG out).
"""

from sensprune.plugins import lazy_exports

_NAMES = {"build_report": "build", "page_title": "build"}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
