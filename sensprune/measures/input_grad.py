"""Direct input-gradient sensitivity ``input_grad`` (docs/measures.md §2) — a cheap surrogate, not the paper's measure.

s_n^t = ‖∇ₓ ℓ(θ_t; x_n, y_n)‖₁ at the steps t where x_n is in the minibatch, averaged over those
steps. Read from the very backward pass that trains (the loop rescales it by |B|/w_n): for the
built-in mlp and cnn, the gradient at the first layer's output is mapped back to the input inside
that backward (:class:`sensprune.train.hooks.FirstLayerInputGrad`, one product with the first layer's
weights); for other models the batch is a leaf and ``x.grad`` is read. The per-step norms are
folded into the O(N) arrays once per epoch. It has only the *direct* term; the paper's loss sensitivity (Arpit et al.
2017, §3.2) goes through the parameter updates and is ``loss_sensitivity``.

Caveat: with BatchNorm in train mode the examples of a batch are coupled, so this is not exactly
per-example; use ``--at-checkpoints`` (eval mode, per-example exact) for such models.
"""

from __future__ import annotations

import numpy as np
import torch

from sensprune.measures.buffers import StepBuffer, accumulator, restore
from sensprune.train.hooks import Hook, Run, StepInfo
from sensprune.train.sources import eval_mode


def input_grad_norms(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Per-example ‖∇ₓ ℓ(x_n, y_n)‖₁ (B,) in the model's current mode (eval mode makes it exact)."""
    x = x.detach().requires_grad_(True)
    losses = torch.nn.functional.cross_entropy(model(x), y, reduction="none")
    (g,) = torch.autograd.grad(losses.sum(), x)
    return g.abs().flatten(1).sum(1)


class InputGradHook(Hook):
    """Online mean of ‖∇ₓ ℓ‖₁ over each example's presentations. ``values()['input_grad']`` is (N,).

    The per-step norms are buffered and folded into the O(N) arrays once per epoch (see StepBuffer).
    """

    needs_input_grad = True

    def __init__(self, n: int):
        self.total = accumulator(n, np.float64)
        self.count = accumulator(n, np.int64)
        self.buffer = StepBuffer()

    def on_step(self, step: StepInfo, run: Run) -> None:
        self.buffer.append(step.idx, step.input_grad.abs().flatten(1).sum(1))

    def on_epoch_end(self, epoch: int, run: Run) -> None:
        self._fold()

    def _fold(self) -> None:
        for idx, norms in self.buffer.drain():
            self.total[idx] += norms.double().cpu().numpy()
            self.count[idx] += 1

    def values(self) -> dict[str, np.ndarray]:
        self._fold()
        with np.errstate(invalid="ignore", divide="ignore"):
            return {"input_grad": np.where(self.count > 0, self.total / np.maximum(self.count, 1), np.nan)}

    def state_dict(self):
        self._fold()
        return {"total": self.total, "count": self.count}

    def load_state_dict(self, state):
        self.total, self.count = restore(self.total, state["total"]), restore(self.count, state["count"])


class CheckpointInputGradHook(Hook):
    """``input_grad`` measured in eval mode over the whole training set at chosen epochs (1-based).

    For models with BatchNorm, where the online value couples the examples of a batch.
    """

    replicated = True

    def __init__(self, n: int, epochs: list[int], batch_size: int = 512):
        self.epochs, self.batch_size = set(epochs), batch_size
        self.total = accumulator(n, np.float64)
        self.count = accumulator(n, np.int64)

    def on_epoch_end(self, epoch: int, run: Run) -> None:
        if epoch + 1 not in self.epochs:
            return
        order = torch.arange(len(run.train), device=run.device)
        with eval_mode(run.model) as model:
            for idx, x, y in run.train.batches(order, self.batch_size):
                i = idx.cpu().numpy()
                self.total[i] += input_grad_norms(model, x, y).double().cpu().numpy()
                self.count[i] += 1

    def values(self) -> dict[str, np.ndarray]:
        with np.errstate(invalid="ignore", divide="ignore"):
            return {"input_grad": np.where(self.count > 0, self.total / np.maximum(self.count, 1), np.nan)}

    def state_dict(self):
        return {"total": self.total, "count": self.count}

    def load_state_dict(self, state):
        self.total, self.count = restore(self.total, state["total"]), restore(self.count, state["count"])
