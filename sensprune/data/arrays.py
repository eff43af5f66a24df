"""Datasets the user supplies as arrays: ``npz:PATH``, ``csv:PATH`` and ``plugin:module:callable``.

Splits
------
``npz:PATH``
    The file's own split: keys ``x_train, y_train, x_test, y_test`` (loaded with
    ``allow_pickle=False``). Inputs keep their shape ``(N, ...)``; uint8 is scaled to [0, 1].
``csv:PATH``
    One row per example with a header. The label column (``--label-column``, default
    ``label``) holds integer class ids, or names that are mapped to ``0..K-1`` in sorted
    order (``info["classes"]``). Every other column is a numeric feature, giving inputs of
    shape ``(N, F)``. If a column named ``split`` exists, its values ``train``/``test``
    decide the split; otherwise a stratified 80/20 split with ``random_state=0``. Rows keep
    their file order inside each split.
``plugin:module:callable``
    ``module`` is imported (the current folder is searched first) and ``callable()`` is
    called with no arguments. It returns ``(x_train, y_train, x_test, y_test)``, a dict with
    those keys (and optionally ``num_classes``), or a :class:`~sensprune.data.base.Dataset`.
    The split is the plugin's own.

The ``Dataset.spec`` of each is the spec string as given; the fingerprint adds the arrays.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import train_test_split

from sensprune.data.base import MAX_CLASSES, Dataset, make_dataset
from sensprune.errors import ValidationError
from sensprune.io import fingerprint_file, read_npz, regular_file
from sensprune.plugins import resolve_plugin

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")


def stratified_indices(y: np.ndarray, *, train_size, random_state: int,
                       source: str) -> tuple[np.ndarray, np.ndarray]:
    """Stratified split of ``range(len(y))`` with sklearn's ``train_test_split``.

    Parameters
    ----------
    y : ndarray, shape (N,)
        Class labels used for stratification.
    train_size : int or float
        Number (int) or fraction (float) of examples in the first part.
    random_state : int
    source : str
        Named in the error message.

    Returns
    -------
    train_idx, rest_idx : ndarray of int64, sorted (the original order is kept)
    """
    try:
        tr, te = train_test_split(np.arange(len(y)), train_size=train_size, stratify=y,
                                  random_state=random_state)
    except ValueError as exc:
        raise ValidationError(f"{source}: cannot make a stratified split ({exc}).") from None
    return np.sort(tr).astype(np.int64), np.sort(te).astype(np.int64)


def load_npz(path: str, *, spec: str) -> Dataset:
    """Load ``npz:PATH`` (keys ``x_train, y_train, x_test, y_test``)."""
    source = f"npz:{path}"
    regular_file(path, source)
    arrays = read_npz(path)
    missing = [k for k in NPZ_KEYS if k not in arrays]
    if missing:
        found = ", ".join(sorted(arrays)) or "none"
        raise ValidationError(f"{source} is missing keys: {', '.join(missing)} "
                              f"(expected {', '.join(NPZ_KEYS)}; found {found}).")
    info = {"split": "given by the file (x_train/y_train, x_test/y_test)",
            "source": {"path": path, "sha256": fingerprint_file(path)}}
    return make_dataset(*(arrays[k] for k in NPZ_KEYS), spec=spec, info=info, source=source)


@dataclass(frozen=True)
class CsvText:
    """A CSV file as text, with the line span of every record (so rows can be copied verbatim).

    ``lines`` are the file's lines with their own line endings (a quoted field may span several);
    ``spans[i]`` is ``(first, stop)`` of record ``i`` in ``lines``; record 0 is the header; blank
    records are not in ``spans`` (their lines stay in ``lines``). ``bom`` is True when the file
    starts with a UTF-8 byte-order mark (not part of ``lines``).
    """

    lines: list[str]
    spans: list[tuple[int, int]]
    records: list[list[str]]
    bom: bool
    sha256: str


def read_csv_text(path: str, source: str) -> CsvText:
    """Parse ``path`` keeping each record's exact text; a ValidationError names ``source``."""
    regular_file(path, source)
    try:
        with open(path, "rb") as fh:
            data = fh.read()
    except FileNotFoundError:
        raise ValidationError(f"{source}: file not found.") from None
    except OSError as exc:
        raise ValidationError(f"{source}: cannot be read ({exc}).") from None
    bom = data.startswith(codecs.BOM_UTF8)
    try:
        text = data[len(codecs.BOM_UTF8) if bom else 0:].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ValidationError(f"{source}: cannot be read as UTF-8 CSV ({exc}).") from None
    lines = list(io.StringIO(text, newline=""))
    reader = csv.reader(lines)
    spans, records, first = [], [], 0
    try:
        for rec in reader:
            if rec and any(c.strip() for c in rec):
                spans.append((first, reader.line_num))
                records.append(rec)
            first = reader.line_num
    except csv.Error as exc:
        raise ValidationError(f"{source}: cannot be read as CSV ({exc}).") from None
    return CsvText(lines, spans, records, bom, hashlib.sha256(data).hexdigest()[:16])


def _read_csv(path: str, source: str) -> tuple[list[str], list[list[str]]]:
    text = read_csv_text(path, source)
    rows = text.records
    if not rows:
        raise ValidationError(f"{source} is empty.")
    header = [c.strip() for c in rows[0]]
    for r, (first, _) in zip(rows[1:], text.spans[1:]):
        if len(r) != len(header):  # the line number in the file, blank lines counted
            raise ValidationError(f"{source}: line {first + 1} has {len(r)} fields, the header has {len(header)}.")
    return header, rows[1:]


