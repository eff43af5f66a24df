"""Artifact folders: atomic writes, deterministic ``.npz``, fingerprints and ``meta.json``.

Every stage writes one self-describing folder. Files are written to a temporary
name and renamed, so a killed run never leaves a half-written file, and ``.npz``
archives carry a fixed timestamp, so the same arrays give the same bytes.
"""

from __future__ import annotations

import contextlib
import csv
import errno
import hashlib
import io
import json
import os
import shutil
import stat
import tempfile
import zipfile
import zlib
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from sensprune import FORMAT_VERSION, __version__
from sensprune.errors import StorageError, ValidationError

META = "meta.json"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_UMASK = os.umask(0)
os.umask(_UMASK)


# -- the one check of a path before it is read: what is there, in words ------------------------------

#: what :func:`path_kind` says of a path that does not exist, and of a symlink loop
MISSING, LOOP = "missing", "a symlink loop"


def path_kind(path: str | os.PathLike, source: str | None = None) -> str:
    """What ``path`` is once links are followed: ``"a regular file"``, ``"a folder"``, ``"a FIFO"``, ``"a socket"``,
    ``"a character device"``, ``"a block device"``, :data:`MISSING` (also a dangling link) or :data:`LOOP`.

    Only ``os.stat``: nothing is opened, so a FIFO never blocks. Another OSError (a folder one cannot search)
    is raised as a ValidationError naming ``source`` (default: ``path``).
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return MISSING
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return LOOP
        raise ValidationError(f"{source or path}: cannot be read ({exc.strerror or exc}).") from None
    kinds = ((stat.S_ISREG, "a regular file"), (stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO"),
             (stat.S_ISSOCK, "a socket"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((words for test, words in kinds if test(mode)), "a special file")


def regular_file(path: str | os.PathLike, source: str) -> None:
    """Refuse, naming ``source``, a ``path`` that is missing, a symlink loop or not a regular file (reading a FIFO
    or a device blocks). Every file sensprune reads is checked here first: the user's data, --config files, images,
    and each file of an artifact folder (:func:`read_json`, :func:`read_npy`, :func:`read_npz`)."""
    kind = path_kind(path, source)
    if kind == MISSING:
        raise ValidationError(f"{source}: file not found.")
    if kind == LOOP:
        raise ValidationError(f"{source}: the path is a symlink loop; point it at a file.")
    if kind != "a regular file":
        raise ValidationError(f"{source}: the path must be a regular file; got {kind}.")


def check_folder(path: str | os.PathLike) -> None:
    """Refuse a ``path`` given as a folder to read (``--scores``, ``--selection``, ``info``, ``report``) that is
    not one, saying what it is: missing, a symlink loop, a regular file, a FIFO ..."""
    kind = path_kind(path)
    if kind == MISSING:
        raise ValidationError(f"{path} is not a folder.")
    if kind == LOOP:
        raise ValidationError(f"{path} is a symlink loop; point it at a folder.")
    if kind != "a folder":
        raise ValidationError(f"{path} must be a folder; got {kind}.")


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename.

    On any error nothing is left behind (neither the temporary file nor a folder this call created), and an
    OSError (a full disk, a lost permission) becomes a :class:`StorageError` naming ``path``.
    """
    path = Path(path)
    created, tmp = [], None
    try:
        created = make_dirs(path.parent)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)
        remove_dirs(created)
        if isinstance(exc, OSError) and not isinstance(exc, StorageError):
            raise StorageError("write", path, exc) from None
        raise


