"""O(N) per-example accumulators; memory-mapped to a temporary file when N is large.

Measures never log per step: each keeps a few (N,) arrays. Above ``SENSPRUNE_MEMMAP_MIN``
examples (default 10 million) those arrays are ``numpy.memmap`` files in the temporary folder
(``TMPDIR``), so resident memory stays bounded by what the OS keeps cached.
"""

from __future__ import annotations

import os
import tempfile

import numpy as np

MEMMAP_MIN = int(os.environ.get("SENSPRUNE_MEMMAP_MIN", 10_000_000))


def accumulator(n: int, dtype=np.float64, fill=0) -> np.ndarray:
    """A (n,) array of ``dtype`` filled with ``fill``; a ``numpy.memmap`` when ``n >= MEMMAP_MIN``."""
    if n < MEMMAP_MIN:
        return np.full(n, fill, dtype=dtype)
    fh = tempfile.NamedTemporaryFile(prefix="sensprune-acc-", suffix=".dat", delete=False)
    fh.close()
    arr = np.memmap(fh.name, dtype=dtype, mode="w+", shape=(n,))
    os.unlink(fh.name)  # the mapping stays valid; the file vanishes with the process
    arr[:] = fill
    return arr


def restore(target: np.ndarray, source: np.ndarray) -> np.ndarray:
    """Copy ``source`` into ``target`` in place when shapes match (keeps a memmap a memmap)."""
    if target.shape == source.shape:
        target[:] = source
        return target
    return np.array(source, copy=True)
