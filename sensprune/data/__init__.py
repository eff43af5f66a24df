"""Datasets: builtin (digits, fashion-mnist, mnist1d), torchvision folders, ImageFolder, NPZ, CSV, plugins."""

from sensprune.data.base import Dataset, make_dataset
from sensprune.data.registry import DATASET_NAMES, load_dataset

__all__ = ["Dataset", "make_dataset", "load_dataset", "DATASET_NAMES"]
