"""The one cell format of the open-question tables (``archive/make_table.py`` and ``v2/headline.py``).

A cell is the test-accuracy change in points against ``vs`` (``random`` or ``full``): mean ± 95% paired-t
half-width over seeds, read from a row of a bench grid's ``summary.csv``; nothing is recomputed. **Bold** means
one thing in every table: significant after the Benjamini–Hochberg adjustment over all cells of that grid (the
row's ``sig_bh`` is 1, or -1 for significantly worse). A row without ``sig_bh`` (grids summarised before the
column existed) is never bold.
"""

from __future__ import annotations


def is_bold(row: dict) -> bool:
    """True when the row is significant after the Benjamini–Hochberg adjustment (``sig_bh`` 1 or -1)."""
    return row.get("sig_bh") in ("1", "-1")


def cell(row: dict | None, vs: str = "random") -> str:
    """``+1.2 ± 0.8`` (points), bold when :func:`is_bold`; ``–`` for a missing row or value, ``failed`` when no
    seed finished."""
    if row is None:
        return "–"
    if row.get("n") == "0":
        return "failed"
    if not row.get(f"d_{vs}_mean"):
        return "–"
    m, h = float(row[f"d_{vs}_mean"]), float(row[f"d_{vs}_ci95"])
    if m != m:
        return "–"
    text = f"{100 * m:+.1f} ± {100 * h:.1f}"
    return f"**{text}**" if is_bold(row) else text
