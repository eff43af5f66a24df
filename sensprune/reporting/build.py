"""Stage 4 — report: one self-contained HTML page (plus its PNGs) for a score, prune or bench folder.

``build_report(folder)`` writes ``folder/report/report.html``; every figure is embedded as a
base64 ``data:`` URI *and* written beside the page as a PNG. The page is assembled in a
temporary folder and moved into place only when complete; an existing report is replaced only
with ``force``. The figures come from :mod:`sensprune.reporting.plots` (arrays in, PNG out).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from sensprune.errors import ValidationError
from sensprune.io import (META, atomic_write_text, base_meta, prepare_out, prepare_out_file, read_json, read_meta,
                          staged_dir, staged_file, write_json)
from sensprune.reporting.bench import bench_page
from sensprune.reporting.page import Page as _Page
from sensprune.reporting.scores import default_measure, scores_page
from sensprune.reporting.selection import selection_page

KINDS = ("scores", "selection", "bench")


def _read_folder_meta(folder: Path) -> dict[str, Any]:
    """The artifact's meta; a bench folder without meta.json (config.json + summary.csv) also counts."""
    if folder.is_dir() and not (folder / META).exists() and (folder / "config.json").exists() \
            and (folder / "summary.csv").exists():
        return {"kind": "bench", "config": read_json(folder / "config.json")}
    meta = read_meta(folder)
    if meta["kind"] not in KINDS:
        raise ValidationError(f"{folder} is a {meta['kind']!r} artifact; a report needs one of: {', '.join(KINDS)}.")
    return meta


#: what each artifact kind is called in the page title
_KIND_NAMES = {"scores": "scores", "selection": "pruning", "bench": "bench"}


def page_title(kind: str, folder: Path) -> str:
    """``"sensprune report: scores in runs/digits"`` — the kind in words and the folder as given."""
    return f"sensprune report: {_KIND_NAMES.get(kind, kind)} in {folder}"


def build_report(folder: str | Path, *, out: str | Path | None = None, measure: str | None = None,
                 top: int = 16, force: bool = False, progress: bool = True) -> Path:
    """Write the HTML report of a score, prune (selection) or bench folder; returns the page's path.

    Parameters
    ----------
    folder : the artifact folder.
    out : path of the HTML page; default ``folder/report/report.html``. Its figures go beside it
        (default layout) or in ``<stem>_files/`` next to it (custom ``out``).
    measure : measure of the sensitivity map and gallery (score folders); default
        :func:`default_measure`.
    top : how many most (and least) sensitive examples the gallery shows.
    force : replace an existing report.

    Everything is checked before anything is written: a folder that is not an artifact, a newer
    format version, an unknown measure or an existing report (without ``force``) raise
    :class:`ValidationError`.
    """
    folder = Path(folder)
    meta = _read_folder_meta(folder)
    if not isinstance(top, int) or top < 1:
        raise ValidationError(f"The 'top' parameter must be an integer >= 1; got {top!r}.")
    if out is None:
        html_path, fig_dir, prefix = folder / "report" / "report.html", folder / "report", ""
    else:
        html_path = Path(out)
        if html_path.suffix.lower() not in (".html", ".htm"):
            raise ValidationError(f"--out must name an .html file; got {html_path}.")
        fig_dir, prefix = html_path.parent / f"{html_path.stem}_files", f"{html_path.stem}_files/"
        prepare_out_file(html_path, force=force, inputs=[folder], allow_inside_inputs=True,
                         replaceable=_is_report_page)
    # --force replaces only a report folder (meta.json kind "report", or an older one holding only its page
    # and PNGs), never a user's folder; nothing is written until the new report is complete.
    prepare_out(fig_dir, force=force, inputs=[folder], allow_inside_inputs=True, replaceable=_is_old_report_dir)
    if meta["kind"] == "scores":
        from sensprune.scoring.table import load_scores

        table = load_scores(folder)
        measure = measure or default_measure(table.measures)
        table.get(measure)  # unknown measure -> ValidationError naming the ones there are
    elif measure is not None:
        raise ValidationError("--measure applies to score folders only.")
    # The page and its figures are published together or not at all: a custom --out page is written to a hidden
    # sibling first, the figure folder is published, then the page moves into place with one rename. On any
    # error (a full disk) neither the page, nor the figure folder, nor a staging folder is left behind.
    page_file = staged_file(html_path) if out is not None else contextlib.nullcontext(None)
    with page_file as page_tmp, staged_dir(fig_dir, replaceable=_is_old_report_dir) as stage:
        page = _Page(page_title(meta["kind"], folder), stage, prefix)
        if meta["kind"] == "scores":
            scores_page(page, folder, table, measure, top)
        elif meta["kind"] == "selection":
            selection_page(page, folder, meta, html_path.parent)
        else:
            bench_page(page, folder)
        text = page.render(progress)
        write_json(stage / META, {**base_meta("report"), "source": str(folder), "source_kind": meta["kind"],
                                  "page": html_path.name})
        atomic_write_text(stage / "report.html" if page_tmp is None else page_tmp, text)
    return html_path


def _is_report_page(path: Path) -> bool:
    """Is ``path`` an HTML page written by :func:`build_report` (so that --force may replace it)?"""
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError:
        return False
    return head.startswith(b"<!DOCTYPE html>") and b"<title>sensprune report" in head


def _is_old_report_dir(folder: Path) -> bool:
    """A report folder from before reports wrote meta.json: only PNGs plus its sensprune page, which is
    ``report.html`` inside it (default layout) or ``<stem>.html`` beside a ``<stem>_files`` folder."""
    files = list(folder.iterdir())
    if not all(f.is_file() and f.suffix in (".png", ".html") for f in files):
        return False
    pages = [f for f in files if f.suffix == ".html"]
    if pages:
        return [f.name for f in pages] == ["report.html"] and _is_report_page(pages[0])
    stem = folder.name[:-len("_files")] if folder.name.endswith("_files") else None
    return stem is not None and _is_report_page(folder.parent / f"{stem}.html")