def make_dirs(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns the folders created, outermost first."""
    missing, p = [], Path(folder)
    while not os.path.lexists(p) and p != p.parent:
        missing.append(p)
        p = p.parent
    created = []
    for d in reversed(missing):
        try:
            d.mkdir()
        except FileExistsError:  # made by another process meanwhile: not ours to remove
            continue
        except OSError:
            remove_dirs(created)
            raise
        created.append(d)
    return created


def remove_dirs(created: Sequence[Path]) -> None:
    """Remove the (still empty) folders :func:`make_dirs` created, innermost first."""
    for d in reversed(created):
        try:
            os.rmdir(d)
        except OSError:
            return


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, float) and not np.isfinite(obj):
        return None
    return obj


def write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n")


def read_json(path: str | os.PathLike) -> Any:
    """The one reader of sensprune's JSON files (``meta.json``, ``config.json``, checkpoints): anything that
    cannot be read -- missing, unreadable, not UTF-8, not JSON, nested too deeply -- is one ValidationError
    naming ``path``."""
    regular_file(path, str(path))  # a FIFO would block the read
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError(f"{path} not found.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path} is not valid JSON ({exc}).") from None
    except RecursionError:
        raise ValidationError(f"{path} is nested too deeply to read (sensprune writes a few levels); it was not "
                              "written by sensprune: restore it or rerun the command that made it.") from None
    except OSError as exc:
        raise ValidationError(f"Cannot read {path} ({exc.strerror or exc}).") from None


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Serialise arrays as an uncompressed ``.npz`` with fixed timestamps (byte-reproducible)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as zf:
        for name in arrays:
            arr = np.ascontiguousarray(arrays[name])
            if arr.dtype == object:
                raise TypeError(f"array {name!r} has dtype object; sensprune never pickles")
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            info.external_attr = 0o644 << 16
            member = io.BytesIO()
            np.lib.format.write_array(member, arr, allow_pickle=False)
            zf.writestr(info, member.getvalue())
    return buf.getvalue()


def write_npz(path: str | os.PathLike, arrays: Mapping[str, np.ndarray]) -> None:
    atomic_write_bytes(path, npz_bytes(arrays))


_NPY_MAGIC = b"\x93NUMPY"
_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")  # a zip with members, an empty zip


def _head(path: str | os.PathLike) -> bytes:
    regular_file(path, str(path))  # a FIFO would block the read
    try:
        with open(path, "rb") as fh:
            return fh.read(6)
    except FileNotFoundError:
        raise ValidationError(f"{path} not found.") from None
    except OSError as exc:
        raise ValidationError(f"Cannot read {path} ({exc.strerror or exc}).") from None


#: what reading a damaged archive raises: a bad zip directory, a damaged deflate stream (read lazily, member by
#: member), a bad .npy header, a short read, a zip feature numpy's zipfile lacks (a flipped version or encryption
#: flag: NotImplementedError, RuntimeError)
_NPZ_ERRORS = (zipfile.BadZipFile, zlib.error, ValueError, OSError, EOFError, NotImplementedError, RuntimeError)


def _load_error(path, exc: BaseException, member: str | None = None) -> ValidationError:
    if "allow_pickle" in str(exc):  # numpy's advice to unpickle: sensprune never does
        return ValidationError(f"{path} holds an array of Python objects (dtype object), which sensprune never "
                               "unpickles; save numeric arrays.")
    return ValidationError(f"{path} is truncated or corrupt ({f'{member}: ' if member else ''}{exc}).")


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` (no pickles); a file that is not an NPZ archive, or a truncated or corrupt
    one, is a ValidationError (never numpy's advice to unpickle)."""
    head = _head(path)
    if head.startswith(_NPY_MAGIC):
        raise ValidationError(f"{path} is a single .npy array, not an .npz archive of named arrays "
                              "(write one with numpy.savez).")
    if not head.startswith(_ZIP_MAGIC):
        raise ValidationError(f"{path} is not an NPZ archive (a zip of .npy arrays); write one with numpy.savez.")
    arrays, member = {}, None
    try:
        with np.load(path, allow_pickle=False) as z:
            for member in z.files:
                arrays[member] = z[member]
    except _NPZ_ERRORS as exc:
        raise _load_error(path, exc, member and f"{member}.npy") from None
    return arrays


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """Load one ``.npy`` array (no pickles); anything else is a ValidationError naming ``path``."""
    head = _head(path)
    if not head.startswith(_NPY_MAGIC):
        what = "an .npz archive" if head.startswith(_ZIP_MAGIC) else "not a .npy array file"
        raise ValidationError(f"{path} is {what}; it must be one array written by numpy.save.")
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as exc:
        raise _load_error(path, exc) from None


def write_npy(path: str | os.PathLike, arr: np.ndarray) -> None:
    buf = io.BytesIO()
    np.lib.format.write_array(buf, np.ascontiguousarray(arr), allow_pickle=False)
    atomic_write_bytes(path, buf.getvalue())


def write_csv(path: str | os.PathLike, header: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(header)
    for row in rows:
        writer.writerow([_fmt(v) for v in row])
    atomic_write_text(path, buf.getvalue())


def _fmt(v: Any) -> Any:
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, np.generic):
        return v.item()
    return v


def fingerprint_arrays(*arrays: np.ndarray, extra: str = "") -> str:
    """A stable 16-hex-digit SHA-256 fingerprint of arrays (dtype, shape and bytes) plus a string."""
    h = hashlib.sha256()
    h.update(extra.encode("utf-8"))
    for arr in arrays:
        arr = np.ascontiguousarray(arr)
        h.update(str(arr.dtype).encode())
        h.update(str(arr.shape).encode())
        h.update(arr.tobytes())
    return h.hexdigest()[:16]


def fingerprint_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def diff_keys(a: Any, b: Any, prefix: str = "") -> list[str]:
    """Dotted keys where two nested dicts differ (to say why a config does not match)."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = []
        for k in sorted(set(a) | set(b)):
            out += diff_keys(a.get(k), b.get(k), f"{prefix}{k}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


def base_meta(kind: str) -> dict[str, Any]:
    """The fields every artifact's ``meta.json`` starts with."""
    return {"kind": kind, "format_version": FORMAT_VERSION, "sensprune_version": __version__}


# -- output paths: prepare -> stage -> publish ------------------------------------------------------
#
# Every command that writes an ``--out`` goes through these three steps:
#
#   out = prepare_out(out, force=force, inputs=[...])   # checks only; nothing is created
#   ... compute everything, refuse bad input ...
#   with staged_dir(out) as stage:                      # a hidden sibling folder
#       write files into stage
#   # on success the stage replaces ``out`` (the old folder stays until the new one is complete);
#   # on an error the stage is removed and ``out`` is untouched.
#
# ``--force`` replaces only an empty folder or a sensprune artifact (a folder whose meta.json has a
# ``kind`` of ARTIFACT_KINDS); it never replaces a regular file, a user's folder, or an input.


#: the ``kind`` of every folder sensprune writes (score, prune, bench, report and reproduce outputs)
ARTIFACT_KINDS = ("scores", "selection", "bench", "report", "reproduce")


def is_artifact(folder: str | os.PathLike) -> bool:
    """True when ``folder`` was written by sensprune: its ``meta.json`` is a dict whose ``kind`` is one of
    :data:`ARTIFACT_KINDS` (another tool's meta.json does not count)."""
    path = Path(folder) / META
    try:
        meta = read_json(path)
    except ValidationError:
        return False
    return isinstance(meta, dict) and meta.get("kind") in ARTIFACT_KINDS


def _inside(a: Path, b: Path) -> bool:
    """Is ``a`` (resolved) strictly inside ``b`` (resolved)?"""
    return b in a.parents


def resolve_path(path: str | os.PathLike, option: str = "--out") -> Path:
    """``Path(path).resolve()``, with a symlink loop refused in one line naming ``option``."""
    try:
        return Path(path).resolve()
    except (RuntimeError, OSError) as exc:  # Python < 3.13 raises RuntimeError("Symlink loop ...")
        raise ValidationError(f"{option} {path}: the path is a symlink loop ({' '.join(str(exc).split())}); "
                              f"choose another {option}.") from None


def check_not_input(out: str | os.PathLike, inputs: Iterable[str | os.PathLike | None], *,
                    allow_inside: bool = False, option: str = "--out") -> None:
    """Refuse an output equal to, above or (unless ``allow_inside``) inside one of ``inputs``."""
    o = resolve_path(out, option)
    for inp in inputs:
        if inp is None:
            continue
        try:
            i = Path(inp).resolve()
        except (RuntimeError, OSError):  # a link loop: its loader says so in one line
            i = Path(os.path.abspath(inp))
        if o == i:
            raise ValidationError(f"{option} {out} is the input {inp}; choose another {option}.")
        if _inside(i, o):
            raise ValidationError(f"{option} {out} contains the input {inp}; choose another {option}.")
        if _inside(o, i) and not allow_inside:
            raise ValidationError(f"{option} {out} is inside the input {inp}; choose another {option}.")


def dataset_inputs(spec: str | None) -> list[str]:
    """The file or folder a dataset spec reads (``npz:``, ``csv:``, ``imagefolder:``), for :func:`check_not_input`."""
    kind, sep, arg = str(spec or "").partition(":")
    return [arg] if sep and arg and kind in ("npz", "csv", "imagefolder") else []


def check_writable(path: str | os.PathLike, *, option: str = "--out") -> None:
    """Refuse a path that cannot be created: an ancestor that is a file, or a folder one cannot write to.

    The nearest existing ancestor is probed by creating and removing an empty temporary folder in it
    (this catches read-only filesystems and pseudo-filesystems such as /proc); nothing is left behind.
    """
    path = Path(path)
    anc = path.parent
    while not os.path.lexists(anc) and anc != anc.parent:
        anc = anc.parent
    if not anc.is_dir():
        raise ValidationError(f"Cannot write {option} {path}: {anc} is a file, not a folder.")
    try:
        probe = tempfile.mkdtemp(prefix=".sensprune-probe-", dir=anc)
        os.rmdir(probe)
    except OSError as exc:
        raise ValidationError(f"Cannot write {option} {path}: {anc} is not writable ({exc.strerror}).") from None


def prepare_out(out: str | os.PathLike, *, force: bool, inputs: Iterable[str | os.PathLike | None] = (),
                allow_inside_inputs: bool = False, option: str = "--out", replaceable: Any = None) -> Path:
    """Check that the output folder ``out`` may be written; nothing is created or removed here.

    Refused, with or without ``force``: a regular file at ``out``; ``out`` equal to, above or inside
    (unless ``allow_inside_inputs``) one of ``inputs``; a path that cannot be created. An existing
    folder needs ``force``, and even then only an empty folder or a sensprune artifact is replaced
    (at :func:`publish_dir`, once the new artifact is complete). ``replaceable(folder) -> bool`` may
    accept more (e.g. a report folder written before reports had a ``meta.json``).
    """
    out = Path(out)
    check_not_input(out, inputs, allow_inside=allow_inside_inputs, option=option)
    if os.path.lexists(out):
        if not out.is_dir():
            raise ValidationError(f"{out} exists and is a file, not a folder; {option} must name a folder "
                                  "(--force never replaces a file).")
        if not force:
            raise ValidationError(f"{out} already exists; pass --force to replace it.")
        _check_replaceable(out, replaceable)
    check_writable(out, option=option)
    return out


def prepare_out_dir(out: str | os.PathLike, *, force: bool, inputs: Iterable[str | os.PathLike | None] = ()) -> Path:
    """Alias of :func:`prepare_out` (older name)."""
    return prepare_out(out, force=force, inputs=inputs)


def _check_replaceable(out: Path, replaceable: Any = None) -> None:
    try:
        empty = not any(out.iterdir())
    except OSError as exc:
        raise ValidationError(f"Cannot read {out} ({exc.strerror}).") from None
    if not empty and not is_artifact(out) and not (replaceable is not None and replaceable(out)):
        raise ValidationError(f"{out} is not empty and not a sensprune output (no {META} of a sensprune kind); "
                              "--force only replaces sensprune outputs. Choose another --out or remove it "
                              "yourself.")


def prepare_out_file(out: str | os.PathLike, *, force: bool, inputs: Iterable[str | os.PathLike | None] = (),
                     replaceable: Any = None, option: str = "--out", allow_inside_inputs: bool = False) -> Path:
    """Check that the output file ``out`` may be written (nothing is created).

    An existing file needs ``force``; ``replaceable(path) -> bool``, when given, must also accept it
    (e.g. "this is a report sensprune wrote"). A folder at ``out`` and an input file are always refused.
    The file is later written with :func:`atomic_write_bytes` (one rename; no ``.old`` copy is left).
    """
    out = Path(out)
    check_not_input(out, inputs, allow_inside=allow_inside_inputs, option=option)
    if os.path.lexists(out):
        if out.is_dir():
            raise ValidationError(f"{out} is a folder; {option} must name a file.")
        if not force:
            raise ValidationError(f"{out} already exists; pass --force to replace it.")
        if replaceable is not None and not replaceable(out):
            raise ValidationError(f"{out} exists and was not written by sensprune; --force only replaces "
                                  "sensprune outputs. Choose another path or remove it yourself.")
    check_writable(out, option=option)
    return out


def staging_dir(out: Path) -> Path:
    """A fresh hidden sibling folder in which an artifact is assembled before :func:`publish_dir`.

    Prefer :func:`staged_dir`, which also removes the stage (and the parents it created) on an error.
    """
    return _staging(out)[0]


def _staging(out: Path) -> tuple[Path, list[Path]]:
    out, created = Path(out), []
    try:
        created = make_dirs(out.parent)
        stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".staging", dir=out.parent))
        os.chmod(stage, 0o777 & ~_UMASK)  # mkdtemp makes 0700
    except OSError as exc:
        remove_dirs(created)
        raise ValidationError(f"Cannot write {out}: {exc.strerror} ({exc.filename or out.parent}).") from None
    return stage, created


