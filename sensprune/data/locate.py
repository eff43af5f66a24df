"""Folders that travel: where the data of a score, prune or bench folder is found again.

A folder's ``meta.json`` records its dataset ``spec`` as typed (``npz:base/data.npz``, relative to the
directory the command ran in; the dataset fingerprint hashes that spec) and, for the specs that name a
path (``npz:``, ``csv:``, ``imagefolder:``), a ``location``::

    "location": {"absolute": "/home/me/base/data.npz", "relative": "../base/data.npz"}

``relative`` is relative to the folder holding that ``meta.json``. To reload the data, the candidates
are tried in this order, and the first whose data has the recorded fingerprint is used (a path that
holds something else -- other data, a file that is not data, a FIFO -- is skipped, and named in the error
when no candidate is the data):

1. ``--data-root DIR``: ``DIR/<path as typed>``, then ``DIR/<file or folder name>``;
2. the folder's own ``relative`` path (the data moved together with the folder);
3. the recorded ``absolute`` path (the folder moved, the data stayed);
4. the spec as typed, relative to the current directory (folders written before locations were recorded).

The data is loaded from the path found but keeps its recorded spec, so the fingerprint check compares
the arrays.

A recorded path that leads outside the folder is not refused: the data normally lives outside it
(``runs/digits`` scored ``data/digits.npz``). A file found is only read, never unpickled, and used only
when its fingerprint matches; a file that is not data is refused by its reader, in words that say so.
"""

from __future__ import annotations

import os

PATH_PREFIXES = ("npz", "csv", "imagefolder")


def spec_path(spec: str | None) -> tuple[str, str] | None:
    """``(prefix, path)`` of a spec that names a file or folder (without ``?subsample`` / ``+corruption``)."""
    kind, sep, arg = str(spec or "").partition(":")
    if not sep or kind not in PATH_PREFIXES or not arg:
        return None
    return kind, arg


def base_spec(dataset_meta: dict) -> str:
    """The recorded spec without the ``+<corruption>`` and ``?subsample=`` suffixes the loaders append."""
    spec = str(dataset_meta.get("spec") or "")
    if dataset_meta.get("corruption"):
        spec = spec.rsplit("+", 1)[0]
    if dataset_meta.get("subsample") is not None:
        spec = spec.split("?", 1)[0]
    return spec


def candidates(dataset_meta: dict, *, folder: str | os.PathLike | None = None,
               data_root: str | os.PathLike | None = None) -> list[tuple[str, str]]:
    """``[(how, path)]`` to try, in the order of the module docstring; duplicates removed."""
    sp = spec_path(base_spec(dataset_meta))
    if sp is None:
        return []
    typed = sp[1]
    loc = dataset_meta.get("location") if isinstance(dataset_meta.get("location"), dict) else {}
    out: list[tuple[str, str]] = []
    if data_root is not None:
        if not os.path.isabs(typed):
            out.append(("--data-root", os.path.join(str(data_root), typed)))
        out.append(("--data-root", os.path.join(str(data_root), os.path.basename(os.path.normpath(typed)))))
    if loc.get("relative") and folder is not None:
        out.append((f"relative to {folder}", os.path.normpath(os.path.join(str(folder), str(loc["relative"])))))
    if loc.get("absolute"):
        out.append(("recorded absolute path", str(loc["absolute"])))
    out.append(("as typed, from the current directory", typed))
    seen, unique = set(), []
    for how, p in out:
        key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            unique.append((how, p))
    return unique


def record_location(dataset_meta: dict, out: str | os.PathLike, *, read_from: str | os.PathLike | None = None,
                    data_root: str | os.PathLike | None = None) -> dict:
    """A copy of ``dataset_meta`` with the ``location`` of its data relative to the folder ``out``.

    ``read_from`` is the folder ``dataset_meta`` was read from (a score folder, for a prune folder): its
    recorded location is resolved from there (after ``data_root``, as when loading). The candidate recorded is
    the one that loads: the first whose data has the recorded fingerprint (:func:`locate`), not merely the first
    that exists (a path that holds other data, or no data, is skipped as when loading). When no candidate is the
    data, the recorded absolute path is kept (the folder still says where the data was). The data is loaded
    only when several different paths exist, i.e. only when the choice depends on it.
    """
    meta = dict(dataset_meta or {})
    sp = spec_path(base_spec(meta))
    if sp is None:
        meta.pop("location", None)
        return meta
    loc = meta.get("location") if isinstance(meta.get("location"), dict) else {}
    fallback = loc.get("absolute") or sp[1]
    existing = {os.path.abspath(p) for _, p in candidates(meta, folder=read_from, data_root=data_root)
                if os.path.lexists(p)}
    found = fallback
    if existing - {os.path.abspath(fallback)}:  # another path exists: keep the one whose data is the data
        from sensprune.errors import SensPruneError

        try:
            found = locate(meta, folder=read_from, data_root=data_root)[1]
        except SensPruneError:  # the data is nowhere now: keep where it was
            pass
    absolute = os.path.abspath(found)
    meta["location"] = {"absolute": absolute,
                        "relative": os.path.relpath(absolute, os.path.abspath(str(out)))}
    return meta


