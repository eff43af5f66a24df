"""The ``sensprune prune`` artifact: write and read it, turn it into a torch ``Subset`` or sampler.

Folder layout (``sensprune prune --out DIR``)::

    keep.npy, keep.txt   sorted int64 indices of the kept training examples (one per line in .txt)
    drop.npy, drop.txt   sorted int64 indices of the removed ones; keep and drop partition 0..N-1
    selection.csv        index,source_row,label,score,kept,weight (one row per training example)
    weights.npy          (N,) float64 per-example loss weights, mean 1 (only with --reweight)
    meta.json            kind="selection": rule, parameters, measure and direction, counts,
                         parent scores_fingerprint, dataset spec and fingerprint

Indices are positions in the training set **as the dataset spec orders it** (its split, then
the subsample), not rows of the user's file: ``selection.csv``'s ``source_row`` maps each one back
(the CSV data row counted from 0 without the header, as ``pandas.read_csv`` numbers it; the index
in the NPZ's ``x_train``; the ImageFolder file path; for builtin datasets the index in the
original dataset, e.g. the row of ``sklearn.datasets.load_digits().data``). ``keep.npy`` loads
without sensprune on the split sensprune builds: ``Subset(train_set, np.load("DIR/keep.npy").tolist())``
where ``train_set`` is ``load_dataset(spec)``'s training split.

Only numpy is imported at the top; torch and the dataset loaders are imported inside the
functions that need them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from sensprune.errors import ArtifactMismatchError, ValidationError
from sensprune.io import (atomic_write_text, fingerprint_arrays, prepare_out_dir, read_meta, read_npy, staged_dir,
                          write_csv, write_json, write_npy)

KEEP, DROP, WEIGHTS = "keep.npy", "drop.npy", "weights.npy"


@dataclass(repr=False)
class Selection:
    """Which training examples a rule keeps, and optional per-example loss weights.

    Attributes
    ----------
    keep : ndarray (K,) int64, sorted
        Indices of the kept training examples.
    drop : ndarray (D,) int64, sorted
        Indices of the removed ones; ``keep`` and ``drop`` are disjoint and together cover all N.
    weights : ndarray (N,) float64 or None
        Loss weight of training example ``i`` (positive, mean 1, higher score -> lower or equal
        weight); None when the rule drops instead of reweighting.
    meta : dict
        What ``meta.json`` holds (rule, parameters, counts, fingerprints).
    label, score : ndarray (N,) or None
        Label and (combined) score of each training example, in index order; None when loaded.
    source_row : ndarray (N,) or None
        Where each training example sits in the user's data (CSV data row, NPZ index, original
        dataset index, or ImageFolder file path), in index order; None when unknown.
    """

    keep: np.ndarray
    drop: np.ndarray
    weights: np.ndarray | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    label: np.ndarray | None = None
    score: np.ndarray | None = None
    source_row: np.ndarray | None = None

    @property
    def n(self) -> int:
        """Size N of the training set the indices refer to."""
        return int(len(self.keep) + len(self.drop))

    def mask(self) -> np.ndarray:
        """Boolean (N,) array, True where the example is kept."""
        out = np.zeros(self.n, dtype=bool)
        out[self.keep] = True
        return out

    def indices(self) -> np.ndarray:
        """The kept indices (K,), sorted (``keep``; ``drop`` holds the others)."""
        return self.keep

    def __repr__(self) -> str:
        """One line: counts, rule (or reweighting) and measure; the indices are behind :meth:`indices`."""
        m = self.meta
        how = f"reweight={m['reweight']!r}" if self.weights is not None and m.get("reweight") else \
            f"rule={m.get('rule')!r}"
        by = m.get("measure")
        by = "+".join(by) if isinstance(by, (list, tuple)) else by
        return f"Selection(n={self.n}, kept={len(self.keep)}, dropped={len(self.drop)}, {how}, by={by!r})"

    def subset(self, data):
        """``torch.utils.data.Subset`` of the kept examples of ``data`` (a torch Dataset, arrays or a Dataset).

        The length must match, and the training data's fingerprint where both sides have one (arrays,
        tensors, ``TensorDataset`` or a sensprune Dataset against a table made by ``sp.score`` or the
        tracker with inputs): other data of the same length is refused.
        """
        from sensprune.data.given import as_dataset, is_torch_dataset, train_fingerprint

        want = (self.meta.get("dataset") or {}).get("train_fingerprint")
        if isinstance(data, (tuple, list)) and not is_torch_dataset(data[0]):
            import torch
            from torch.utils.data import TensorDataset

            ds = as_dataset(tuple(data[:2]), source="sel.subset")
            have = fingerprint_arrays(ds.x_train, ds.y_train)
            data = TensorDataset(torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train))
        else:
            have = train_fingerprint(data) if want else None
        if want and have and want != have and len(data) == self.n:  # (another length: as_subset says so)
            raise ArtifactMismatchError(f"sel.subset: this data has training fingerprint {have}, but the selection "
                                        f"was made from data with fingerprint {want}; it indexes other data.")
        return as_subset(data, self)

    def sampler(self, **kw):
        """``WeightedRandomSampler`` (see :func:`as_sampler`)."""
        return as_sampler(self, **kw)

    def save(self, out: str | Path, *, force: bool = False) -> Path:
        """Write the ``sensprune prune`` folder (keep, drop, selection.csv, meta.json): :func:`save_selection`."""
        return save_selection(self, out, force=force)


def load_selection(folder: str | Path) -> Selection:
    """Read a ``sensprune prune`` folder; a missing, truncated or inconsistent file is a ValidationError.

    Parameters
    ----------
    folder : str or Path

    Returns
    -------
    Selection
        ``keep`` (K,), ``drop`` (D,), ``weights`` (N,) or None, ``meta``.
    """
    folder = Path(folder)
    meta = read_meta(folder, kind="selection")
    keep, drop = _read_index(folder / KEEP), _read_index(folder / DROP)
    n = len(keep) + len(drop)
    every = np.concatenate([keep, drop])
    if n and (every.min() < 0 or every.max() != n - 1 or len(np.unique(every)) != n):
        raise ValidationError(f"{folder}: keep.npy and drop.npy do not partition 0..{n - 1}; "
                              "the folder is corrupt.")
    want = meta.get("counts", {}).get("n")
    if want is not None and want != n:
        raise ValidationError(f"{folder}: meta.json says N={want} but keep/drop hold {n} indices.")
    weights = None
    if (folder / WEIGHTS).exists():
        weights = read_npy(folder / WEIGHTS).astype(np.float64)
        if weights.shape != (n,) or not np.all(np.isfinite(weights)) or np.any(weights < 0):
            raise ValidationError(f"{folder / WEIGHTS} must hold {n} finite non-negative weights.")
    return Selection(keep, drop, weights, meta)


def as_subset(dataset, selection: Selection):
    """``torch.utils.data.Subset`` of the kept examples.

    Parameters
    ----------
    dataset : torch Dataset of length N, or a :class:`sensprune.data.base.Dataset`
        A sensprune Dataset becomes a ``TensorDataset(x_train, y_train)`` first.
    selection : Selection

    Returns
    -------
    torch.utils.data.Subset of length K
    """
    import torch
    from torch.utils.data import Subset, TensorDataset

    if hasattr(dataset, "x_train") and hasattr(dataset, "y_train"):
        dataset = TensorDataset(torch.from_numpy(np.asarray(dataset.x_train)),
                                torch.from_numpy(np.asarray(dataset.y_train)))
    if len(dataset) != selection.n:
        raise ArtifactMismatchError(f"The selection covers {selection.n} training examples but the "
                                    f"dataset has {len(dataset)}; it was made from other data.")
    return Subset(dataset, selection.keep.tolist())


def as_sampler(selection: Selection, *, num_samples: int | None = None, generator=None):
    """``WeightedRandomSampler`` over all N indices.

    With weights it samples each example proportionally to its weight (``num_samples``
    defaults to N); without, it samples uniformly over the kept examples (default K).
    Sampling is with replacement.
    """
    import torch
    from torch.utils.data import WeightedRandomSampler

    if selection.weights is not None:
        w, default = selection.weights, selection.n
    else:
        w, default = selection.mask().astype(np.float64), len(selection.keep)
    if default == 0:
        raise ValidationError("The selection keeps no example; there is nothing to sample.")
    return WeightedRandomSampler(torch.as_tensor(w, dtype=torch.double),
                                 num_samples=default if num_samples is None else int(num_samples),
                                 replacement=True, generator=generator)


def save_selection(selection: Selection, out: str | Path, *, force: bool = False) -> Path:
    """Write ``selection`` as an artifact folder (assembled aside, then moved into place)."""
    out = prepare_out_dir(out, force=force)
    with staged_dir(out) as stage:  # removed again on any error (a full disk): nothing half-written is left
        for name, arr in (("keep", selection.keep), ("drop", selection.drop)):
            write_npy(stage / f"{name}.npy", np.asarray(arr, np.int64))
            atomic_write_text(stage / f"{name}.txt", "".join(f"{i}\n" for i in arr.tolist()))
        mask = selection.mask()
        w = selection.weights if selection.weights is not None else mask.astype(np.float64)
        if selection.weights is not None:
            write_npy(stage / "weights.npy", np.asarray(selection.weights, np.float64))
        label = selection.label if selection.label is not None else np.full(selection.n, -1)
        score = selection.score if selection.score is not None else np.full(selection.n, np.nan)
        src = [""] * selection.n if selection.source_row is None else np.asarray(selection.source_row).tolist()
        rows = zip(range(selection.n), src, label.tolist(), score.tolist(), mask.astype(int).tolist(),
                   w.tolist())
        write_csv(stage / "selection.csv", ["index", "source_row", "label", "score", "kept", "weight"], rows)
        write_json(stage / "meta.json", selection.meta)
    return out


def load_matching_dataset(dataset_meta: dict, *, data_root: str | Path | None = None,
                          folder: str | Path | None = None):
    """Reload the dataset a score file was made from (its meta's ``dataset`` dict) and check it.

    ``folder``: the folder whose ``meta.json`` holds ``dataset_meta`` (its recorded location is relative to
    it). The data is looked for in the order of :mod:`sensprune.data.locate` (``data_root``, the path
    relative to ``folder``, the recorded absolute path, the spec as typed); the recorded subsample and
    ``corruption`` (``--corrupt``) are replayed. Raises ArtifactMismatchError when the data loaded now
    has another fingerprint than the scored data.
    """
    from sensprune.data.locate import load_recorded

    return load_recorded(dataset_meta, folder=folder, data_root=data_root)


def export_data(dataset, selection: Selection, path: str | Path) -> str:
    """Write a faithful copy of the data holding only the kept training examples (see :mod:`sensprune.pruning.export`).

    ``csv:`` datasets: the source file's own rows, byte for byte, minus the dropped ones (``.csv``);
    ``npz:`` datasets: the file's original arrays, indexed (``.npz``); ImageFolder datasets: the kept
    relative paths, one per line (``.txt``); others: an ``.npz`` of the loaded arrays. A path whose
    extension does not match is refused. Returns the format written.
    """
    from sensprune.pruning.export import export_data as _export

    return _export(dataset, selection.keep, selection.drop, path)


def _read_index(path: Path) -> np.ndarray:
    arr = read_npy(path)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValidationError(f"{path} must hold a 1-D integer array; got {arr.dtype} {arr.shape}.")
    return arr.astype(np.int64)
