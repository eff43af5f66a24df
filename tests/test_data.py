"""Tests of sensprune.data: every loader, subsampling, validation errors and noise injection."""

from __future__ import annotations

import gzip
import os
import pickle
import random
import struct

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sensprune.data import DATASET_NAMES, Dataset, load_dataset, make_dataset
from sensprune.data import builtin
from sensprune.data.base import DataWarning
from sensprune.data.noise import apply_corruption, corrupt_inputs, corrupt_labels, unique_class_labels
from sensprune.errors import ValidationError

FASHION_PRESENT = builtin.fashion_mnist_available()


# ---------------------------------------------------------------- helpers

def write_idx(path, arr, *, compress=False):
    arr = np.asarray(arr, dtype=np.uint8)
    data = b"\x00\x00\x08" + bytes([arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()
    with (gzip.open if compress else open)(path, "wb") as fh:
        fh.write(data)


def toy_arrays(n_train=30, n_test=10, k=3, shape=(4,), seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n_train, *shape)).astype(np.float32), np.arange(n_train) % k,
            rng.normal(size=(n_test, *shape)).astype(np.float32), np.arange(n_test) % k)


def save_npz(path, **arrays):
    np.savez(path, **arrays)
    return f"npz:{path}"


@pytest.fixture(scope="module")
def mnist1d_pair():
    """mnist1d generated once (a second time for the determinism check) for the whole module."""
    np.random.seed(123)
    random.seed(123)
    before = (np.random.random(), random.random())
    np.random.seed(123)
    random.seed(123)
    first = load_dataset("mnist1d")
    after = (np.random.random(), random.random())
    return first, load_dataset("mnist1d"), before == after


# ---------------------------------------------------------------- registry and builtins

def test_names_exported():
    assert DATASET_NAMES == ("digits", "fashion-mnist", "mnist1d", "mnist", "kmnist",
                             "cifar10", "cifar100", "svhn")


def test_unknown_dataset():
    msg = (r"Unknown dataset 'foo'\. Choose one of: digits, fashion-mnist, mnist1d, mnist, kmnist, cifar10, "
           r"cifar100, svhn, or a prefix imagefolder:PATH, npz:PATH, csv:PATH, plugin:module:callable\.")
    with pytest.raises(ValidationError, match=msg):
        load_dataset("foo")
    with pytest.raises(ValidationError, match="Unknown dataset 'zip:x'"):
        load_dataset("zip:x")
    with pytest.raises(ValidationError, match="needs an argument: npz:PATH"):
        load_dataset("npz:")


def test_label_column_only_for_csv():
    with pytest.raises(ValidationError, match="--label-column applies only to csv"):
        load_dataset("digits", label_column="y")


def test_digits_shapes_and_determinism():
    a, b = load_dataset("digits"), load_dataset("digits")
    assert a.x_train.shape == (1257, 8, 8) and a.x_test.shape == (540, 8, 8)
    assert a.x_train.dtype == np.float32 and a.y_train.dtype == np.int64
    assert 0.0 <= a.x_train.min() and a.x_train.max() <= 1.0
    assert a.num_classes == 10 and a.info["split"] == "stratified 70/30, random_state=0"
    assert a.fingerprint == b.fingerprint
    # stratified: per-class train share is 70% +- one example
    full = np.bincount(np.concatenate([a.y_train, a.y_test]))
    assert np.all(np.abs(np.bincount(a.y_train) - 0.7 * full) <= 1)


FASHION_REASON = (f"Fashion-MNIST files absent from {builtin.fashion_mnist_dir()} "
                  "(apt-get install dataset-fashion-mnist)")


@pytest.mark.skipif(not FASHION_PRESENT, reason=FASHION_REASON)
def test_fashion_mnist_loads():
    ds = load_dataset("fashion-mnist")
    assert ds.x_train.shape == (60000, 28, 28) and ds.x_test.shape == (10000, 28, 28)
    assert ds.num_classes == 10 and ds.x_train.max() == 1.0 and ds.x_train.min() == 0.0
    assert np.all(np.bincount(ds.y_train) == 6000)


