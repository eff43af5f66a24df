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
    inputs ``(N, 3, H, W)``, unless every image is grayscale, then ``(N, H, W)``. The order
    is ImageFolder's (class, then file name); ``Dataset.train_files`` lists each training
    image relative to PATH.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from sensprune.data.base import Dataset, make_dataset
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


def _scan(folder: Path, source: str):
    from torchvision.datasets import ImageFolder

    try:
        return ImageFolder(str(folder))
    except (FileNotFoundError, OSError) as exc:
        raise ValidationError(f"{source}: {folder} is not in ImageFolder layout ({exc}).") from None


def _read_images(samples, source: str) -> tuple[list[np.ndarray], list[str]]:
    from PIL import Image, UnidentifiedImageError

    images, modes = [], []
    for path, _ in samples:
        try:
            with Image.open(path) as img:
                img.load()
                gray = img.mode in ("1", "L", "I", "I;16", "F")
                modes.append(gray)
                images.append(img.convert("L") if gray else img.convert("RGB"))
        except (UnidentifiedImageError, OSError) as exc:
            raise ValidationError(f"{source}: cannot read image {path} ({exc}).") from None
    return images, modes


def load_imagefolder(path: str, *, spec: str) -> Dataset:
    """Load ``imagefolder:PATH`` (train/ and test/ in ImageFolder layout) into arrays.

    Returns a Dataset with x of shape (N, 3, H, W), or (N, H, W) when every image is
    grayscale, and ``train_files`` relative to PATH.
    """
    source = f"imagefolder:{path}"
    root = Path(path)
    if not root.is_dir():
        raise ValidationError(f"{source}: folder {path} not found.")
    missing = [sub for sub in ("train", "test") if not (root / sub).is_dir()]
    if missing:
        raise ValidationError(f"{source}: {' and '.join(f'{path}/{m}' for m in missing)} not found; expected "
                              f"PATH/train/<class>/<image> and PATH/test/<class>/<image>.")
    train, test = _scan(root / "train", source), _scan(root / "test", source)
    if train.classes != test.classes:
        raise ValidationError(f"{source}: test/ has classes {', '.join(test.classes)} but train/ has "
                              f"{', '.join(train.classes)}; they must be the same.")
    imgs_tr, gray_tr = _read_images(train.samples, source)
    imgs_te, gray_te = _read_images(test.samples, source)
    all_gray = all(gray_tr) and all(gray_te)
    sizes = {img.size for img in imgs_tr + imgs_te}
    if len(sizes) > 1:
        shown = ", ".join(f"{w}x{h}" for w, h in sorted(sizes)[:5])
        raise ValidationError(f"{source}: images have different sizes ({shown}); resize them all to one "
                              f"size first (e.g. with PIL or ImageMagick 'mogrify -resize WxH!').")

    def stack(imgs):
        if all_gray:
            return np.stack([np.asarray(i.convert("L"), dtype=np.uint8) for i in imgs])
        return np.stack([np.asarray(i.convert("RGB"), dtype=np.uint8).transpose(2, 0, 1) for i in imgs])

    x_tr, x_te = stack(imgs_tr), stack(imgs_te)
    y_tr = np.array([c for _, c in train.samples], dtype=np.int64)
    y_te = np.array([c for _, c in test.samples], dtype=np.int64)
    files = [Path(os.path.relpath(p, root)).as_posix() for p, _ in train.samples]
    info = {"split": "given by the train/ and test/ folders", "classes": list(train.classes),
            "source": {"path": path}, "color": "grayscale" if all_gray else "rgb"}
    return make_dataset(x_tr, y_tr, x_te, y_te, spec=spec, num_classes=len(train.classes), info=info,
                        train_files=files, source=source)
