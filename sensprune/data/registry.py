"""``load_dataset(spec)``: the one entry point from a ``--dataset`` spec to a :class:`Dataset`.

Specs
-----
Built-in names (:data:`DATASET_NAMES`): ``digits``, ``fashion-mnist``, ``mnist1d``
(:mod:`sensprune.data.builtin`) and ``mnist``, ``kmnist``, ``cifar10``, ``cifar100``,
``svhn`` (:mod:`sensprune.data.folders`, read from ``--data-root``, never downloaded).
Prefixes: ``imagefolder:PATH`` (:mod:`~sensprune.data.folders`), ``npz:PATH``, ``csv:PATH``
and ``plugin:module:callable`` (:mod:`~sensprune.data.arrays`). Each module's docstring
states its split rule.

Subsampling
-----------
``subsample=N`` keeps a stratified subset of N *training* examples, chosen with
``train_test_split(train_size=N, stratify=y_train, random_state=seed)`` and kept in their
original order; the test split is unchanged. ``Dataset.train_rows`` keeps pointing at each kept
example's row in the source. ``info`` records ``subsample``,
``subsample_seed`` and ``n_train_original``, and the spec becomes ``NAME?subsample=N``
(``NAME?subsample=N&seed=S`` for a seed other than 0), so the fingerprint differs.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from sensprune.data import arrays, builtin, folders
from sensprune.data.base import Dataset
from sensprune.errors import ValidationError

#: Built-in dataset names, in the order shown in help texts.
DATASET_NAMES = ("digits", "fashion-mnist", "mnist1d", "mnist", "kmnist", "cifar10", "cifar100", "svhn")
#: Spec prefixes that take an argument.
DATASET_PREFIXES = ("imagefolder:PATH", "npz:PATH", "csv:PATH", "plugin:module:callable")


def _unknown(spec: str) -> ValidationError:
    return ValidationError(f"Unknown dataset '{spec}'. Choose one of: {', '.join(DATASET_NAMES)}, "
                           f"or a prefix {', '.join(DATASET_PREFIXES)}.")


def _load(spec: str, data_root: str | None, label_column: str | None) -> Dataset:
    prefix, sep, arg = spec.partition(":")
    if label_column is not None and not (sep and prefix == "csv"):
        raise ValidationError(f"--label-column applies only to csv:PATH datasets, not '{spec}'.")
    if not sep:
        if spec == "digits":
            return builtin.load_digits_dataset(spec=spec)
        if spec == "fashion-mnist":
            return builtin.load_fashion_mnist(data_root=data_root, spec=spec)
        if spec == "mnist1d":
            return builtin.load_mnist1d(spec=spec)
        if spec in folders.TORCHVISION_DATASETS:
            return folders.load_torchvision(spec, data_root=data_root, spec=spec)
        raise _unknown(spec)
    loaders = {
        "imagefolder": lambda: folders.load_imagefolder(arg, spec=spec),
        "npz": lambda: arrays.load_npz(arg, spec=spec),
        "csv": lambda: arrays.load_csv(arg, spec=spec, label_column=label_column),
        "plugin": lambda: arrays.load_plugin(arg, spec=spec),
    }
    if prefix not in loaders:
        raise _unknown(spec)
    if not arg:
        raise ValidationError(f"Dataset '{spec}' needs an argument: "
                              f"{[p for p in DATASET_PREFIXES if p.startswith(prefix)][0]}.")
    return loaders[prefix]()


def subsample_dataset(dataset: Dataset, n: int, *, seed: int = 0) -> Dataset:
    """Stratified, seeded subset of ``n`` training examples (original order kept); test split unchanged.

    Raises :class:`ValidationError` if ``n`` exceeds the training set or is below the
    number of classes present in it.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 1:
        raise ValidationError(f"The 'subsample' parameter must be a positive integer; got {n!r}.")
    n_train = dataset.n_train
    present = len(set(dataset.y_train.tolist()))
    if n > n_train:
        raise ValidationError(f"--subsample {n} is larger than the training set of '{dataset.spec}' "
                              f"({n_train} examples).")
    if n < present:
        raise ValidationError(f"--subsample {n} is smaller than the number of classes ({present}); "
                              f"a stratified subset needs at least one example per class.")
    if n == n_train:
        idx = list(range(n_train))
    elif n_train - n < present:
        # sklearn cannot stratify a left-out part smaller than the number of classes: leave out
        # n_train - n examples drawn (seeded) from the largest classes instead, one per class
        rng = np.random.default_rng(seed)
        classes, counts = np.unique(dataset.y_train, return_counts=True)
        biggest = classes[np.argsort(-counts, kind="stable")[:n_train - n]]
        out = [rng.choice(np.flatnonzero(dataset.y_train == c)) for c in biggest]
        idx = np.setdiff1d(np.arange(n_train), out).tolist()
    else:
        idx, _ = arrays.stratified_indices(dataset.y_train, train_size=n, random_state=seed,
                                           source=f"--subsample {n}")
    spec = f"{dataset.spec}?subsample={n}" + (f"&seed={seed}" if seed != 0 else "")
    info = {**dataset.info, "subsample": n, "subsample_seed": int(seed), "n_train_original": n_train}
    files = None if dataset.train_files is None else [dataset.train_files[i] for i in idx]
    rows = None if dataset.train_rows is None else dataset.train_rows[idx]
    if rows is None and files is None:
        rows = np.asarray(idx, np.int64)  # the subset's rows in the full training split
    return dataclasses.replace(dataset, x_train=dataset.x_train[idx], y_train=dataset.y_train[idx],
                               spec=spec, info=info, train_files=files, train_rows=rows)


def load_dataset(spec: str, *, data_root: str | None = None, subsample: int | None = None,
                 label_column: str | None = None, seed: int = 0, stream: bool = False) -> Dataset:
    """Load the dataset named by ``spec``.

    Parameters
    ----------
    spec : str
        A name from :data:`DATASET_NAMES` or ``imagefolder:PATH``, ``npz:PATH``,
        ``csv:PATH``, ``plugin:module:callable``.
    data_root : str, optional
        Folder of the torchvision datasets (default ``./data``); for ``fashion-mnist`` an
        alternative folder holding its four ``.gz`` files.
    subsample : int, optional
        Keep a stratified subset of this many training examples (see module docstring).
    label_column : str, optional
        Label column of a ``csv:`` dataset (default ``label``); rejected for other specs.
    seed : int
        Seed of the subsample.
    stream : bool
        For ``imagefolder:PATH`` only: index the files and read pixels batch by batch with
        DataLoader workers (a :class:`~sensprune.data.stream.StreamedDataset`), for data larger
        than memory.

    Returns
    -------
    Dataset
        x_train of shape (N, ...) float32, y_train of shape (N,) int64, likewise for test.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise _unknown(str(spec))
    if stream:
        from sensprune.data.stream import open_imagefolder

        prefix, sep, arg = spec.strip().partition(":")
        if prefix != "imagefolder" or not arg:
            raise ValidationError(f"--stream applies to imagefolder:PATH datasets, not '{spec}'; other datasets "
                                  "are read into memory.")
        if subsample is not None:
            raise ValidationError("--subsample cannot be combined with --stream; make a smaller folder instead.")
        return open_imagefolder(arg, spec=spec.strip())
    dataset = _load(spec.strip(), None if data_root is None else str(data_root), label_column)
    if subsample is not None:
        dataset = subsample_dataset(dataset, subsample, seed=seed)
    return dataset