def test_fashion_mnist_data_root_and_missing(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    for key, name in builtin.FASHION_MNIST_FILES.items():
        n = 20 if "train" in key else 10
        arr = rng.integers(0, 256, (n, 28, 28)) if key.startswith("x") else np.arange(n) % 10
        write_idx(tmp_path / name, arr, compress=True)
    ds = load_dataset("fashion-mnist", data_root=str(tmp_path))
    assert ds.x_train.shape == (20, 28, 28) and ds.info["source"]["folder"] == str(tmp_path)
    monkeypatch.setenv(builtin.FASHION_MNIST_ENV, str(tmp_path / "absent"))
    with pytest.raises(ValidationError, match=r"Fashion-MNIST files not found in .*absent; install them "
                                              r"with: apt-get install -y dataset-fashion-mnist"):
        load_dataset("fashion-mnist")
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x09"))
    with pytest.raises(ValidationError, match="data bytes"):
        load_dataset("fashion-mnist", data_root=str(tmp_path))


def test_mnist1d_generates(mnist1d_pair):
    a, b, rng_restored = mnist1d_pair
    assert a.x_train.shape == (4000, 40) and a.x_test.shape == (1000, 40)
    assert a.num_classes == 10 and a.info["generation_args"]["seed"] == 42
    assert "url" not in a.info["generation_args"]
    assert a.fingerprint == b.fingerprint
    assert rng_restored


# ---------------------------------------------------------------- subsample

def test_subsample_stratified_and_deterministic():
    full = load_dataset("digits")
    a = load_dataset("digits", subsample=300)
    b = load_dataset("digits", subsample=300)
    c = load_dataset("digits", subsample=300, seed=1)
    assert a.n_train == 300 and a.fingerprint == b.fingerprint != c.fingerprint
    assert a.spec == "digits?subsample=300" and c.spec == "digits?subsample=300&seed=1"
    assert a.info["subsample"] == 300 and a.info["n_train_original"] == 1257
    np.testing.assert_array_equal(a.x_test, full.x_test)
    share = np.bincount(full.y_train) * 300 / full.n_train
    assert np.all(np.abs(np.bincount(a.y_train, minlength=10) - share) <= 1)
    everything = load_dataset("digits", subsample=1257)
    np.testing.assert_array_equal(everything.x_train, full.x_train)
    assert everything.fingerprint != full.fingerprint


def test_subsample_bounds():
    with pytest.raises(ValidationError, match="larger than the training set"):
        load_dataset("digits", subsample=5000)
    with pytest.raises(ValidationError, match="smaller than the number of classes"):
        load_dataset("digits", subsample=5)
    with pytest.raises(ValidationError, match="positive integer"):
        load_dataset("digits", subsample=0)


def test_subsample_close_to_the_full_size():
    """Leaving out fewer examples than there are classes: one each from the largest classes."""
    full = load_dataset("digits")
    d = load_dataset("digits", subsample=full.n_train - 3, seed=1)
    assert d.n_train == full.n_train - 3
    lost = np.bincount(full.y_train, minlength=10) - np.bincount(d.y_train, minlength=10)
    assert lost.sum() == 3 and lost.max() == 1
    assert d.fingerprint == load_dataset("digits", subsample=full.n_train - 3, seed=1).fingerprint


# ---------------------------------------------------------------- npz

def test_npz_loads_and_fingerprint(tmp_path):
    spec = save_npz(tmp_path / "d.npz", **dict(zip(("x_train", "y_train", "x_test", "y_test"), toy_arrays())))
    a, b = load_dataset(spec), load_dataset(spec)
    assert a.spec == spec and a.x_train.shape == (30, 4) and a.num_classes == 3
    assert a.fingerprint == b.fingerprint


@pytest.mark.parametrize("change, match", [
    (lambda d: d.pop("y_test"), "missing keys: y_test"),
    (lambda d: d.update(y_train=d["y_train"][:-1]), "x_train has 30 rows but y_train has 29"),
    (lambda d: d.update(y_test=d["y_test"] - 1), "labels outside"),
    (lambda d: d["x_train"].__setitem__((0, 0), np.nan), "NaN or inf"),
    (lambda d: d["x_test"].__setitem__((1, 1), np.inf), "NaN or inf"),
    (lambda d: d.update(x_test=d["x_test"][:0], y_test=d["y_test"][:0]), "zero examples"),
])
def test_npz_errors(tmp_path, change, match):
    d = dict(zip(("x_train", "y_train", "x_test", "y_test"), toy_arrays()))
    change(d)
    with pytest.raises(ValidationError, match=match):
        load_dataset(save_npz(tmp_path / "d.npz", **d))


def test_npz_corrupt_or_absent(tmp_path):
    (tmp_path / "bad.npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ValidationError, match="truncated or corrupt"):
        load_dataset(f"npz:{tmp_path / 'bad.npz'}")
    with pytest.raises(ValidationError, match="file not found"):
        load_dataset(f"npz:{tmp_path / 'none.npz'}")


# ---------------------------------------------------------------- csv

def write_csv(path, header, rows):
    path.write_text("\n".join([",".join(header)] + [",".join(map(str, r)) for r in rows]) + "\n")
    return f"csv:{path}"


def test_csv_stratified_split(tmp_path):
    spec = write_csv(tmp_path / "d.csv", ["a", "label", "b"], [[i, i % 2, i * 0.5] for i in range(20)])
    ds = load_dataset(spec)
    assert ds.x_train.shape == (16, 2) and ds.x_test.shape == (4, 2)
    assert ds.info["split"] == "stratified 80/20, random_state=0"
    assert ds.info["feature_columns"] == ["a", "b"]
    assert np.all(np.diff(ds.x_train[:, 0]) > 0)  # file order kept
    np.testing.assert_array_equal(ds.y_train, ds.x_train[:, 0].astype(int) % 2)


def test_csv_split_column_and_names(tmp_path):
    rows = [[i, ["cat", "dog"][i % 2], "test" if i >= 8 else "train"] for i in range(10)]
    ds = load_dataset(write_csv(tmp_path / "d.csv", ["f", "kind", "split"], rows), label_column="kind")
    assert ds.n_train == 8 and ds.x_test.shape == (2, 1)
    assert ds.info["classes"] == ["cat", "dog"] and ds.info["split"] == "given by the 'split' column"


def test_csv_errors(tmp_path):
    with pytest.raises(ValidationError, match=r"csv:.*d\.csv has no column 'label'; columns are: a, b, c\. "
                                              r"Pass --label-column\."):
        load_dataset(write_csv(tmp_path / "d.csv", ["a", "b", "c"], [[1, 2, 3]]))
    with pytest.raises(ValidationError, match="column 'a' has the non-numeric value 'x'"):
        load_dataset(write_csv(tmp_path / "e.csv", ["a", "label"], [[1, 0], ["x", 1]]))
    with pytest.raises(ValidationError, match="zero examples"):
        load_dataset(write_csv(tmp_path / "f.csv", ["a", "label"], []))
    with pytest.raises(ValidationError, match="train/test"):
        load_dataset(write_csv(tmp_path / "g.csv", ["a", "label", "split"], [[1, 0, "val"]]))


# ---------------------------------------------------------------- plugin

PLUGIN_SOURCE = '''
import numpy as np
from sensprune.data import make_dataset
X = np.arange(24, dtype=np.float32).reshape(12, 2)
Y = np.arange(12) % 2
def as_tuple():
    return X[:8], Y[:8], X[8:], Y[8:]
def as_dict():
    return {"x_train": X[:8], "y_train": Y[:8], "x_test": X[8:], "y_test": Y[8:], "num_classes": 3}
def as_dataset():
    return make_dataset(X[:8], Y[:8], X[8:], Y[8:], spec="mine", info={"note": "hi"})
def wrong():
    return [1, 2]
NOT_CALLABLE = 3
'''


@pytest.fixture
def plugin_dir(tmp_path, monkeypatch):
    (tmp_path / "sp_test_plugin.py").write_text(PLUGIN_SOURCE)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_plugin_return_types(plugin_dir):
    a = load_dataset("plugin:sp_test_plugin:as_tuple")
    with pytest.warns(DataWarning, match=r"class ids 2 of 0\.\.2 have no training example"):
        b = load_dataset("plugin:sp_test_plugin:as_dict")
    c = load_dataset("plugin:sp_test_plugin:as_dataset")
    assert a.x_train.shape == (8, 2) and a.spec == "plugin:sp_test_plugin:as_tuple"
    assert b.num_classes == 3 and b.info["classes_without_training_examples"] == [2]
    assert isinstance(c, Dataset) and c.spec == "plugin:sp_test_plugin:as_dataset" and c.info["note"] == "hi"
    assert a.fingerprint != c.fingerprint


def test_plugin_errors(plugin_dir):
    with pytest.raises(ValidationError, match="plugin 'no_such_mod_xyz:fn' could not be imported: "
                                              "ModuleNotFoundError"):
        load_dataset("plugin:no_such_mod_xyz:fn")
    with pytest.raises(ValidationError, match="could not be imported: AttributeError"):
        load_dataset("plugin:sp_test_plugin:missing")
    with pytest.raises(ValidationError, match=r"returned list; expected a tuple \(x_train, y_train, x_test, "
                                              r"y_test\), a dict with those keys, or a Dataset"):
        load_dataset("plugin:sp_test_plugin:wrong")
    with pytest.raises(ValidationError, match="is not callable"):
        load_dataset("plugin:sp_test_plugin:NOT_CALLABLE")
    with pytest.raises(ValidationError, match="expected plugin:module:callable"):
        load_dataset("plugin:sp_test_plugin")


# ---------------------------------------------------------------- torchvision folders (tiny fixtures)

def make_mnist_raw(root, folder="MNIST", n_train=12, n_test=6):
    raw = root / folder / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)
    write_idx(raw / "train-images-idx3-ubyte", rng.integers(0, 256, (n_train, 28, 28)))
    write_idx(raw / "train-labels-idx1-ubyte", np.arange(n_train) % 10)
    write_idx(raw / "t10k-images-idx3-ubyte", rng.integers(0, 256, (n_test, 28, 28)))
    write_idx(raw / "t10k-labels-idx1-ubyte", np.arange(n_test) % 10)


@pytest.fixture
def skip_checksums(monkeypatch):
    """The fixtures are not the real files, so torchvision's md5 checks are reduced to existence checks."""
    import torchvision.datasets.cifar as cifar
    import torchvision.datasets.svhn as svhn

    def exists(fpath, md5=None):
        return os.path.isfile(fpath)

    monkeypatch.setattr(cifar, "check_integrity", exists)
    monkeypatch.setattr(svhn, "check_integrity", exists)


def test_mnist_and_kmnist_from_raw_idx(tmp_path):
    make_mnist_raw(tmp_path)
    ds = load_dataset("mnist", data_root=str(tmp_path))
    assert ds.x_train.shape == (12, 28, 28) and ds.x_test.shape == (6, 28, 28) and ds.num_classes == 10
    assert ds.x_train.max() <= 1.0 and ds.spec == "mnist"
    with pytest.raises(ValidationError, match=r"kmnist files not found .*download is disabled.*"
                                              r"KMNIST/raw/\{train-images-idx3-ubyte"):
        load_dataset("kmnist", data_root=str(tmp_path))
    make_mnist_raw(tmp_path, "KMNIST")
    assert load_dataset("kmnist", data_root=str(tmp_path)).n_train == 12


def test_cifar10_from_pickled_batches(tmp_path, skip_checksums):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    first = None
    for i, name in enumerate(names):
        data = rng.integers(0, 256, (2, 3072), dtype=np.uint8)
        first = data if first is None else first
        with open(folder / name, "wb") as fh:
            labels = [0, 1] if name == "test_batch" else [i % 10, (i + 1) % 10]  # test labels occur in train
            pickle.dump({"data": data, "labels": labels}, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, fh)
    with pytest.warns(DataWarning, match=r"class ids 6, 7, 8, 9 of 0\.\.9 have no training example"):
        ds = load_dataset("cifar10", data_root=str(tmp_path))
    assert ds.x_train.shape == (10, 3, 32, 32) and ds.x_test.shape == (2, 3, 32, 32)
    np.testing.assert_allclose(ds.x_train[0], first[0].reshape(3, 32, 32) / 255.0, rtol=1e-6)
    assert list(ds.y_train[:4]) == [0, 1, 1, 2]


def test_svhn_from_mat(tmp_path, skip_checksums):
    from scipy.io import savemat

    rng = np.random.default_rng(0)
    for split, n in (("train", 5), ("test", 3)):
        savemat(tmp_path / f"{split}_32x32.mat",
                {"X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
                 "y": (np.arange(n) + 8)[:, None] % 10 + 1})
    with pytest.warns(DataWarning, match=r"class ids 4, 5, 6, 7, 8 of 0\.\.9"):
        ds = load_dataset("svhn", data_root=str(tmp_path))
    assert ds.x_train.shape == (5, 3, 32, 32) and ds.x_test.shape == (3, 3, 32, 32)
    assert list(ds.y_train) == [9, 0, 1, 2, 3]  # label 10 means digit 0


@pytest.mark.parametrize("name, layout", [
    ("cifar10", r"cifar-10-batches-py/\{data_batch_1\.\.5, test_batch"),
    ("cifar100", r"cifar-100-python/\{train, test, meta\}"),
    ("svhn", r"\{train_32x32\.mat, test_32x32\.mat\}"),
    ("mnist", r"MNIST/raw/\{train-images-idx3-ubyte"),
])
def test_torchvision_files_missing(tmp_path, name, layout):
    with pytest.raises(ValidationError, match=f"{name} files not found .*download is disabled.*{layout}"):
        load_dataset(name, data_root=str(tmp_path))


# ---------------------------------------------------------------- imagefolder

def make_imagefolder(root, *, mode="RGB", sizes=None):
    from PIL import Image

    rng = np.random.default_rng(0)
    sizes = sizes or {}
    for split, n in (("train", 3), ("test", 1)):
        for cls in ("ant", "bee"):
            (root / split / cls).mkdir(parents=True)
            for i in range(n):
                w, h = sizes.get((split, cls, i), (6, 5))
                shape = (h, w, 3) if mode == "RGB" else (h, w)
                Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(
                    root / split / cls / f"{i}.png")
    return f"imagefolder:{root}"


def test_imagefolder_rgb(tmp_path):
    ds = load_dataset(make_imagefolder(tmp_path / "imgs"))
    assert ds.x_train.shape == (6, 3, 5, 6) and ds.x_test.shape == (2, 3, 5, 6)
    assert ds.info["classes"] == ["ant", "bee"] and list(ds.y_train) == [0, 0, 0, 1, 1, 1]
    assert ds.train_files == ["train/ant/0.png", "train/ant/1.png", "train/ant/2.png",
                              "train/bee/0.png", "train/bee/1.png", "train/bee/2.png"]
    sub = load_dataset(f"imagefolder:{tmp_path / 'imgs'}", subsample=2)
    assert len(sub.train_files) == 2 and {f.split("/")[1] for f in sub.train_files} == {"ant", "bee"}


def test_imagefolder_grayscale(tmp_path):
    ds = load_dataset(make_imagefolder(tmp_path / "imgs", mode="L"))
    assert ds.x_train.shape == (6, 5, 6) and ds.info["color"] == "grayscale"


def test_imagefolder_errors(tmp_path):
    with pytest.raises(ValidationError, match="different sizes.*resize"):
        load_dataset(make_imagefolder(tmp_path / "a", sizes={("train", "bee", 1): (7, 7)}))
    with pytest.raises(ValidationError, match="not found"):
        load_dataset(f"imagefolder:{tmp_path / 'nowhere'}")
    spec = make_imagefolder(tmp_path / "b")
    os.rename(tmp_path / "b" / "test" / "bee", tmp_path / "b" / "test" / "wasp")
    with pytest.raises(ValidationError, match="must be the same"):
        load_dataset(spec)
    (tmp_path / "c" / "train").mkdir(parents=True)
    with pytest.raises(ValidationError, match="c/test not found; expected PATH/train/<class>/<image>"):
        load_dataset(f"imagefolder:{tmp_path / 'c'}")
    (tmp_path / "c" / "test").mkdir()
    with pytest.raises(ValidationError, match="not in ImageFolder layout"):
        load_dataset(f"imagefolder:{tmp_path / 'c'}")
    (tmp_path / "d" / "train" / "x").mkdir(parents=True)
    (tmp_path / "d" / "test" / "x").mkdir(parents=True)
    (tmp_path / "d" / "train" / "x" / "broken.png").write_bytes(b"not a png")
    (tmp_path / "d" / "test" / "x" / "ok.png").write_bytes(b"not a png either")
    with pytest.raises(ValidationError, match="cannot read image .*broken.png"):
        load_dataset(f"imagefolder:{tmp_path / 'd'}")


# ---------------------------------------------------------------- noise

def test_corrupt_labels_symmetric():
    y = np.arange(1000) % 10
    y_new, idx = corrupt_labels(y, 10, 0.25, seed=3)
    assert len(idx) == 250 and len(np.unique(idx)) == 250
    assert np.all(y_new[idx] != y[idx])
    mask = np.ones(1000, bool)
    mask[idx] = False
    np.testing.assert_array_equal(y_new[mask], y[mask])
    again, idx2 = corrupt_labels(y, 10, 0.25, seed=3)
    np.testing.assert_array_equal(again, y_new)
    np.testing.assert_array_equal(idx, idx2)
    assert not np.array_equal(corrupt_labels(y, 10, 0.25, seed=4)[1], idx)
    assert set(np.unique(y_new[idx] - y[idx]) % 10) == set(range(1, 10))  # all other classes reachable


def test_corrupt_labels_asymmetric_and_bounds():
    y = np.arange(20) % 4
    y_new, idx = corrupt_labels(y, 4, 0.5, mode="asymmetric", seed=0)
    assert len(idx) == 10 and np.all(y_new[idx] == (y[idx] + 1) % 4)
    assert len(corrupt_labels(y, 4, 0.0, seed=0)[1]) == 0
    assert len(corrupt_labels(y, 4, 1.0, seed=0)[1]) == 20
    with pytest.raises(ValidationError, match=r"'fraction' parameter of corrupt_labels must be a float in "
                                              r"\[0, 1\]; got 1\.5\."):
        corrupt_labels(y, 4, 1.5, seed=0)
    with pytest.raises(ValidationError, match="at least 2 classes"):
        corrupt_labels(np.zeros(3, int), 1, 0.5, seed=0)


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 200), k=st.integers(2, 12), fraction=st.floats(0, 1), seed=st.integers(0, 2**31))
def test_corrupt_labels_property(n, k, fraction, seed):
    y = np.random.default_rng(seed).integers(0, k, n)
    y_new, idx = corrupt_labels(y, k, fraction, seed=seed)
    assert len(idx) == round(fraction * n)
    assert np.all(y_new[idx] != y[idx]) and np.sum(y_new != y) == len(idx)
    assert y_new.min() >= 0 and y_new.max() < k


