"""Artifact folders: atomic writes, deterministic ``.npz``, fingerprints and ``meta.json``.

Every stage writes one self-describing folder. Files are written to a temporary
name and renamed, so a killed run never leaves a half-written file, and ``.npz``
archives carry a fixed timestamp, so the same arrays give the same bytes.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np

from sensprune import FORMAT_VERSION, __version__
from sensprune.errors import ValidationError

META = "meta.json"
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, then rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


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
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ValidationError(f"{path} not found.") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValidationError(f"{path} is not valid JSON ({exc}).") from None


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


def read_npz(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Load every array of an ``.npz`` (no pickles); a truncated or corrupt file is a ValidationError."""
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except FileNotFoundError:
        raise ValidationError(f"{path} not found.") from None
    except (zipfile.BadZipFile, ValueError, OSError, EOFError) as exc:
        raise ValidationError(f"{path} is truncated or corrupt ({exc}).") from None


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


def base_meta(kind: str) -> dict[str, Any]:
    """The fields every artifact's ``meta.json`` starts with."""
    return {"kind": kind, "format_version": FORMAT_VERSION, "sensprune_version": __version__}


def prepare_out_dir(out: str | os.PathLike, *, force: bool) -> Path:
    """Check that ``out`` may be written; nothing is created here.

    An existing folder is refused unless ``force`` (then it is replaced only when
    the new artifact is complete, see :func:`publish_dir`).
    """
    out = Path(out)
    if out.exists() and not force:
        raise ValidationError(f"{out} already exists; pass --force to overwrite it.")
    if out.exists() and not out.is_dir():
        raise ValidationError(f"{out} exists and is not a folder.")
    return out


def staging_dir(out: Path) -> Path:
    """A fresh temporary sibling folder in which an artifact is assembled before :func:`publish_dir`."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".staging", dir=out.parent))
    os.chmod(stage, 0o777 & ~_UMASK)  # mkdtemp makes 0700
    return stage


def publish_dir(staging: Path, out: Path) -> None:
    """Move a complete artifact folder into place, replacing ``out`` if it exists."""
    if out.exists():
        trash = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, trash)
        os.replace(staging, out)
        shutil.rmtree(trash, ignore_errors=True)
    else:
        os.replace(staging, out)


def read_meta(folder: str | os.PathLike, *, kind: str | None = None) -> dict[str, Any]:
    """Read and check an artifact's ``meta.json`` (format version, and kind when given)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise ValidationError(f"{folder} is not a folder.")
    path = folder / META
    if not path.exists():
        raise ValidationError(f"{folder} is not a sensprune artifact (no {META}).")
    meta = read_json(path)
    if not isinstance(meta, dict) or "kind" not in meta or "format_version" not in meta:
        raise ValidationError(f"{path} is not a sensprune meta file.")
    if not isinstance(meta["format_version"], int) or meta["format_version"] > FORMAT_VERSION:
        raise ValidationError(
            f"{folder} has format version {meta['format_version']}, newer than this sensprune "
            f"({FORMAT_VERSION}); upgrade sensprune to read it."
        )
    if kind is not None and meta["kind"] != kind:
        raise ValidationError(f"{folder} is a {meta['kind']!r} artifact, not a {kind!r} artifact.")
    return meta
