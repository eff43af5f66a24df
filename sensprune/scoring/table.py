"""The scoring stage's artifact: a per-example score table and its folder format.

Folder layout (``sensprune score --out DIR``)::

    scores.npz   index (N,) int64, label (N,) int64, source_row (N,) (int64, or str for ImageFolder
                 paths), one (N,) float64 array per measure (mean over seeds), and
                 ``<measure>__seed<s>`` per seed
    scores.csv   index,source_row,label,<one column per measure>
    per_class.npy, per_class.csv   (K, K) per-class loss sensitivity g_ij, with ``--per-class``
    csr.npy, csr.csv               critical sample ratio after each epoch, with ``--csr``
    meta.json    kind="scores", resolved config, seeds, dataset description and fingerprint,
                 measure directions, Gini per epoch, warmup history, wall time

Every measure is oriented so that **higher = more sensitive / harder / more suspicious**.

``index`` is the position in the training split as the dataset spec orders it; ``source_row`` is
where that example sits in the user's data (see :attr:`sensprune.data.base.Dataset.train_rows`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sensprune.errors import SensPruneWarning, ValidationError
from sensprune.io import (META, base_meta, fingerprint_arrays, fingerprint_file, read_meta, read_npy, read_npz,
                          staged_dir, write_csv, write_json, write_npy, write_npz)
from sensprune.scoring.meta_schema import check_score_meta

SCORES_NPZ = "scores.npz"
SCORES_CSV = "scores.csv"
PREDICTED_NPY = "predicted.npy"
SOURCE_ROW = "source_row"
NOT_MEASURES = ("index", "label", SOURCE_ROW)


@dataclass
class ScoreTable:
    """Per-example scores of one training set.

    Attributes
    ----------
    index : ndarray (N,) int64
        Position of each example in the training set, as the dataset spec orders it.
    label : ndarray (N,) int64
        The label the warmup trained on (the corrupted one, when noise was injected).
    scores : dict of str -> ndarray (N,) float64
        One array per measure, mean over seeds; higher = harder.
    per_seed : dict of str -> ndarray (S, N) float64
    meta : dict
        Everything ``meta.json`` holds.
    predicted : ndarray (N,) int64 or None
        The warmup model's predicted class of each example after the last epoch (eval mode),
        the most frequent over seeds (ties → lowest class); saved as ``predicted.npy``.
    extras : dict of str -> ndarray
        Non-per-example arrays, mean over seeds: ``per_class`` (K, K) (row i = whose loss, column
        j = whose inputs), ``csr`` (epochs,).
    source_row : ndarray (N,) or None
        Where each example sits in the user's data: the CSV data row (0-based, header not
        counted), the index in the NPZ arrays or the original dataset (int64), or the ImageFolder
        file path (str). None for tables from before this column existed.
    """

    index: np.ndarray
    label: np.ndarray
    scores: dict[str, np.ndarray]
    per_seed: dict[str, np.ndarray] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    predicted: np.ndarray | None = None
    source_row: np.ndarray | None = None

    @property
    def measures(self) -> list[str]:
        return list(self.scores)

    def arrays(self) -> dict[str, np.ndarray]:
        out = {"index": self.index.astype(np.int64), "label": self.label.astype(np.int64)}
        if self.source_row is not None:
            out[SOURCE_ROW] = np.asarray(self.source_row)
        for name, arr in self.scores.items():
            out[name] = np.asarray(arr, dtype=np.float64)
        for name, arr in self.per_seed.items():
            for s, row in enumerate(np.asarray(arr, dtype=np.float64)):
                out[f"{name}__seed{s}"] = row
        return out

    def fingerprint(self) -> str:
        arrs = self.arrays()
        return fingerprint_arrays(*(arrs[k] for k in sorted(arrs)), extra=",".join(sorted(arrs)))

    def get(self, measure: str) -> np.ndarray:
        """The (N,) scores of ``measure``; a ValidationError names the measures there are."""
        if measure not in self.scores:
            raise ValidationError(f"Measure {measure!r} is not in the score file; it has: "
                                  f"{', '.join(self.measures) or '(none)'}.")
        return self.scores[measure]


def score_meta(*, config: dict[str, Any], seeds: list[int], dataset: dict[str, Any], values: dict[str, np.ndarray],
               gini_rows, history: dict[str, Any], notes: dict[str, Any], extras: dict[str, Any] | None = None,
               note: str, wall_time_s: float) -> dict[str, Any]:
    """The ``meta.json`` of a score folder: one builder for ``sensprune score`` and the Tracker (the same keys).

    ``values``: each measure's (N,) values in column order; ``gini_rows``: (epochs, M) Gini of each measure's
    running value after each epoch. ``gini`` and ``lorenz`` (Arpit et al. 2017, §3.2) are over the examples with
    a finite value (NaN: not presented, or not defined yet); a measure without any has ``gini`` null and no
    Lorenz curve, as a NaN in ``gini_per_epoch`` is null. ``note`` says what computed the values.
    """
    from sensprune.measures import measure_spec
    from sensprune.measures.gini import gini, lorenz

    rows = np.asarray(gini_rows, np.float64).reshape(-1, len(values))
    finite = {m: np.asarray(v, np.float64)[np.isfinite(v)] for m, v in values.items()}
    return {
        "config": config,
        "seeds": list(seeds),
        "dataset": dataset,
        "measures": {m: {"direction": measure_spec(m).direction, "description": measure_spec(m).description}
                     for m in values},
        "gini_per_epoch": {m: [float(g) if np.isfinite(g) else None for g in rows[:, j]]
                           for j, m in enumerate(values)},
        "gini_note": "Gini of each measure's running value after each epoch, mean over seeds; signed measures (aum) "
                     "are shifted by their minimum first; gini and lorenz are over the examples with a finite value "
                     "(null and no curve when none has one).",
        "gini": {m: float(gini(f)) if f.size else None for m, f in finite.items()},
        "lorenz": {m: lorenz(f).round(6).tolist() for m, f in finite.items() if f.size},
        "history": history,
        "measure_notes": notes,
        "extras": extras or {},
        "train_accuracy_note": "train_acc is measured at presentation time during each epoch (train mode).",
        "note": note,
        "wall_time_s": wall_time_s,
    }


def save_scores(table: ScoreTable, out: Path, *, extra_files: dict[str, Any] | None = None) -> None:
    """Write ``table`` as an artifact folder at ``out`` (assembled aside, then moved into place).

    ``extra_files`` maps a file name to a callable ``f(path)`` that writes it inside the folder.
    """
    with staged_dir(out) as stage:  # removed again on any error (a full disk): nothing half-written is left
        write_npz(stage / SCORES_NPZ, table.arrays())
        names = table.measures
        src = [""] * len(table.index) if table.source_row is None else np.asarray(table.source_row).tolist()
        rows = zip(table.index.tolist(), src, table.label.tolist(), *(table.scores[m].tolist() for m in names))
        write_csv(stage / SCORES_CSV, ["index", SOURCE_ROW, "label", *names], rows)
        for name, arr in table.extras.items():
            _write_extra(stage, name, np.asarray(arr, np.float64))
        if table.predicted is not None:
            write_npy(stage / PREDICTED_NPY, np.asarray(table.predicted, np.int64))
        for fname, writer in (extra_files or {}).items():
            writer(stage / fname)
        meta = {**base_meta("scores"), **table.meta, "scores_fingerprint": table.fingerprint(),
                "scores_csv_sha256": fingerprint_file(stage / SCORES_CSV)}  # to notice a later hand edit
        write_json(stage / "meta.json", meta)


def _write_extra(stage: Path, name: str, arr: np.ndarray) -> None:
    """``<name>.npy`` and ``<name>.csv``: a matrix row by row, a curve as (epoch, value)."""
    write_npy(stage / f"{name}.npy", arr)
    if arr.ndim == 2:
        rows = ([i, *r] for i, r in enumerate(arr.tolist()))
        write_csv(stage / f"{name}.csv", ["row_class", *(str(j) for j in range(arr.shape[1]))], rows)
    else:
        write_csv(stage / f"{name}.csv", ["epoch", name], ([e + 1, v] for e, v in enumerate(arr.ravel().tolist())))


def load_scores(folder: str | Path) -> ScoreTable:
    """Read a ``sensprune score`` folder; a truncated or inconsistent file is a ValidationError."""
    folder = Path(folder)
    meta = read_meta(folder, kind="scores")
    check_score_meta(meta, folder / META)  # the fields prune and report read, before either reads one
    arrs = read_npz(folder / SCORES_NPZ)
    for key in ("index", "label"):
        if key not in arrs:
            raise ValidationError(f"{folder / SCORES_NPZ} has no {key!r} array; the file is corrupt.")
    n = len(arrs["index"])
    scores, seeds = {}, {}
    for key, arr in arrs.items():
        if key in NOT_MEASURES:
            continue
        if arr.shape != (n,):
            raise ValidationError(f"{folder / SCORES_NPZ}: array {key!r} has shape {arr.shape}, expected ({n},).")
        if "__seed" in key:
            name, s = key.rsplit("__seed", 1)
            seeds.setdefault(name, {})[int(s)] = arr
        else:
            scores[key] = arr
    per_seed = {k: np.stack([v[s] for s in sorted(v)]) for k, v in seeds.items()}
    extras = {k: read_npy(folder / f"{k}.npy") for k in meta.get("extras", {}) if (folder / f"{k}.npy").exists()}
    predicted = None
    if (folder / PREDICTED_NPY).exists():
        predicted = read_npy(folder / PREDICTED_NPY)
        if predicted.shape != (n,):
            raise ValidationError(f"{folder / PREDICTED_NPY} has shape {predicted.shape}, expected ({n},).")
    source_row = arrs.get(SOURCE_ROW)
    if source_row is not None and source_row.shape != (n,):
        raise ValidationError(f"{folder / SCORES_NPZ}: array {SOURCE_ROW!r} has shape {source_row.shape}, "
                              f"expected ({n},).")
    table = ScoreTable(arrs["index"], arrs["label"], scores, per_seed, meta, extras, predicted, source_row)
    want = meta.get("scores_fingerprint")
    if want is not None and want != table.fingerprint():
        raise ValidationError(f"{folder} does not match its meta.json fingerprint; the files are corrupt "
                              "or were edited.")
    _warn_if_csv_edited(folder, meta)
    return table


def _warn_if_csv_edited(folder: Path, meta: dict[str, Any]) -> None:
    """scores.npz is the file sensprune reads; scores.csv is a copy for people. Say so when it was edited."""
    want, csv_path = meta.get("scores_csv_sha256"), folder / SCORES_CSV
    if want is None:  # written before the CSV's checksum was recorded
        return
    have = fingerprint_file(csv_path) if csv_path.is_file() else None
    if have != want:
        warnings.warn(f"{csv_path} {'is missing' if have is None else 'was edited after it was written'}; "
                      f"sensprune reads {SCORES_NPZ} (the authoritative file), so "
                      f"{'nothing is lost' if have is None else 'the edit is ignored'}.",
                      SensPruneWarning, stacklevel=3)