def test_corrupt_inputs():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(2000, 3)) * [1.0, 5.0, 0.1] + [0.0, 10.0, -3.0]).astype(np.float32)
    x_new, idx = corrupt_inputs(x, 0.5, seed=1)
    assert len(idx) == 1000 and x_new.dtype == np.float32
    keep = np.setdiff1d(np.arange(2000), idx)
    np.testing.assert_array_equal(x_new[keep], x[keep])
    assert not np.any(np.all(x_new[idx] == x[idx], axis=1))
    np.testing.assert_allclose(x_new[idx].mean(0), x.mean(0), atol=0.5)
    np.testing.assert_allclose(x_new[idx].std(0), x.std(0), rtol=0.1)
    np.testing.assert_array_equal(corrupt_inputs(x, 0.5, seed=1)[0], x_new)


def test_apply_corruption():
    ds = load_dataset("digits")
    for kind, suffix in (("randY", "digits+randY0.2s0"), ("randY-asym", "digits+randY-asym0.2s0"),
                         ("randX", "digits+randX0.2s0")):
        new, idx = apply_corruption(ds, kind, 0.2, 0)
        assert new.spec == suffix and len(idx) == round(0.2 * 1257) == new.info["corruption"]["n_corrupted"]
        assert new.x_test is ds.x_test and new.y_test is ds.y_test
        assert new.fingerprint != ds.fingerprint
        assert new.fingerprint == apply_corruption(ds, kind, 0.2, 0)[0].fingerprint
    uniq, idx = apply_corruption(ds, "unique", 1.0, 0)
    assert uniq.num_classes == 1257 and np.array_equal(uniq.y_train, unique_class_labels(1257))
    assert uniq.info["test_accuracy_meaningful"] is False and len(idx) == 1257
    assert uniq.spec == "digits+unique"
    same, idx = apply_corruption(ds, "none", 0.0, 0)
    assert same is ds and len(idx) == 0
    assert "corruption" not in ds.info  # the original is untouched
    with pytest.raises(ValidationError, match="Unknown corruption 'blur'"):
        apply_corruption(ds, "blur", 0.1, 0)
    with pytest.raises(ValidationError, match=r"must be a float in \[0, 1\]"):
        apply_corruption(ds, "randY", -0.1, 0)


def test_make_dataset_direct_checks():
    x_tr, y_tr, x_te, y_te = toy_arrays()
    with pytest.raises(ValidationError, match="non-numeric|expected numbers"):
        make_dataset(x_tr.astype(str), y_tr, x_te, y_te, spec="t")
    ds = make_dataset((x_tr * 255).clip(0, 255).astype(np.uint8), y_tr, x_te, y_te, spec="t")
    assert ds.x_train.max() <= 1.0


def test_csv_named_labels_write_numbers_one_way(tmp_path):
    """With a non-numeric label present, `1`, `1.0` and ` 1` are still one class (not three)."""
    from sensprune.data import load_dataset

    rows = "".join(f"{lab},{i}\n" for i, lab in enumerate(["cat", "1", "1.0", " 1", "cat", "1"] * 4))
    (tmp_path / "d.csv").write_text("label,a\n" + rows)
    ds = load_dataset(f"csv:{tmp_path / 'd.csv'}")
    assert ds.num_classes == 2
