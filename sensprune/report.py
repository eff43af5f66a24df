"""Stage 4 — report: one self-contained HTML page (plus its PNGs) for a score, prune or bench folder.

``build_report(folder)`` writes ``folder/report/report.html``; every figure is embedded as a
base64 ``data:`` URI *and* written beside the page as a PNG. The page is assembled in a
temporary folder and moved into place only when complete; an existing report is replaced only
with ``force``. The figures come from :mod:`sensprune.plots` (arrays in, PNG out).
"""

from __future__ import annotations

import csv
import html
import os
from pathlib import Path
from typing import Any

import numpy as np

from sensprune.errors import ValidationError
from sensprune.measures import estimator_text
from sensprune.page import Page as _Page
from sensprune.page import table_html as _table
from sensprune.report_bench import bench_page
from sensprune.io import (META, atomic_write_text, base_meta, prepare_out, prepare_out_file, publish_dir, read_json,
                          read_meta, staging_dir, write_json)

KINDS = ("scores", "selection", "bench")
PREFERRED = ("loss_sensitivity", "input_grad")
_NOT_STORED_PRED = ("The predicted label is not shown: this score folder predates predicted.npy "
                    "(the warmup model's final predictions).")


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


def default_measure(measures: list[str]) -> str:
    """loss_sensitivity if present, else input_grad, else the first measure."""
    return next((m for m in PREFERRED if m in measures), measures[0])


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
        raise ValidationError(f"The 'top' parameter must be an integer >= 1. Got {top!r} instead.")
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
        from sensprune.score_table import load_scores

        table = load_scores(folder)
        measure = measure or default_measure(table.measures)
        table.get(measure)  # unknown measure -> ValidationError naming the ones there are
    elif measure is not None:
        raise ValidationError("--measure applies to score folders only.")
    stage = staging_dir(fig_dir)
    try:
        page = _Page(page_title(meta["kind"], folder), stage, prefix)
        if meta["kind"] == "scores":
            _scores_page(page, folder, table, measure, top)
        elif meta["kind"] == "selection":
            _selection_page(page, folder, meta, html_path.parent)
        else:
            bench_page(page, folder)
        text = page.render(progress)
        write_json(stage / META, {**base_meta("report"), "source": str(folder), "source_kind": meta["kind"],
                                  "page": html_path.name})
        if out is None:
            atomic_write_text(stage / "report.html", text)
            publish_dir(stage, fig_dir, replaceable=_is_old_report_dir)
        else:
            publish_dir(stage, fig_dir, replaceable=_is_old_report_dir)
            atomic_write_text(html_path, text)
    except BaseException:
        import shutil

        shutil.rmtree(stage, ignore_errors=True)
        raise
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


# -- score folders -------------------------------------------------------------------------------------

