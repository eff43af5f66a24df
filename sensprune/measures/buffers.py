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


class StepBuffer:
    """Per-step tensors kept until the next :meth:`drain`, so O(N) arrays are updated once per epoch.

    Updating numpy arrays at every step costs a device→host copy and a dozen small fancy-index
    operations per step, which dominates the step time of small models. Hooks instead append the
    step's (idx, ...) tensors here and fold them in with one vectorised update when their values,
    state or epoch end are asked for. Within one epoch every example appears at most once, so the
    folded update equals the step-by-step one; if an index repeats, :meth:`drain` returns the steps
    one by one instead.
    """

    def __init__(self):
        self.steps: list[tuple] = []
        self.distinct = True  # whether the last drain's indices were all different (one group)

    def append(self, *tensors) -> None:
        self.steps.append(tensors)

    def drain(self) -> list[tuple]:
        """The buffered steps as a list of (idx ndarray, *tensors) groups, each group free of repeats."""
        import torch

        if not self.steps:
            return []
        steps, self.steps = self.steps, []
        parts = [torch.cat(t) for t in zip(*steps)]
        idx = parts[0].cpu().numpy()
        self.distinct = idx.size == 0 or np.bincount(idx).max() <= 1  # O(N), much cheaper than np.unique's sort
        if self.distinct:
            return [(idx, *parts[1:])]
        return [(s[0].cpu().numpy(), *s[1:]) for s in steps]