def publish_dir(staging: Path, out: Path, *, replaceable: Any = None) -> None:
    """Move a complete artifact folder into place.

    An existing ``out`` is replaced only when it is empty or a sensprune artifact (else the stage is
    removed and ValidationError raised); it is moved aside first and deleted only once the new folder
    is in place, so a crash in between leaves either the old or the new artifact, never neither.
    """
    staging, out = Path(staging), Path(out)
    if not os.path.lexists(out):
        try:
            os.replace(staging, out)
        except OSError as exc:
            shutil.rmtree(staging, ignore_errors=True)
            raise StorageError("write", out, exc) from None
        return
    try:
        if not out.is_dir():
            raise ValidationError(f"{out} exists and is a file, not a folder; --force never replaces a file.")
        _check_replaceable(out, replaceable)  # again: the folder may have changed while the artifact was computed
    except ValidationError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    trash = out.parent / f".{out.name}.old-{os.getpid()}"
    try:
        os.replace(out, trash)
        try:
            os.replace(staging, out)
        except BaseException:
            os.replace(trash, out)
            raise
    except OSError as exc:
        shutil.rmtree(staging, ignore_errors=True)
        raise StorageError("replace", out, exc) from None
    shutil.rmtree(trash, ignore_errors=True)


@contextlib.contextmanager
def staged_dir(out: str | os.PathLike, *, replaceable: Any = None):
    """``with staged_dir(out) as stage:`` write files into ``stage``; on success it is published as ``out``.

    On any exception (including KeyboardInterrupt) the stage, and the parent folders it needed, are removed
    and ``out`` is left as it was; a failed write inside the stage (a full disk) is a :class:`StorageError`
    naming the file under ``out``, not the hidden stage. Call :func:`prepare_out` first, before the
    expensive work.
    """
    out = Path(out)
    stage, created = _staging(out)
    try:
        yield stage
        publish_dir(stage, out, replaceable=replaceable)
    except BaseException as exc:
        shutil.rmtree(stage, ignore_errors=True)
        remove_dirs(created)
        if isinstance(exc, OSError):
            raise _renamed(exc, stage, out) from None
        raise


