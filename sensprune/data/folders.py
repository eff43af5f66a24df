"""Datasets read from folders: torchvision's MNIST, KMNIST, CIFAR-10/100, SVHN, and ``imagefolder:PATH``.

Nothing is ever downloaded (``download=False``); files are read from ``--data-root``
(default ``./data``) in torchvision's layout and held fully in memory, scaled to [0, 1].

Splits
------
``mnist``, ``kmnist``
    Official 60 000 / 10 000 train/test split, inputs ``(N, 28, 28)``.
``cifar10``, ``cifar100``
    Official 50 000 / 10 000 split, inputs ``(N, 3, 32, 32)`` (channels first); cifar100
    uses the 100 fine labels.
``svhn``
    Official ``train`` (73 257) / ``test`` (26 032) split, inputs ``(N, 3, 32, 32)``; the
    ``extra`` split is not used. Digit 0 has label 0.
``imagefolder:PATH``
    ``PATH/train/<class>/<image>`` and ``PATH/test/<class>/<image>`` (torchvision
    ``ImageFolder`` layout). Classes are the sorted class folders of ``train/``; ``test/``
    must have the same class folders. Every image must have the same size. Images are RGB,
    inputs ``(N, 3, H, W)``, unless every image is grayscale, then ``(N, H, W)``, read at their
    bit depth (8-bit / 255, 16-bit / 65535). The order is ImageFolder's (class, then file name);
    ``Dataset.train_files`` lists each training image relative to PATH. What is refused (link
    loops, FIFOs, modes that cannot be read faithfully, ...): :mod:`sensprune.data.images`.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sensprune.data.base import Dataset, make_dataset
from sensprune.data.images import as_float, read_image, scan_imagefolder, survey
from sensprune.errors import ValidationError

DEFAULT_DATA_ROOT = "./data"
_MNIST_RAW = ("train-images-idx3-ubyte, train-labels-idx1-ubyte, "
              "t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte")

#: name -> (torchvision class name, expected layout under the root, split rule)
TORCHVISION_DATASETS = {
    "mnist": ("MNIST", "<root>/MNIST/raw/{" + _MNIST_RAW + "}", "official 60k/10k train/test"),
    "kmnist": ("KMNIST", "<root>/KMNIST/raw/{" + _MNIST_RAW + "}", "official 60k/10k train/test"),
    "cifar10": ("CIFAR10", "<root>/cifar-10-batches-py/{data_batch_1..5, test_batch, batches.meta}",
                "official 50k/10k train/test"),
    "cifar100": ("CIFAR100", "<root>/cifar-100-python/{train, test, meta}", "official 50k/10k train/test"),
    "svhn": ("SVHN", "<root>/{train_32x32.mat, test_32x32.mat}", "official train/test (extra not used)"),
}


def _open_split(name: str, root: str, train: bool):
    import torchvision.datasets as tvd

    cls_name, layout, _ = TORCHVISION_DATASETS[name]
    cls = getattr(tvd, cls_name)
    try:
        if name == "svhn":
            return cls(root, split="train" if train else "test", download=False)
        return cls(root, train=train, download=False)
    except RuntimeError:
        checked = "" if name in ("mnist", "kmnist") else "; checksums are verified"
        raise ValidationError(f"{name} files not found or corrupted under {root} (download is disabled"
                              f"{checked}); expected {layout.replace('<root>', root)}. "
                              f"Place them there or pass --data-root.") from None
    except Exception as exc:  # a malformed file makes torchvision raise almost anything
        raise ValidationError(f"{name} files under {root} cannot be read "
                              f"({type(exc).__name__}: {exc}).") from None


def _arrays(name: str, ds) -> tuple[np.ndarray, np.ndarray]:
    data = ds.data
    data = data.numpy() if hasattr(data, "numpy") else np.asarray(data)
    labels = ds.labels if name == "svhn" else ds.targets
    labels = labels.numpy() if hasattr(labels, "numpy") else np.asarray(labels)
    if name in ("cifar10", "cifar100"):
        data = data.transpose(0, 3, 1, 2)
    return np.ascontiguousarray(data), labels.astype(np.int64)


def load_torchvision(name: str, *, data_root: str | None = None, spec: str | None = None) -> Dataset:
    """Load one of :data:`TORCHVISION_DATASETS` from ``data_root`` without downloading.

    Returns a Dataset with x of shape (N, 28, 28) for mnist/kmnist and (N, 3, 32, 32) otherwise.
    """
    root = DEFAULT_DATA_ROOT if data_root is None else str(data_root)
    x_tr, y_tr = _arrays(name, _open_split(name, root, True))
    x_te, y_te = _arrays(name, _open_split(name, root, False))
    classes = {"cifar100": 100}.get(name, 10)
    info = {"split": TORCHVISION_DATASETS[name][2], "source": {"data_root": root}}
    return make_dataset(x_tr, y_tr, x_te, y_te, spec=spec or name, num_classes=classes,
                        info=info, source=name)


def _stack(samples, layout, source: str) -> np.ndarray:
    """(N, *layout.shape): uint8 when every image is 8-bit (``make_dataset`` scales it), else float32 in [0, 1]."""
    x = np.empty((len(samples), *layout.shape), np.float32 if layout.deep else np.uint8)
    for i, (path, _) in enumerate(samples):
        pixels, scale = read_image(path, source, layout.gray)
        x[i] = as_float(pixels, scale) if layout.deep else pixels
    return x


def load_imagefolder(path: str, *, spec: str) -> Dataset:
    """Load ``imagefolder:PATH`` (train/ and test/ in ImageFolder layout) into arrays.

    Returns a Dataset with x of shape (N, 3, H, W), or (N, H, W) when every image is
    grayscale, and ``train_files`` relative to PATH.
    """
    source = f"imagefolder:{path}"
    classes, train, test = scan_imagefolder(path, source)
    layout = survey([p for p, _ in train + test], source)  # headers only: sizes and modes before any pixel
    x_tr, x_te = _stack(train, layout, source), _stack(test, layout, source)
    y_tr = np.array([c for _, c in train], dtype=np.int64)
    y_te = np.array([c for _, c in test], dtype=np.int64)
    files = [Path(os.path.relpath(p, path)).as_posix() for p, _ in train]
    info = {"split": "given by the train/ and test/ folders", "classes": list(classes),
            "source": {"path": path}, "color": "grayscale" if layout.gray else "rgb"}
    return make_dataset(x_tr, y_tr, x_te, y_te, spec=spec, num_classes=len(classes), info=info,
                        train_files=files, source=source)
