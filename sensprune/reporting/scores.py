"""The report page of a score folder (``sensprune score --out DIR``): distributions, Gini, per-class, gallery."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sensprune.io import read_npy
from sensprune.measures import estimator_text
from sensprune.reporting.page import Page as _Page
from sensprune.reporting.page import table_html as _table

PREFERRED = ("loss_sensitivity", "input_grad")


_NOT_STORED_PRED = ("The predicted label is not shown: this score folder predates predicted.npy "
                    "(the warmup model's final predictions).")


def default_measure(measures: list[str]) -> str:
    """loss_sensitivity if present, else input_grad, else the first measure."""
    return next((m for m in PREFERRED if m in measures), measures[0])


def scores_page(page: _Page, folder: Path, table, measure: str, top: int) -> None:
    from sensprune.reporting import plots

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
        idx = read_npy(folder / "corrupted.npy")
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
    inputs = _inputs(table, folder)
    if "memorization" in table.scores:
        _memorization(page, table, inputs, corrupted, top)
    _gallery(page, table, inputs, measure, s, corrupted, top,
             ("least",) if measure == "memorization" else ("most", "least"))  # most memorized: shown above


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


def _inputs(table, folder: Path) -> tuple[np.ndarray | None, str, bool]:
    """The scored inputs (N, ...) or None, why not, and whether they can be drawn (images, or long 1-D signals)."""
    x, why = load_inputs(table.meta, folder)
    shape = list(table.meta.get("dataset", {}).get("input_shape", []))
    spec = str(table.meta.get("dataset", {}).get("spec", ""))
    drawable = x is not None and (len(shape) in (2, 3) or (len(shape) == 1 and not spec.startswith("csv:")
                                                           and shape[0] >= 16))
    return x, why, drawable


def _gallery(page: _Page, table, inputs, measure: str, s: np.ndarray, corrupted, top: int,
             which: tuple[str, ...] = ("most", "least")) -> None:
    order = np.argsort(-np.nan_to_num(s, nan=-np.inf), kind="stable")
    k = min(top, len(order))
    picks = {"most": order[:k], "least": order[::-1][:k]}
    for w in which:
        page.h2(f"{w.capitalize()} sensitive examples by {measure}")
        _examples(page, table, inputs, f"gallery_{w}", f"{w} sensitive", f"{w} sensitive by {measure}", picks[w],
                  measure, s, corrupted)
    if table.predicted is None:
        page.p(_NOT_STORED_PRED, "note")


def _examples(page: _Page, table, inputs, name: str, title: str, what: str, idx: np.ndarray, measure: str,
              s: np.ndarray, corrupted, extra: dict[str, np.ndarray] | None = None) -> None:
    """The examples ``idx``: a gallery ``name`` of their inputs (images, 1-D signals) titled with index, label and
    score, its caption opening with ``what``, then a table of their rows (index, source row, labels, ``measure``,
    the ``extra`` columns); for other data the table alone, with its first features."""
    from sensprune.reporting import plots

    x, why, drawable = inputs
    extra = extra or {}
    pred = table.predicted
    src = table.source_row
    rows = [[int(table.index[i])] + ([src[i].item()] if src is not None else []) + [int(table.label[i])]
            + ([int(pred[i])] if pred is not None else [])
            + [float(s[i])] + [float(v[i]) for v in extra.values()]
            + ([bool(corrupted[i])] if corrupted is not None else []) for i in idx]
    head = (["index"] + (["source row"] if src is not None else []) + ["given label"]
            + (["predicted"] if pred is not None else []) + [measure] + list(extra)
            + (["corrupted"] if corrupted is not None else []))
    if drawable:
        caps = [f"#{int(table.index[i])} y={int(table.label[i])}"
                + (f" ŷ={int(pred[i])}" if pred is not None else "")
                + (" (corr.)" if corrupted is not None and corrupted[i] else "") + f"\n{float(s[i]):.3g}"
                for i in idx]
        xs = x[table.index[idx]]
        caption = (f"{what}. Each title: #index in the training split, y = the given "
                   "label" + (", ŷ = the label the warmup model predicts after its last epoch (majority over "
                              "seeds); y ≠ ŷ marks an example the model does not fit" if pred is not None else "")
                   + (", (corr.) = a corrupted label" if corrupted is not None else "")
                   + f"; second line: the {measure} score")
        page.figure(name, caption, lambda p, xs=xs, caps=caps: plots.gallery(xs, caps, p, title=title))
    elif x is not None:
        feats = x[table.index[idx]].reshape(len(idx), -1)[:, :8]
        head += [f"x{j}" for j in range(feats.shape[1])]
        rows = [r + [float(v) for v in f] for r, f in zip(rows, feats)]
    else:
        page.p(f"The inputs cannot be drawn ({why}); showing index, label and score only.", "note")
    page.raw(_table(head, rows))


def _memorization(page: _Page, table, inputs, corrupted, top: int) -> None:
    """Memorization (Feldman & Zhang 2020): its histogram, a scatter against the paper's loss_sensitivity (else
    the first other measure) and the most memorized examples with their labels."""
    from sensprune.measures import COMPANIONS
    from sensprune.reporting import plots

    mem = table.scores["memorization"]
    note = (table.meta.get("measure_notes") or {}).get("memorization") or {}
    page.h2("Memorization (Feldman & Zhang 2020)")
    how = (f" from {note['models']} models, each trained on a random {note['subset_fraction']:g} of the training "
           f"set to fit ({note.get('models_fit', '?')} of {note['models']} fit)"
           if {"models", "subset_fraction"} <= set(note) else "")
    page.p(f"memorization = P(h(x) = y | x in the subset) − P(h(x) = y | x not in it), estimated{how}: near 1 "
           "= the given label is predicted only when the example is trained on (memorized), near 0 = predicted "
           "either way (or never).")
    if isinstance(note.get("models_not_fit"), int) and note["models_not_fit"] > 0:
        page.p(f"{note['models_not_fit']} of {note['models']} subset models stopped at their epoch cap before "
               "fitting their subset: a label such a model never fits counts as not predicted when trained on, "
               "so its memorization reads lower than under the paper's fitted models (meta.json lists each "
               "model's training accuracy).", "note")
    page.figure("memorization_hist", "memorization of each training example, in [−1, 1]"
                + ("; red = corrupted label" if corrupted is not None else ""),
                lambda p: plots.score_histogram(mem, p, measure="memorization", corrupted=corrupted,
                                                value_range=(-1.0, 1.0)))
    others = [m for m in table.measures if m != "memorization" and m not in COMPANIONS["memorization"]]
    other = "loss_sensitivity" if "loss_sensitivity" in others else (others[0] if others else None)
    if other is None:
        page.p("No other measure in this folder to set memorization against.", "note")
    else:
        why = ("the paper's measure" if other == "loss_sensitivity" else
               "the first other measure in this folder (the paper's loss_sensitivity is not in it)")
        page.figure("memorization_scatter", f"memorization against {other}, {why}; one point per training example"
                    + ("; red crosses = corrupted labels" if corrupted is not None else ""),
                    lambda p: plots.score_scatter(table.scores[other], mem, p, xlabel=other, ylabel="memorization",
                                                  corrupted=corrupted))
    order = np.argsort(-np.nan_to_num(mem, nan=-np.inf), kind="stable")[:min(top, len(mem))]
    page.h2("Most memorized examples")
    extra = {c: table.scores[c] for c in ("memorization_se", "memorization_n_in") if c in table.scores}
    _examples(page, table, inputs, "gallery_memorized", "most memorized",
              "The most memorized examples (y, the given label, is the one the subset models trained on)", order,
              "memorization", mem, corrupted, extra)


def load_inputs(meta: dict, folder: Path | None = None) -> tuple[np.ndarray | None, str]:
    """Reload the scored training inputs (N, ...) or return (None, why not): the data is found as every
    stage finds it (:func:`sensprune.pruning.selection.load_matching_dataset`: ``--data-root``, the path
    relative to ``folder``, the recorded absolute path, the spec as typed) and checked by fingerprint."""
    from sensprune.pruning.selection import load_matching_dataset

    ds = meta.get("dataset", {})
    try:
        data = load_matching_dataset(ds, folder=folder)
    except Exception as exc:  # any failure to reload only costs the pictures
        return None, f"the dataset {ds.get('spec')!r} could not be reloaded: {' '.join(str(exc).split())[:200]}"
    return np.asarray(data.x_train), ""