#: errno values of a failed write that carries no file name (``fh.write`` on a full disk)
_WRITE_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EIO, errno.EROFS, errno.EFBIG}


def _renamed(exc: OSError, tmp: Path, path: Path) -> OSError:
    """``exc`` as a :class:`StorageError` naming ``path`` (the user's) instead of ``tmp`` (a hidden stage or
    temporary file); an OSError that concerns neither is returned unchanged."""
    name = str(exc.filename) if exc.filename is not None else None
    if name is not None and (name == str(tmp) or name.startswith(str(tmp) + os.sep)):
        shown = Path(str(path) + name[len(str(tmp)):])
    elif name is None and exc.errno in _WRITE_ERRNOS:
        shown = path
    else:
        return exc
    return StorageError(getattr(exc, "operation", "write"), shown, exc)


@contextlib.contextmanager
def staged_file(path: str | os.PathLike):
    """``with staged_file(path) as tmp:`` write the file ``tmp`` (a hidden sibling of ``path`` with its suffix);
    it replaces ``path`` when the block ends without an error. On an error it is removed (with the parent
    folders it needed) and ``path`` is left as it was.

    This lets a command write a file beside a folder and publish both or neither: write the file here, publish
    the folder inside the block, and the file then moves into place with one rename (which needs no space).
    """
    path = Path(path)
    created, tmp = [], None
    try:
        created = make_dirs(path.parent)
        fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{path.suffix}", dir=path.parent)
        os.close(fd)
        tmp = Path(name)
        yield tmp
        os.replace(tmp, path)
    except BaseException as exc:
        if tmp is not None and os.path.lexists(tmp):
            os.unlink(tmp)
        remove_dirs(created)
        if isinstance(exc, OSError):
            raise (_renamed(exc, tmp, path) if tmp is not None else StorageError("write", path, exc)) from None
        raise