def _scores_page(page: _Page, folder: Path, table, measure: str, top: int) -> None:
    from sensprune import plots

    meta, ds = table.meta, table.meta.get("dataset", {})
    n = len(table.index)
    page.raw(_table(["dataset", "training examples", "classes", "input shape", "seeds", "fingerprint"],
                    [[ds.get("spec", "?"), n, ds.get("num_classes", "?"), ds.get("input_shape", "?"),
                      len(meta.get("seeds", [])), ds.get("fingerprint", "?")]]))
    dirs = meta.get("measures", {})
    notes = meta.get("measure_notes", {})
    page.raw(_table(["measure", "direction", "Gini", "estimator"],
                    [[m, dirs.get(m, {}).get("direction", ""), (meta.get("gini") or {}).get(m, ""),
                      estimator_text(notes.get(m))] for m in table.measures]))
    corrupted = None
    if (folder / "corrupted.npy").exists():
        idx = np.load(folder / "corrupted.npy", allow_pickle=False)
        corrupted = np.zeros(n, bool)
        corrupted[idx[(idx >= 0) & (idx < n)]] = True
    s = table.scores[measure]
    p_label = 1.0 - table.scores["confidence"] if "confidence" in table.scores else None
    page.h2(f"Sensitivity map ({measure})")
    if p_label is None and "variability" not in table.scores:
        page.p("No confidence or variability measure in this folder; the map is drawn against the index.",
               "note")
    page.figure("sensitivity_map", f"{measure} of each training example against mean p(given label | x) "
                "(= 1 − the stored 'confidence' column) and variability"
                + ("; red = corrupted label" if corrupted is not None else ""),
                lambda p: plots.sensitivity_map(s, p, p_label=p_label, variability=table.scores.get("variability"),
                                                corrupted=corrupted, measure=measure))
    page.h2("Concentration: Lorenz curves and Gini over epochs")
    if meta.get("lorenz"):
        page.figure("lorenz", "Lorenz curve of each measure (mean over seeds)",
                    lambda p: plots.lorenz_curves(meta["lorenz"], p, gini=meta.get("gini")))
    if meta.get("gini_per_epoch"):
        once = computed_at(meta.get("config", {}), list(meta["gini_per_epoch"]))
        note = "; " + ", ".join(f"{m} is computed at epoch {', '.join(map(str, e))} only (diamonds)"
                                for m, e in once.items()) if once else ""
        page.figure("gini_epochs", "Gini of each measure after each epoch (mean over seeds)" + note,
                    lambda p: plots.gini_over_epochs(meta["gini_per_epoch"], p, computed_at=once))
    if "per_class" in table.extras:
        g = table.extras["per_class"]
        off = meta.get("extras", {}).get("per_class", {}).get("off_diagonal_fraction")
        page.h2("Per-class loss sensitivity")
        mode = estimator_text(meta.get("measure_notes", {}).get("per_class"))
        page.figure("per_class", "g_ij: sensitivity of class i's loss to class j's inputs (log colour scale)"
                    + (f"; estimator: {mode}" if mode else ""),
                    lambda p: plots.per_class_heatmap(g, p, off_diagonal=off))
    hist = meta.get("history", {})
    csr = table.extras.get("csr")
    if csr is None and meta.get("extras", {}).get("csr", {}).get("curve"):
        csr = np.asarray(meta["extras"]["csr"]["curve"], np.float64)
    if hist:
        page.h2("Accuracy" + (" and critical sample ratio" if csr is not None else "") + " over the warmup")
        test = {sd: [r.get("test_acc", np.nan) for r in h] for sd, h in hist.items()}
        train = {sd: [r.get("train_acc", np.nan) for r in h] for sd, h in hist.items()}
        page.figure("accuracy_csr", "test accuracy per seed (solid), train accuracy at presentation time "
                    "(dotted)" + ("; CSR of test examples (black, right axis)" if csr is not None else ""),
                    lambda p: plots.accuracy_and_csr(test, p, train_acc=train, csr=csr))
    _gallery(page, table, measure, s, corrupted, top)


def computed_at(config: dict, measures: list[str]) -> dict[str, list[int]]:
    """Measures of ``measures`` computed at a few epochs only, not accumulated over the warmup: EL2N at
    ``el2n_epoch``, GraNd at ``grand_epochs`` (default the EL2N epoch), input_grad at ``at_checkpoints``."""
    import math

    epochs = int((config.get("train") or {}).get("epochs") or 0)
    el2n = config.get("el2n_epoch") or max(1, math.ceil(0.1 * epochs))
    grand = (config.get("measure_options") or {}).get("grand_epochs") or [el2n]
    at = {"el2n": [el2n], "grand": list(grand)}
    if config.get("at_checkpoints"):
        at["input_grad"] = list(config["at_checkpoints"])
    return {m: [int(e) for e in at[m]] for m in measures if m in at}


