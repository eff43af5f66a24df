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

from sensprune.data.images import as_float, read_image, scan_imagefolder, survey
from sensprune.io import fingerprint_arrays


class ImageFiles(torch.utils.data.Dataset):
    """Map-style dataset: item i is (float32 tensor in [0, 1] of ``shape``, int label)."""

    def __init__(self, paths: list[str], labels: np.ndarray, gray: bool, source: str = "imagefolder"):
        self.paths, self.labels, self.gray, self.source = paths, labels, gray, source

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i):
        pixels, scale = read_image(self.paths[i], self.source, self.gray)
        return torch.from_numpy(as_float(pixels, scale)), int(self.labels[i])


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
    """Index ``PATH/train`` and ``PATH/test`` and read every image's header (size and mode), not its pixels.

    A pixel that cannot be read (a truncated file, a transparent one) is refused when its batch is read, by
    the DataLoader worker, with the same one-line message as the in-memory path.
    """
    source = f"imagefolder:{path}"
    classes, train, test = scan_imagefolder(path, source)
    layout = survey([p for p, _ in train + test], source)  # the in-memory path's checks, before any training
    files = [Path(os.path.relpath(p, path)).as_posix() for p, _ in train]
    y_tr = np.array([c for _, c in train], np.int64)
    y_te = np.array([c for _, c in test], np.int64)
    info = {"split": "given by the train/ and test/ folders", "classes": list(classes),
            "source": {"path": path}, "color": "grayscale" if layout.gray else "rgb", "input_range": 1.0,
            "fingerprint_note": "streamed: paths, file sizes and labels are hashed, not pixels"}
    return StreamedDataset(ImageFiles([p for p, _ in train], y_tr, layout.gray, source),
                           ImageFiles([p for p, _ in test], y_te, layout.gray, source),
                           len(classes), spec, layout.shape, info, files)
