"""Synthetic classification data of any size, written as an ``npz:`` dataset for sensprune.

Ten Gaussian clusters in D dimensions with unit noise (some overlap, so a few examples are
hard), float32; the test split has 10 000 examples.

    python benchmarks/scale/make_synthetic.py --n 1000000 --dim 32 --out /tmp/synth-1m.npz
"""

from __future__ import annotations

import argparse

import numpy as np


def make(n: int, dim: int = 32, classes: int = 10, n_test: int = 10_000, seed: int = 0):
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(classes, dim)).astype(np.float32) * 1.5

    def split(m):
        y = rng.integers(0, classes, size=m)
        x = centers[y] + rng.standard_normal(size=(m, dim), dtype=np.float32)
        return x, y.astype(np.int64)

    x_train, y_train = split(n)
    x_test, y_test = split(n_test)
    return {"x_train": x_train, "y_train": y_train, "x_test": x_test, "y_test": y_test}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, required=True)
    ap.add_argument("--dim", type=int, default=32)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    np.savez(a.out, **make(a.n, a.dim))


if __name__ == "__main__":
    main()