def _gallery(page: _Page, table, measure: str, s: np.ndarray, corrupted, top: int) -> None:
    from sensprune import plots

    order = np.argsort(-np.nan_to_num(s, nan=-np.inf), kind="stable")
    k = min(top, len(order))
    picks = {"most": order[:k], "least": order[::-1][:k]}
    x, why = load_inputs(table.meta)
    shape = list(table.meta.get("dataset", {}).get("input_shape", []))
    spec = str(table.meta.get("dataset", {}).get("spec", ""))
    drawable = x is not None and (len(shape) in (2, 3) or (len(shape) == 1 and not spec.startswith("csv:")
                                                           and shape[0] >= 16))
    for which, idx in picks.items():
        page.h2(f"{which.capitalize()} sensitive examples by {measure}")
        pred = table.predicted
        src = table.source_row
        rows = [[int(table.index[i])] + ([src[i].item()] if src is not None else []) + [int(table.label[i])]
                + ([int(pred[i])] if pred is not None else [])
                + [float(s[i])] + ([bool(corrupted[i])] if corrupted is not None else []) for i in idx]
        head = (["index"] + (["source row"] if src is not None else []) + ["given label"]
                + (["predicted"] if pred is not None else []) + [measure]
                + (["corrupted"] if corrupted is not None else []))
        if drawable:
            caps = [f"#{int(table.index[i])} y={int(table.label[i])}"
                    + (f" ŷ={int(pred[i])}" if pred is not None else "")
                    + (" (corr.)" if corrupted is not None and corrupted[i] else "") + f"\n{float(s[i]):.3g}"
                    for i in idx]
            xs = x[table.index[idx]]
            caption = (f"{which} sensitive by {measure}. Each title: #index in the training split, y = the given "
                       "label" + (", ŷ = the label the warmup model predicts after its last epoch (majority over "
                                  "seeds); y ≠ ŷ marks an example the model does not fit" if pred is not None else "")
                       + (", (corr.) = a corrupted label" if corrupted is not None else "")
                       + f"; second line: the {measure} score")
            page.figure(f"gallery_{which}", caption,
                        lambda p, xs=xs, caps=caps, w=which: plots.gallery(xs, caps, p, title=f"{w} sensitive"))
        elif x is not None:
            feats = x[table.index[idx]].reshape(len(idx), -1)[:, :8]
            head += [f"x{j}" for j in range(feats.shape[1])]
            rows = [r + [float(v) for v in f] for r, f in zip(rows, feats)]
        else:
            page.p(f"The inputs cannot be drawn ({why}); showing index, label and score only.", "note")
        page.raw(_table(head, rows))
    if table.predicted is None:
        page.p(_NOT_STORED_PRED, "note")


def load_inputs(meta: dict) -> tuple[np.ndarray | None, str]:
    """Reload the scored training inputs (N, ...) or return (None, why not); checks the fingerprint."""
    from sensprune.data import load_dataset
    from sensprune.data.noise import apply_corruption

    ds = meta.get("dataset", {})
    opts = meta.get("config", {}).get("data_options") or {}
    spec = meta.get("config", {}).get("dataset") or ds.get("spec")
    try:
        data = load_dataset(spec, data_root=opts.get("data_root"), subsample=opts.get("subsample"),
                            label_column=opts.get("label_column"))
        corr = ds.get("corruption")
        if corr:
            data, _ = apply_corruption(data, corr["kind"], corr["fraction"], corr["seed"])
    except Exception as exc:  # any failure to reload only costs the pictures
        return None, f"the dataset {spec!r} could not be reloaded: {' '.join(str(exc).split())[:200]}"
    if data.fingerprint != ds.get("fingerprint"):
        return None, (f"the dataset {spec!r} now loads with fingerprint {data.fingerprint}, not the scored "
                      f"{ds.get('fingerprint')}")
    return np.asarray(data.x_train), ""


# -- prune folders -------------------------------------------------------------------------------------

def _selection_page(page: _Page, folder: Path, meta: dict, html_dir: Path) -> None:
    from sensprune import plots
    from sensprune.selection import load_selection

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


# -- bench folders -------------------------------------------------------------------------------------
