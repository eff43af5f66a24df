"""Where the training loop reads its data: tensors on the device, or a DataLoader of index batches.

:class:`ArraySource` holds a whole split as tensors (a batch is an index slice); :class:`LoaderSource`
fetches the very same index batches through a ``torch.utils.data.DataLoader`` for data that should not sit
in memory. :func:`predict_logits` and :func:`evaluate` read either in index order, in eval mode.
"""

from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


class ArraySource:
    """Training or test data as tensors on the device; a batch is an index slice."""

    def __init__(self, x: np.ndarray, y: np.ndarray, device: torch.device):
        self.x = torch.as_tensor(x, device=device)
        self.y = torch.as_tensor(y, device=device)

    def __len__(self) -> int:
        return len(self.y)

    def batches(self, order: torch.Tensor, batch_size: int):
        return self.batches_of(index_batches(order, batch_size))

    def batches_of(self, chunks: list[torch.Tensor]):
        """Yield ``(idx, x, y)`` for each index tensor in ``chunks`` (an empty chunk gives empty tensors)."""
        for idx in chunks:
            yield idx, self.x[idx], self.y[idx]


class LoaderSource:
    """Data behind a map-style ``torch.utils.data.Dataset`` returning ``(x, y)``, read by a DataLoader
    with worker processes. Yields exactly the index batches :class:`ArraySource` would."""

    def __init__(self, dataset, device: torch.device, num_workers: int = 2):
        self.dataset, self.device, self.num_workers = dataset, device, num_workers

    def __len__(self) -> int:
        return len(self.dataset)

    def batches(self, order: torch.Tensor, batch_size: int):
        return self.batches_of(index_batches(order, batch_size))

    def batches_of(self, chunks: list[torch.Tensor]):
        from torch.utils.data import DataLoader

        lists = [c.tolist() for c in chunks]
        loader = iter(DataLoader(self.dataset, batch_sampler=[c for c in lists if c],
                                 num_workers=self.num_workers))
        for idx in lists:
            if not idx:
                x0, _ = self.dataset[0]
                yield (torch.zeros(0, dtype=torch.long, device=self.device),
                       torch.zeros((0, *torch.as_tensor(x0).shape), device=self.device),
                       torch.zeros(0, dtype=torch.long, device=self.device))
                continue
            x, y = next(loader)
            yield (torch.as_tensor(idx, device=self.device), x.to(self.device, torch.float32),
                   y.to(self.device, torch.long))


def index_batches(order: torch.Tensor, batch_size: int, rank: int = 0, world: int = 1) -> list[torch.Tensor]:
    """Split ``order`` into global batches of ``batch_size``; rank ``r`` of ``world`` keeps ``batch[r::world]``."""
    return [order[i:i + batch_size][rank::world] for i in range(0, len(order), batch_size)]


@contextmanager
def eval_mode(model: nn.Module):
    """Put ``model`` in eval mode inside the block and restore its previous mode after, even on error."""
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


@torch.no_grad()
def predict_logits(model: nn.Module, source: ArraySource | LoaderSource, batch_size: int = 1024,
                   *, with_labels: bool = False, amp: torch.dtype | None = None):
    """Eval-mode logits (N, K) of every example of ``source`` in index order (and labels (N,) if asked).

    ``amp``: run the forward under autocast to that dtype (the logits are returned as float32).
    """
    device = _device_of(source)
    order = torch.arange(len(source), device=device)
    logits, labels = [], []
    with eval_mode(model):
        for _, x, y in source.batches(order, batch_size):
            if amp is None:
                logits.append(model(x))
            else:
                with torch.autocast(device.type, dtype=amp):
                    logits.append(model(x).float())
            labels.append(y)
    return (torch.cat(logits), torch.cat(labels)) if with_labels else torch.cat(logits)


def _device_of(source) -> torch.device:
    return source.y.device if isinstance(source, ArraySource) else source.device


@torch.no_grad()
def evaluate(model: nn.Module, source: ArraySource | LoaderSource, batch_size: int = 1024) -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``model`` on ``source`` (eval mode)."""
    logits, y = predict_logits(model, source, batch_size, with_labels=True)
    return {"acc": float((logits.argmax(1) == y).float().mean()), "loss": float(F.cross_entropy(logits, y))}
