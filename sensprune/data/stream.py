"""Image folders read from disk on demand, for training sets larger than memory.

``load_dataset("imagefolder:PATH", stream=True)`` returns a :class:`StreamedDataset`: the
labels and file list are in memory, the pixels are read by DataLoader worker processes
(``--workers``) batch by batch, in exactly the index batches of the in-memory path, so a streamed
run equals an in-memory run. Layout, class order and image conversion are those of
``imagefolder:PATH`` (see :mod:`sensprune.data.folders`).

Fingerprint: the spec, each file's relative path and size, and the labels — the pixels are not
hashed, as that would read every file (a choice of ours).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from sensprune.errors import ValidationError
from sensprune.io import fingerprint_arrays


class ImageFiles(torch.utils.data.Dataset):
    """Map-style dataset: item i is (float32 tensor in [0, 1] of ``shape``, int label)."""

    def __init__(self, paths: list[str], labels: np.ndarray, gray: bool):
        self.paths, self.labels, self.gray = paths, labels, gray

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        from PIL import Image

        with Image.open(self.paths[i]) as img:
            arr = np.asarray(img.convert("L" if self.gray else "RGB"), dtype=np.uint8)
        if not self.gray:
            arr = arr.transpose(2, 0, 1)
        return torch.from_numpy(arr.astype(np.float32) / 255.0), int(self.labels[i])


@dataclass(frozen=True)
class StreamedDataset:
    """The streamed counterpart of :class:`sensprune.data.Dataset` (same attributes, no x arrays)."""

    train: ImageFiles
    test: ImageFiles
    num_classes: int
    spec: str
    input_shape: tuple[int, ...]
    info: dict[str, Any] = field(default_factory=dict)
    train_files: list[str] | None = None

    def source_rows(self) -> np.ndarray:
        """(N,) the file of each training example, relative to the folder."""
        return np.array(self.train_files, dtype=str)

    @property
    def y_train(self) -> np.ndarray:
        return self.train.labels

    @property
    def y_test(self) -> np.ndarray:
        return self.test.labels

    @property
    def n_train(self) -> int:
        return len(self.train)

    @property
    def fingerprint(self) -> str:
        sizes = np.array([os.path.getsize(p) for p in self.train.paths + self.test.paths], np.int64)
        names = "\n".join(self.train_files or []).encode()
        return fingerprint_arrays(sizes, self.y_train, self.y_test, np.frombuffer(names, np.uint8), extra=self.spec)

    def describe(self) -> dict[str, Any]:
        return {"spec": self.spec, "fingerprint": self.fingerprint, "n_train": self.n_train,
                "n_test": len(self.test), "num_classes": self.num_classes, "input_shape": list(self.input_shape),
                "streamed": True, **self.info}

    def train_source(self, device, workers: int = 2):
        from sensprune.train.sources import LoaderSource

        return LoaderSource(self.train, device, num_workers=workers)

    def test_source(self, device, workers: int = 2):
        from sensprune.train.sources import LoaderSource

        return LoaderSource(self.test, device, num_workers=workers)


def open_imagefolder(path: str, *, spec: str) -> StreamedDataset:
    """Index ``PATH/train`` and ``PATH/test`` without reading pixels (one image is opened for the shape)."""
    from PIL import Image
    from torchvision.datasets import ImageFolder

    source = f"imagefolder:{path}"
    root = Path(path)
    for sub in ("train", "test"):
        if not (root / sub).is_dir():
            raise ValidationError(f"{source}: {path}/{sub} not found; expected PATH/train/<class>/<image> "
                                  "and PATH/test/<class>/<image>.")
    try:
        tr, te = ImageFolder(str(root / "train")), ImageFolder(str(root / "test"))
    except (FileNotFoundError, OSError) as exc:
        raise ValidationError(f"{source}: not in ImageFolder layout ({exc}).") from None
    if tr.classes != te.classes:
        raise ValidationError(f"{source}: test/ and train/ must have the same class folders.")
    with Image.open(tr.samples[0][0]) as img:
        gray = img.mode in ("1", "L", "I", "I;16", "F")
        w, h = img.size
    shape = (h, w) if gray else (3, h, w)
    files = [Path(os.path.relpath(p, root)).as_posix() for p, _ in tr.samples]
    y_tr = np.array([c for _, c in tr.samples], np.int64)
    y_te = np.array([c for _, c in te.samples], np.int64)
    info = {"split": "given by the train/ and test/ folders", "classes": list(tr.classes),
            "source": {"path": path}, "color": "grayscale" if gray else "rgb", "input_range": 1.0,
            "fingerprint_note": "streamed: paths, file sizes and labels are hashed, not pixels"}
    return StreamedDataset(ImageFiles([p for p, _ in tr.samples], y_tr, gray),
                           ImageFiles([p for p, _ in te.samples], y_te, gray),
                           len(tr.classes), spec, shape, info, files)