def _canonical(value: str) -> str:
    """A label as written, with numbers written one way (``1``, ``1.0`` and `` 1`` are one class)."""
    v = value.strip()
    try:
        f = float(v)
    except ValueError:
        return v
    return str(int(f)) if np.isfinite(f) and f == round(f) else repr(f)


def _labels(values: list[str], source: str) -> tuple[np.ndarray, list[str] | None]:
    """Integer labels as given, or names mapped to 0..K-1 in sorted order."""
    empty = [i for i, v in enumerate(values) if not v.strip()]
    if empty:
        more = f" (and {len(empty) - 1} more)" if len(empty) > 1 else ""
        raise ValidationError(f"{source}: every label must be a class id or name; got an empty label in data row "
                              f"{empty[0] + 1}{more}.")
    try:
        as_float = np.array([float(v) for v in values], dtype=np.float64)
    except ValueError:
        values = [_canonical(v) for v in values]
        classes = sorted(set(values))
        lookup = {c: i for i, c in enumerate(classes)}
        return np.array([lookup[v] for v in values], dtype=np.int64), classes
    if not (np.isfinite(as_float).all() and np.all(as_float == np.round(as_float))):
        raise ValidationError(f"{source}: labels must be integers or class names.")
    if as_float.size and as_float.max() >= MAX_CLASSES:  # before the split and any K-sized allocation
        raise ValidationError(f"{source}: labels must be class ids below {MAX_CLASSES}; got {int(as_float.max())} "
                              "(map class names or sparse ids to 0..K-1).")
    return as_float.astype(np.int64), None


def load_csv(path: str, *, spec: str, label_column: str | None = None) -> Dataset:
    """Load ``csv:PATH``: one label column, numeric feature columns, optional ``split`` column."""
    source = f"csv:{path}"
    label_column = "label" if label_column is None else label_column
    header, rows = _read_csv(path, source)
    if label_column not in header:
        raise ValidationError(f"{source} has no column '{label_column}'; columns are: "
                              f"{', '.join(header)}. Pass --label-column.")
    if not rows:
        raise ValidationError(f"{source}: zero examples (only a header).")
    split_col = "split" if "split" in header and label_column != "split" else None
    feats = [j for j, name in enumerate(header) if name not in (label_column, split_col)]
    if not feats:
        raise ValidationError(f"{source} has no feature columns besides '{label_column}'.")
    x = np.empty((len(rows), len(feats)), dtype=np.float64)
    for i, r in enumerate(rows):
        for k, j in enumerate(feats):
            try:
                x[i, k] = float(r[j])
            except ValueError:
                raise ValidationError(f"{source}: column '{header[j]}' has the non-numeric value "
                                      f"{r[j]!r} on line {i + 2}; features must be numbers.") from None
    y, classes = _labels([r[header.index(label_column)].strip() for r in rows], source)
    info: dict = {"source": {"path": path, "sha256": fingerprint_file(path)},
                  "label_column": label_column, "feature_columns": [header[j] for j in feats]}
    if classes is not None:
        info["classes"] = classes
    if split_col is not None:
        split = np.array([r[header.index(split_col)].strip().lower() for r in rows])
        bad = sorted(set(split) - {"train", "test"})
        if bad:
            raise ValidationError(f"{source}: column 'split' must hold train/test, found {', '.join(bad)}.")
        tr, te = np.flatnonzero(split == "train"), np.flatnonzero(split == "test")
        info["split"] = "given by the 'split' column"
    else:
        tr, te = stratified_indices(y, train_size=0.8, random_state=0, source=source)
        info["split"] = "stratified 80/20, random_state=0"
    k = len(classes) if classes is not None else None
    return make_dataset(x[tr], y[tr], x[te], y[te], spec=spec, num_classes=k, info=info, train_rows=tr,
                        source=source)


def _import_callable(target: str, source: str):
    return resolve_plugin(target, "plugin")  # pkgutil.resolve_name, current folder searched first


def load_plugin(target: str, *, spec: str) -> Dataset:
    """Load ``plugin:module:callable``; ``target`` is ``module:callable``."""
    source = f"plugin '{target}'"
    fn = _import_callable(target, source)
    try:
        out = fn()
    except Exception as exc:
        raise ValidationError(f"{source} raised {type(exc).__name__}: {exc}") from exc
    info = {"split": "given by the plugin", "plugin": target}
    if isinstance(out, Dataset):
        return make_dataset(out.x_train, out.y_train, out.x_test, out.y_test, spec=spec,
                            num_classes=out.num_classes, info={**out.info, **info},
                            train_files=out.train_files, train_rows=out.train_rows, source=source)
    if isinstance(out, dict):
        missing = [k for k in NPZ_KEYS if k not in out]
        if missing:
            raise ValidationError(f"{source} returned a dict without keys: {', '.join(missing)}.")
        return make_dataset(*(out[k] for k in NPZ_KEYS), spec=spec, num_classes=out.get("num_classes"),
                            info=info, source=source)
    if isinstance(out, (tuple, list)) and len(out) == 4:
        return make_dataset(*out, spec=spec, info=info, source=source)
    raise ValidationError(f"{source} returned {type(out).__name__}; expected a tuple "
                          f"(x_train, y_train, x_test, y_test), a dict with those keys, or a Dataset.")