def load_recorded(dataset_meta: dict, *, folder: str | os.PathLike | None = None,
                  data_root: str | os.PathLike | None = None):
    """Reload the dataset ``dataset_meta`` (a folder's ``meta.json`` ``dataset`` entry) describes and check it:
    the dataset of :func:`locate`."""
    return locate(dataset_meta, folder=folder, data_root=data_root)[0]


def locate(dataset_meta: dict, *, folder: str | os.PathLike | None = None,
           data_root: str | os.PathLike | None = None):
    """``(dataset, path)``: the dataset ``dataset_meta`` (a folder's ``meta.json`` ``dataset`` entry) describes,
    reloaded and checked, and the path it loaded from (None for a spec that names no path).

    ``folder`` is the folder that ``meta.json`` belongs to (for its ``relative`` location). Path specs try
    :func:`candidates` in order and keep the first whose data has the recorded fingerprint (a candidate that
    does not load, or loads other data, is skipped); other specs load as recorded (``data_root`` defaults to the
    recorded one). The recorded ``subsample`` and ``corruption`` (``--corrupt``) are replayed. Raises
    ValidationError when the data is found nowhere and ArtifactMismatchError when some candidate held other
    data (each path tried is named, with why it was not used).
    """
    import dataclasses

    from sensprune.data.registry import load_dataset, subsample_dataset
    from sensprune.errors import ArtifactMismatchError, ValidationError

    spec = dataset_meta.get("spec")
    if not spec:
        raise ValidationError("The folder's meta.json records no dataset spec; cannot reload its data.")
    if spec == "python:tracker":
        raise ValidationError("The folder was made by a Tracker without dataset=, so it does not record which data "
                              "it scored; pass the dataset (`--dataset SPEC`, or Tracker(..., dataset=...)).")
    want = dataset_meta.get("fingerprint")
    base = base_spec(dataset_meta)
    source = dataset_meta.get("source")
    root = data_root
    if root is None and isinstance(source, dict):
        root = source.get("data_root")
    label_column = dataset_meta.get("label_column")

    def load(path_spec: str):
        ds = load_dataset(path_spec, data_root=None if root is None else str(root), label_column=label_column)
        if path_spec != base:
            ds = dataclasses.replace(ds, spec=base)  # the recorded spec: the fingerprint compares the arrays
        if dataset_meta.get("subsample") is not None:
            seed = int(dataset_meta.get("subsample_seed") or 0)
            ds = subsample_dataset(ds, int(dataset_meta["subsample"]), seed=seed)
        corruption = dataset_meta.get("corruption")
        if corruption:  # the scored training set was corrupted with --corrupt: replay it (seeded)
            from sensprune.data.noise import apply_corruption

            ds, _ = apply_corruption(ds, corruption["kind"], corruption["fraction"], corruption["seed"])
        return ds

    sp = spec_path(base)
    if sp is None:
        ds = load(base)
        if want != ds.fingerprint:
            raise ArtifactMismatchError(f"The scores were made from dataset {spec!r} with fingerprint {want}, "
                                        f"but that spec now loads data with fingerprint {ds.fingerprint}; "
                                        "rescore, or point --data-root at the original data.")
        return ds, None
    tried, other_data = [], False
    for how, path in candidates(dataset_meta, folder=folder, data_root=data_root):
        if not os.path.lexists(path):
            tried.append(f"{path} ({how}: not found)")
            continue
        try:
            ds = load(f"{sp[0]}:{path}")
        except ValidationError as exc:  # something is there but it is not the data: try the next candidate
            tried.append(f"{path} ({how}: does not load: {' '.join(str(exc).split()).rstrip('.')})")
            continue
        if ds.fingerprint == want:
            return ds, path
        other_data = True
        tried.append(f"{path} ({how}: fingerprint {ds.fingerprint}, not {want})")
    err = ArtifactMismatchError if other_data else ValidationError
    raise err(f"The data of dataset {spec!r} (fingerprint {want}) was not found; tried {'; '.join(tried)}. "
              "Pass --data-root DIR (bench: [data] data_root), the folder holding it, "
              "or move it back.")


def describe_order() -> str:
    """The order :func:`candidates` tries, in words (for help texts)."""
    return ("--data-root, then the path relative to the folder, then the recorded absolute path, then the spec as "
            "typed from the current directory")


__all__ = ["candidates", "load_recorded", "locate", "record_location", "spec_path", "base_spec", "describe_order",
           "PATH_PREFIXES"]
