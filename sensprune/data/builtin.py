"""Built-in datasets that need no download: ``digits``, ``fashion-mnist`` and ``mnist1d``.

Splits
------
``digits``
    scikit-learn's ``load_digits()`` (1797 images, 10 classes), pixels divided by 16 to
    [0, 1], inputs of shape ``(N, 8, 8)``. Stratified 70/30 split with
    ``train_test_split(random_state=0, stratify=y)``: 1257 train / 540 test. Each part
    keeps the order of ``load_digits()``.
``fashion-mnist``
    The four gzip IDX files from ``/usr/share/datasets/fashion-mnist`` (Debian package
    ``dataset-fashion-mnist``; the environment variable ``SENSPRUNE_FASHION_MNIST_DIR``
    names another folder), or from ``--data-root`` if that folder holds them. Official
    split: 60 000 train / 10 000 test, inputs ``(N, 28, 28)`` scaled to [0, 1].
``mnist1d``
    Generated locally with ``mnist1d.data.make_dataset`` and the package's default
    arguments (``get_dataset_args()``: 5000 samples, seed 42, sequence length 40). The
    package's own split: the first 80% of its shuffled samples are train (4000) and the rest
    test (1000); inputs ``(N, 40)``. Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import os
import random
import zlib

import numpy as np

from sensprune.data.arrays import stratified_indices
from sensprune.data.base import Dataset, make_dataset
from sensprune.errors import ValidationError
from sensprune.io import fingerprint_file

FASHION_MNIST_DIR = "/usr/share/datasets/fashion-mnist"
#: Environment variable naming the system folder of Fashion-MNIST instead of :data:`FASHION_MNIST_DIR`.
FASHION_MNIST_ENV = "SENSPRUNE_FASHION_MNIST_DIR"
FASHION_MNIST_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
FASHION_MNIST_CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                         "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def load_digits_dataset(*, spec: str = "digits") -> Dataset:
    """Scikit-learn digits, x of shape (N, 8, 8) in [0, 1], stratified 70/30 split (random_state=0)."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = (bunch.data / 16.0).astype(np.float32).reshape(-1, 8, 8)
    y = bunch.target.astype(np.int64)
    tr, te = stratified_indices(y, train_size=0.7, random_state=0, source="digits")
    info = {"split": "stratified 70/30, random_state=0", "source": "sklearn.datasets.load_digits"}
    return make_dataset(x[tr], y[tr], x[te], y[te], spec=spec, num_classes=10, info=info, train_rows=tr,
                        source="digits")


def read_idx(path: str) -> np.ndarray:
    """Parse an IDX file (optionally gzip-compressed) into an ndarray.

    Only the unsigned-byte type (code 0x08), used by (Fashion-)MNIST, is accepted.
    Raises :class:`ValidationError` for a truncated or malformed file.
    """
    opener = gzip.open if path.endswith(".gz") else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except (OSError, EOFError, zlib.error) as exc:
        raise ValidationError(f"{path} cannot be read ({exc}).") from None
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08 or not 1 <= data[3] <= 4:
        raise ValidationError(f"{path} is not an unsigned-byte IDX file.")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ValidationError(f"{path} is truncated.")
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">u4", count=ndim, offset=4))
    if len(data) - header != int(np.prod(shape)):
        raise ValidationError(f"{path} has {len(data) - header} data bytes, its header says shape {shape}.")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape).copy()


def fashion_mnist_dir() -> str:
    """The system folder of Fashion-MNIST: ``$SENSPRUNE_FASHION_MNIST_DIR`` if set, else :data:`FASHION_MNIST_DIR`."""
    return os.environ.get(FASHION_MNIST_ENV) or FASHION_MNIST_DIR


def fashion_mnist_available(data_root: str | None = None) -> bool:
    """Whether ``load_dataset("fashion-mnist", data_root=...)`` finds its four files (used to skip tests)."""
    return _fashion_folder(data_root) is not None


def _fashion_folder(data_root: str | None) -> str | None:
    candidates = []
    if data_root is not None:
        candidates += [data_root, os.path.join(data_root, "fashion-mnist")]
    candidates.append(fashion_mnist_dir())
    for folder in candidates:
        if all(os.path.isfile(os.path.join(folder, f)) for f in FASHION_MNIST_FILES.values()):
            return folder
    return None


def load_fashion_mnist(*, data_root: str | None = None, spec: str = "fashion-mnist") -> Dataset:
    """Fashion-MNIST from gzip IDX files, x of shape (N, 28, 28) in [0, 1], official 60k/10k split."""
    folder = _fashion_folder(data_root)
    if folder is None:
        where = fashion_mnist_dir() if data_root is None else f"{data_root} or {fashion_mnist_dir()}"
        raise ValidationError(f"Fashion-MNIST files not found in {where}; install them with: "
                              f"apt-get install -y dataset-fashion-mnist")
    paths = {k: os.path.join(folder, f) for k, f in FASHION_MNIST_FILES.items()}
    arrays = {k: read_idx(p) for k, p in paths.items()}
    info = {"split": "official 60k/10k train/test", "classes": FASHION_MNIST_CLASSES,
            "source": {"folder": folder,
                       "sha256": {os.path.basename(p): fingerprint_file(p) for p in paths.values()}}}
    return make_dataset(arrays["x_train"], arrays["y_train"], arrays["x_test"], arrays["y_test"],
                        spec=spec, num_classes=10, info=info, source="fashion-mnist")


def mnist1d_args() -> dict:
    """The generation arguments used for ``mnist1d`` (the package defaults, without its download URL)."""
    from mnist1d.data import get_dataset_args

    args = get_dataset_args(as_dict=True)
    args.pop("url", None)
    return args


def load_mnist1d(*, spec: str = "mnist1d") -> Dataset:
    """MNIST-1D generated locally with default arguments; x of shape (N, 40); the package's 80/20 split.

    The generator seeds numpy's and Python's global random state; both are restored afterwards.
    """
    from mnist1d.data import get_dataset_args, make_dataset as mnist1d_make
    from mnist1d.utils import ObjectView

    gen = mnist1d_args()
    args = get_dataset_args()
    args = ObjectView({**args.__dict__, **gen})
    np_state, py_state = np.random.get_state(), random.getstate()
    try:
        d = mnist1d_make(args)
    finally:
        np.random.set_state(np_state)
        random.setstate(py_state)
    info = {"split": f"mnist1d's own split: first {gen['train_split']:.0%} of the generated samples train",
            "generation_args": gen}
    return make_dataset(d["x"], d["y"], d["x_test"], d["y_test"], spec=spec, num_classes=10,
                        info=info, source="mnist1d")
