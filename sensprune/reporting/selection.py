"""The report page of a prune folder (``sensprune prune --out DIR``): what was kept, by class and by score."""

from __future__ import annotations

import csv
import html
import os
from pathlib import Path
from typing import Any

import numpy as np

from sensprune.errors import ValidationError
from sensprune.io import META, read_json, regular_file
from sensprune.reporting.page import Page as _Page
from sensprune.reporting.page import table_html as _table


def selection_page(page: _Page, folder: Path, meta: dict, html_dir: Path) -> None:
    from sensprune.pruning.selection import load_selection
    from sensprune.reporting import plots

    sel = load_selection(folder)
    c = meta.get("counts", {})
    how = f"rule {meta.get('rule')}" if meta.get("rule") else f"reweight {meta.get('reweight')}"
    page.p(f"{how} by {'+'.join(meta.get('measure') or [])} ({meta.get('direction', '')}): removed "
           f"{len(sel.drop)} of {sel.n}, kept {len(sel.keep)}.")
    params = {"rule": meta.get("rule"), "reweight": meta.get("reweight"),
              "measure": ", ".join(meta.get("measure") or []), "combine": meta.get("combine"),
              **(meta.get("parameters") or {})}
    page.raw(_table(["parameter", "value"], [[k, _param(v)] for k, v in params.items() if v is not None]))
    parent = find_parent_scores(folder, meta.get("scores_fingerprint"))
    if parent is not None:
        rel = os.path.relpath(parent, html_dir)
        page.raw(f"<p>Parent score folder: <a href='{html.escape(rel)}'>{html.escape(str(parent))}</a></p>")
    else:
        page.p(f"Parent score folder (fingerprint {meta.get('scores_fingerprint')}) not found beside this "
               "folder.", "note")
    per_class = c.get("per_class", {})
    if per_class:
        page.raw(_table(["class", "n", "removed", "kept", "removed %"],
                        [[k, r.get("n"), r.get("removed"), r.get("kept"), 100 * float(r.get("removed_fraction", 0))]
                         for k, r in per_class.items()]))
    label, score = _selection_columns(folder / "selection.csv", sel.n)
    if label is not None and np.isfinite(score).any():
        page.h2("Scores of kept and dropped examples per class")
        kept = sel.mask()
        name = "+".join(meta.get("measure") or ["score"])
        page.figure("kept_dropped", f"histogram of {name} per class: kept (blue) vs dropped (red)",
                    lambda p: plots.kept_dropped_hist(score, label, kept, p, measure=name))
    else:
        page.p("selection.csv holds no scores; no histograms.", "note")


def _param(v: Any) -> Any:
    """A parameter value as a table cell: numbers stay numbers, lists are joined, booleans are words."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, (list, tuple)):
        return ", ".join(map(str, v))
    return v


def _selection_columns(path: Path, n: int) -> tuple[np.ndarray | None, np.ndarray | None]:
    if not path.exists():
        return None, None
    regular_file(path, str(path))  # a FIFO would block the read
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    if len(rows) != n:
        return None, None
    label = np.array([int(r["label"]) for r in rows])
    score = np.array([float(r["score"]) if r["score"] not in ("", "nan") else np.nan for r in rows])
    return label, score


def find_parent_scores(folder: Path, fingerprint: str | None) -> Path | None:
    """A score folder beside ``folder`` (same parent) whose ``scores_fingerprint`` is ``fingerprint``."""
    if not fingerprint:
        return None
    for cand in sorted(folder.resolve().parent.iterdir()):
        try:
            if cand.is_dir() and (cand / META).exists() and read_json(cand / META).get("scores_fingerprint") \
                    == fingerprint and read_json(cand / META).get("kind") == "scores":
                return cand
        except (ValidationError, OSError, AttributeError):
            continue
    return None
