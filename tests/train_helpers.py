"""Training helpers shared by tests and the CUDA checks in benchmarks/ (torch only, no pytest: a bare GPU machine
imports them too).

- :func:`user_loop`: a user's own PyTorch loop feeding sp.Tracker (tests/test_tracker.py,
  benchmarks/device_check/api_cuda.py). It replays the run ``sp.score`` trains (same init seed, same batch
  order, same SGD), so the tracker's values can be compared with the score table's;
- :class:`KillInSecondEpoch`: stands for a killed process (tests/test_checkpoint.py,
  benchmarks/device_check/cuda_paths.py).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

import sensprune as sp
from sensprune.train.hooks import Hook
from sensprune.train.loop import epoch_order


def user_loop(net, x, y, measures, *, epochs=3, bs=32, seed=0, device="cpu"):
    """Train ``net()`` on arrays ``x, y`` in a plain loop, calling the tracker at every step; returns the tracker."""
    torch.manual_seed(seed)
    dev = torch.device(device)
    model = net().to(dev)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    X, Y = torch.from_numpy(x).to(dev), torch.from_numpy(y).to(dev)
    tracker = sp.Tracker(n=len(y), labels=y, measures=measures)
    for epoch in range(epochs):
        model.train()
        order = epoch_order(len(y), seed, epoch, None).to(dev)
        for i in range(0, len(order), bs):
            idx = order[i:i + bs]
            xb = X[idx].requires_grad_()
            logits = model(xb)
            tracker.step(idx, logits, Y[idx], x=xb)
            loss = F.cross_entropy(logits, Y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        tracker.epoch_end(model=model, eval_data=(X, Y))
    return tracker


class Killed(Exception):
    """What :class:`KillInSecondEpoch` raises."""


class KillInSecondEpoch(Hook):
    """Stands for a killed process: raises at the end of the second epoch, after the first was checkpointed."""

    def on_epoch_end(self, epoch, run):
        if epoch == 1:
            raise Killed
