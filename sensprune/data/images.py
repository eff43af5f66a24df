"""Image folders on disk: walking ``PATH/train`` and ``PATH/test``, and reading each image at its bit depth.

Shared by the in-memory ``imagefolder:PATH`` loader (:mod:`sensprune.data.folders`) and the streamed one
(:mod:`sensprune.data.stream`), so both see the same files in the same order and the same pixel values.

Walk
    torchvision ``ImageFolder``'s order and file filter (classes are the sorted sub-folders, then each class
    folder's tree sorted by folder path, then by file name; only :data:`IMG_EXTENSIONS`), links followed. Unlike
    ``ImageFolder`` (whose ``os.walk`` skips what it cannot read and follows a link loop until the path is too
    long) a folder that cannot be listed, a link loop and a folder reached twice are refused, and every image
    must be a regular file (a FIFO would block the reader).
Pixels
    8-bit images (modes 1, L, P, RGB, RGBX, CMYK, YCbCr) are divided by 255, 16-bit grayscale ones (I;16*,
    and I from a PNG or PGM file) by 65535, giving [0, 1]. LA, PA, RGBA and images with a transparent palette
    entry are read without their alpha channel, so they must be opaque. Any other mode (F, a TIFF's 32-bit I,
    LAB, HSV, ...) is refused, as are images over PIL's decompression-bomb limit (``PIL.Image.MAX_IMAGE_PIXELS``,
    never raised here), empty files and truncated ones.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass

import numpy as np

from sensprune.errors import ValidationError
from sensprune.io import LOOP, MISSING, path_kind, regular_file

#: The file endings an image folder reads (torchvision's ``IMG_EXTENSIONS``), lower case.
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

GRAY8, GRAY16 = ("1", "L", "LA"), ("I;16", "I;16L", "I;16B", "I;16N", "I")
COLOR8 = ("P", "PA", "RGB", "RGBX", "RGBA", "CMYK", "YCbCr")
#: Formats whose mode-I images are 16-bit (a TIFF's mode I is 32-bit: refused).
SIXTEEN_BIT = ("PNG", "PPM")
READABLE = "8-bit (1, L, P, RGB, CMYK, YCbCr), 16-bit grayscale (I;16, or I from PNG/PGM) or opaque LA, PA, RGBA"


class ImageError(ValidationError):
    """An image that cannot be read faithfully.

    Raised in a DataLoader worker, it reaches the main process rebuilt by torch as ``ImageError(text)``, the
    text holding the worker's whole traceback; the constructor keeps the original one-line message (the
    traceback's last line), so the command line still shows one line.
    """

    def __init__(self, message: str):
        if message.startswith("Caught ImageError") and "\nOriginal Traceback" in message:
            message = message.rstrip().splitlines()[-1].split(": ", 1)[-1]
        super().__init__(message)


# ----------------------------------------------------------------------------------------------- the walk

def scan_imagefolder(path: str, source: str) -> tuple[list[str], list[tuple[str, int]], list[tuple[str, int]]]:
    """``(classes, train samples, test samples)`` of ``PATH/train`` and ``PATH/test``; a sample is (path, class)."""
    kind = path_kind(path, source)
    if kind == MISSING:
        raise ValidationError(f"{source}: folder {path} not found.")
    if kind == LOOP:
        raise ValidationError(f"{source}: {path} is a symlink loop; point it at a folder.")
    if kind != "a folder":
        raise ValidationError(f"{source}: the path must be a folder holding train/ and test/; got {kind}.")
    missing = [sub for sub in ("train", "test") if not os.path.isdir(os.path.join(path, sub))]
    if missing:
        raise ValidationError(f"{source}: {' and '.join(f'{path}/{m}' for m in missing)} not found; expected "
                              f"PATH/train/<class>/<image> and PATH/test/<class>/<image>.")
    classes, train = scan_split(os.path.join(path, "train"), source)
    test_classes, test = scan_split(os.path.join(path, "test"), source)
    if classes != test_classes:
        raise ValidationError(f"{source}: test/ has classes {', '.join(test_classes)} but train/ has "
                              f"{', '.join(classes)}; they must be the same.")
    return classes, train, test


def scan_split(folder: str, source: str) -> tuple[list[str], list[tuple[str, int]]]:
    """``(classes, [(path, class index)])`` of ``folder`` in ImageFolder layout (see the module docstring)."""
    try:
        classes = sorted(e.name for e in os.scandir(folder) if _is_dir(e))
    except OSError as exc:
        raise ValidationError(f"{source}: cannot read folder {folder} ({exc.strerror}).") from None
    if not classes:
        raise ValidationError(f"{source}: {folder} is not in ImageFolder layout (no class folder in it).")
    seen: dict[tuple[int, int], str] = {}
    tops = [os.path.join(folder, name) for name in classes]
    for top in tops:
        _visit(top, folder, seen, source)
    samples, empty = [], []
    for k, top in enumerate(tops):
        found = [(os.path.join(root, f), k) for root, files in _walk(top, seen, source) for f in files
                 if f.lower().endswith(IMG_EXTENSIONS)]
        empty += [] if found else [classes[k]]
        samples += found
    if empty:
        raise ValidationError(f"{source}: {folder} is not in ImageFolder layout (class folders {', '.join(empty)} "
                              f"hold no file ending in {', '.join(IMG_EXTENSIONS)}).")
    for path, _ in samples:
        regular_file(path, f"{source}: {path}")
    return classes, samples


def _is_dir(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()  # follows links; a link loop raises ELOOP: not a folder (its file check says why)
    except OSError:
        return False


def _visit(path: str, parent: str, seen: dict, source: str) -> None:
    """Record the folder ``path`` (found in ``parent``) as read; refuse a link loop and a folder read twice."""
    if os.path.islink(path):
        real, here = os.path.realpath(path), os.path.realpath(parent)
        if here == real or here.startswith(real.rstrip(os.sep) + os.sep):
            raise ValidationError(f"{source}: {path} is a symlink loop (it leads back to a folder holding it); "
                                  "remove the link.")
    try:
        st = os.stat(path)
    except OSError as exc:
        raise ValidationError(f"{source}: cannot read folder {path} ({exc.strerror}).") from None
    first = seen.setdefault((st.st_dev, st.st_ino), path)
    if first != path:
        raise ValidationError(f"{source}: every folder must be read once; got {first} again through {path} "
                              "(its images would count twice; remove the link).")


def _walk(top: str, seen: dict, source: str) -> list[tuple[str, list[str]]]:
    """``[(folder, sorted file names)]`` under ``top``, sorted by folder path as ``sorted(os.walk(top))``."""
    out, todo = [], [top]
    while todo:
        folder = todo.pop()
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            raise ValidationError(f"{source}: cannot read folder {folder} ({exc.strerror}).") from None
        files = []
        for e in entries:
            if not _is_dir(e):
                files.append(e.name)
                continue
            _visit(e.path, folder, seen, source)
            todo.append(e.path)
        out.append((folder, files))
    return sorted(out)


# ---------------------------------------------------------------------------------------------- the pixels

@dataclass(frozen=True)
class Layout:
    """What every image of a folder shares: ``shape`` (H, W) for grayscale or (3, H, W), and ``deep``: some
    image is 16-bit (the inputs are then stored as float32 rather than uint8)."""

    shape: tuple[int, ...]
    gray: bool
    deep: bool


def survey(paths: list[str], source: str) -> Layout:
    """Read the header of every image (no pixels): refuse the first with another size than ``paths[0]``."""
    first, size, modes = None, None, set()
    for path in paths:
        with _open(path, source) as img:
            modes.add(img.mode)
            if size is None:
                first, size = path, img.size
            elif img.size != size:
                raise ValidationError(
                    f"{source}: images have different sizes; every image must be {size[0]}x{size[1]} like the "
                    f"first, {first}; got {img.size[0]}x{img.size[1]} for {path}. Resize them all to one size "
                    "first (e.g. with PIL or ImageMagick 'mogrify -resize WxH!').")
    gray = modes <= set(GRAY8 + GRAY16)
    w, h = size
    return Layout((h, w) if gray else (3, h, w), gray, bool(modes & set(GRAY16)))


def read_image(path: str, source: str, gray: bool) -> tuple[np.ndarray, int]:
    """``(pixels, full scale)``: pixels (H, W) if ``gray`` else (3, H, W), uint8 (scale 255) or uint16 (65535)."""
    with _open(path, source) as img:
        try:
            img.load()
            return _pixels(img, path, source, gray)
        except ValidationError:
            raise
        except Exception as exc:  # a broken file makes PIL raise almost anything
            raise ImageError(f"{source}: cannot read image {path} ({_why(exc)}).") from None


def as_float(pixels: np.ndarray, scale: int) -> np.ndarray:
    """float32 in [0, 1]: ``pixels / scale`` (the same values ``make_dataset`` gives uint8)."""
    return pixels.astype(np.float32) / float(scale)


def _open(path: str, source: str):
    from PIL import Image

    try:
        size = os.path.getsize(path)
    except OSError as exc:
        raise ImageError(f"{source}: cannot read image {path} ({exc.strerror}).") from None
    if size == 0:
        raise ImageError(f"{source}: image {path} must not be empty; got a file of 0 bytes.")
    limit = Image.MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():  # over the limit is refused below, not warned about
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            img = Image.open(path)
    except Image.DecompressionBombError:
        raise ImageError(f"{source}: image {path} must have at most {limit} pixels (PIL's decompression-bomb "
                         f"limit); got more than {2 * limit}.") from None
    except Exception as exc:
        raise ImageError(f"{source}: cannot read image {path} ({_why(exc)}).") from None
    w, h = img.size
    if limit and w * h > limit:
        img.close()
        raise ImageError(f"{source}: image {path} must have at most {limit} pixels (PIL's decompression-bomb "
                         f"limit); got {w}x{h} = {w * h}.")
    wide = img.mode == "I" and img.format not in SIXTEEN_BIT
    if img.mode not in GRAY8 + GRAY16 + COLOR8 or wide:
        img.close()
        raise ImageError(f"{source}: image {path} must be {READABLE} to be read faithfully; got mode {img.mode}"
                         f"{f' (32-bit integers, {img.format})' if wide else ''}.")
    return img


def _pixels(img, path: str, source: str, gray: bool) -> tuple[np.ndarray, int]:
    mode = img.mode
    if mode in ("LA", "PA", "RGBA") or "transparency" in img.info:
        alpha = np.asarray(img.convert("LA" if mode == "LA" else "RGBA"))[..., -1]
        clear = int((alpha < 255).sum())
        if clear:
            raise ImageError(f"{source}: image {path} (mode {mode}) must be opaque, as its alpha channel is not "
                             f"read; got {clear} transparent pixels (flatten it onto a background first).")
    if mode in GRAY16:
        a = np.asarray(img).astype(np.uint16)
        return (a if gray else np.repeat(a[None], 3, axis=0)), 65535
    if gray:
        return np.asarray(img.convert("L"), dtype=np.uint8), 255
    return np.asarray(img.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1), 255


def _why(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return text if isinstance(exc, OSError) and text else f"{type(exc).__name__}: {text}".rstrip(": ")
