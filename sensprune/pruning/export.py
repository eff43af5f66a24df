"""``sensprune prune --export-data PATH``: a faithful copy of the user's data without the dropped examples.

What is written depends on where the data came from (the format is fixed by the dataset, and
the extension of ``PATH`` must name it, else the export is refused before anything is written):

``csv:FILE`` -> ``.csv``
    The source file itself, byte for byte, minus the records of the dropped training examples:
    the header, every test record, every kept training record, blank lines, quoting, line
    endings, column order and the text of every number stay exactly as they are in ``FILE``
    (an id ``123456789`` stays ``123456789``, ``0.12345678901234567`` keeps its digits). No
    column is added. Without a ``split`` column in ``FILE``, loading the export again as
    ``csv:`` draws a new 80/20 split of the remaining rows.
``npz:FILE`` -> ``.npz``
    The four arrays of ``FILE`` with their original dtype and values: ``x_train`` and
    ``y_train`` indexed by the kept examples' rows, ``x_test`` and ``y_test`` unchanged.
``imagefolder:PATH`` -> ``.txt``
    The kept training images, one path (relative to ``PATH``) per line.
builtin, torchvision and plugin datasets -> ``.npz``
    ``x_train, y_train`` (kept rows only) and ``x_test, y_test`` as sensprune loads them
    (float32 inputs scaled to [0, 1] for images; with ``--corrupt``, the corrupted labels), plus
    ``source_row`` (K,) int64: each kept example's index in the original dataset.

A CSV or NPZ source file that changed since scoring (another SHA-256) is refused.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sensprune.errors import ArtifactMismatchError, ValidationError
from sensprune.io import atomic_write_bytes, atomic_write_text, read_npz, write_npz

#: format -> file extension it must be written to
EXTENSIONS = {"csv": ".csv", "npz": ".npz", "file-list": ".txt"}


def export_format(spec: str) -> str:
    """The format ``--export-data`` writes for a dataset spec: ``"csv"``, ``"npz"`` or ``"file-list"``."""
    spec = spec or ""
    if spec.startswith("imagefolder:"):
        return "file-list"
    return "csv" if spec.startswith("csv:") else "npz"


def check_export_path(spec: str, path: str | Path) -> str:
    """Refuse a ``path`` whose extension does not match what the dataset ``spec`` exports; returns the format."""
    fmt = export_format(spec)
    ext = Path(path).suffix.lower()
    if ext != EXTENSIONS[fmt]:
        what = {"csv": "the CSV file's own rows", "npz": "arrays", "file-list": "a list of image files"}[fmt]
        base = spec.split("?", 1)[0].split("+", 1)[0]
        raise ValidationError(f"--export-data {path}: dataset {base!r} is exported as {what} ({fmt}), so the file "
                              f"must end in {EXTENSIONS[fmt]}, not {ext or 'no extension'!r}.")
    return fmt


def export_data(dataset, keep: np.ndarray, drop: np.ndarray, path: str | Path) -> str:
    """Write the cleaned copy (see the module docstring); returns the format written.

    Parameters
    ----------
    dataset : Dataset or StreamedDataset
        The data the selection was made from (same fingerprint).
    keep, drop : ndarray of int64, sorted
        Training-split indices kept and dropped (a :class:`~sensprune.pruning.selection.Selection`'s).
    path : str or Path
        Its extension must match the format (:func:`check_export_path`).
    """
    path = Path(path)
    n = len(keep) + len(drop)
    if dataset.n_train != n:
        raise ArtifactMismatchError(f"The selection covers {n} examples, the dataset has {dataset.n_train}.")
    fmt = check_export_path(dataset.spec, path)
    rows = dataset.source_rows()
    if fmt == "file-list":
        atomic_write_text(path, "".join(f"{rows[i]}\n" for i in keep.tolist()))
    elif fmt == "csv":
        _export_csv(dataset, rows[drop], path)
    elif dataset.spec.startswith("npz:"):
        src = _source_path(dataset)
        arrays = read_npz(src)
        _check_unchanged(dataset, src)
        kept = rows[keep]
        write_npz(path, {"x_train": arrays["x_train"][kept], "y_train": arrays["y_train"][kept],
                         "x_test": arrays["x_test"], "y_test": arrays["y_test"]})
    else:
        write_npz(path, {"x_train": dataset.x_train[keep], "y_train": dataset.y_train[keep],
                         "x_test": dataset.x_test, "y_test": dataset.y_test,
                         "source_row": np.asarray(rows[keep], np.int64)})
    return fmt


def _source_path(dataset) -> str:
    src = dataset.info.get("source")
    if not isinstance(src, dict) or "path" not in src:
        raise ValidationError(f"Dataset {dataset.spec!r} does not record its source file; cannot export it.")
    return src["path"]


def _check_unchanged(dataset, path: str, sha256: str | None = None) -> None:
    from sensprune.io import fingerprint_file

    want = dataset.info["source"].get("sha256")
    have = sha256 if sha256 is not None else fingerprint_file(path)
    if want is not None and have != want:
        raise ArtifactMismatchError(f"{path} changed since it was scored (SHA-256 {have}, scored {want}); "
                                    "rescore it before exporting.")


def _export_csv(dataset, dropped_rows: np.ndarray, path: Path) -> None:
    """The source CSV minus the records ``dropped_rows`` (data-row numbers, header not counted)."""
    from sensprune.data.arrays import read_csv_text

    src = _source_path(dataset)
    text = read_csv_text(src, f"csv:{src}")
    _check_unchanged(dataset, src, text.sha256)
    n_records = len(text.spans) - 1
    if n_records != dataset.n_train + len(dataset.y_test):
        raise ArtifactMismatchError(f"{src} has {n_records} rows but the scored data had "
                                    f"{dataset.n_train + len(dataset.y_test)}.")
    skip = np.zeros(len(text.lines), bool)
    for r in np.asarray(dropped_rows, np.int64).tolist():
        first, stop = text.spans[r + 1]
        skip[first:stop] = True
    body = "".join(line for line, s in zip(text.lines, skip) if not s)
    atomic_write_bytes(path, (b"\xef\xbb\xbf" if text.bom else b"") + body.encode("utf-8"))