#: top-level fields of a meta.json that sensprune always writes as JSON objects, and as arrays (checked when present)
_META_OBJECTS = ("config", "dataset", "measures", "gini_per_epoch", "gini", "lorenz", "history", "measure_notes",
                 "extras", "parameters", "measure_directions", "counts", "machine", "experiments", "bh")
_META_ARRAYS = ("seeds", "units", "missing_units", "files")


def read_meta(folder: str | os.PathLike, *, kind: str | None = None) -> dict[str, Any]:
    """Read and check an artifact's ``meta.json`` (format version, and kind when given)."""
    folder = Path(folder)
    check_folder(folder)
    path = folder / META
    if not path.exists():
        raise ValidationError(f"{folder} is not a sensprune artifact (no {META}).")
    meta = read_json(path)
    if not isinstance(meta, dict) or "kind" not in meta or "format_version" not in meta:
        raise ValidationError(f"{path} is not a sensprune meta file.")
    version = meta["format_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValidationError(f"{path}: format_version must be an integer >= 1 (this sensprune writes "
                              f"{FORMAT_VERSION}); got {version!r}.")
    if not isinstance(meta["kind"], str):
        raise ValidationError(f"{path}: kind must be a string such as 'scores'; got {meta['kind']!r}.")
    if version > FORMAT_VERSION:
        raise ValidationError(
            f"{folder} has format version {meta['format_version']}, newer than this sensprune "
            f"({FORMAT_VERSION}); upgrade sensprune to read it."
        )
    for key, value in meta.items():  # a hand edit that changed a table into a number would fail far from here
        want = dict if key in _META_OBJECTS else list if key in _META_ARRAYS else None
        if want is not None and not isinstance(value, want):
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:37] + "..."
            raise ValidationError(f"{path}: {key} must be a JSON {'object' if want is dict else 'array'}, as "
                                  f"sensprune writes it; got {shown}. Restore the file or rerun the command that "
                                  "made it.")
    if kind is not None and meta["kind"] != kind:
        raise ValidationError(f"{folder} is a {meta['kind']!r} artifact, not a {kind!r} artifact.")
    return meta
