"""GraNd (Paul et al., NeurIPS 2021; docs/measures.md §6): ‖∇_θ ℓ(θ; x, y)‖₂ over **all** parameters.

Per-example gradients come from ``torch.func``: ``vmap(grad(loss))`` with ``functional_call``, over
chunks of ``chunk_size`` examples so memory stays O(chunk × parameters) — never a Python loop over
examples. Taken in eval mode (BatchNorm uses its running statistics, Dropout is off) at the end of
chosen epochs (default: the EL2N epoch) and averaged over those epochs — a choice of ours; Paul et al.
average over seeds at initialisation or early in training, which ``--seeds`` gives.

A layer ``torch.func`` cannot batch (``.item()``, data-dependent control flow, in-place updates of
captured tensors) raises a ValidationError naming that layer; there is no silent fallback.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from sensprune.errors import ValidationError
from sensprune.train.hooks import Hook, Run
from sensprune.train.sources import eval_mode


def grand_scores(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, chunk_size: int = 256) -> np.ndarray:
    """Per-example gradient norms (N,) of the cross-entropy over all trainable parameters.

    Evaluated in the model's current mode (call ``model.eval()`` first for per-example exactness
    with BatchNorm). Higher = larger gradient = harder.
    """
    params = {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}
    buffers = {k: b.detach() for k, b in model.named_buffers()}

    def loss_fn(p, b, xi, yi):
        out = functional_call(model, (p, b), (xi[None],))
        return F.cross_entropy(out, yi[None])

    per_ex = vmap(grad(loss_fn), in_dims=(None, None, 0, 0))
    norms = []
    for start in range(0, len(y), chunk_size):
        xs, ys = x[start:start + chunk_size], y[start:start + chunk_size]
        try:
            gs = per_ex(params, buffers, xs, ys)
        except Exception as exc:  # torch.func raises RuntimeError/ValueError/NotImplementedError
            raise ValidationError(_explain(model, xs[:2], ys[:2], loss_fn, exc)) from None
        sq = sum(g.detach().double().pow(2).flatten(1).sum(1) for g in gs.values())
        norms.append(sq.sqrt().cpu())
    return torch.cat(norms).numpy() if norms else np.zeros(0)


def _explain(model, xs, ys, loss_fn, exc) -> str:
    """Find the layer whose forward ``vmap(grad(...))`` fails on, for a one-line message."""
    current: list[str] = []
    handles = []
    for name, m in model.named_modules():
        if not list(m.children()):
            handles.append(m.register_forward_pre_hook(lambda m, i, n=name: current.append(n)))
            handles.append(m.register_forward_hook(lambda m, i, o: current.pop() if current else None))
    try:
        params = {k: p.detach() for k, p in model.named_parameters() if p.requires_grad}
        buffers = {k: b.detach() for k, b in model.named_buffers()}
        vmap(grad(loss_fn), in_dims=(None, None, 0, 0))(params, buffers, xs, ys)
    except Exception:  # expected: this rerun exists only to record which layer was running when it fails
        pass
    finally:
        for h in handles:
            h.remove()
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if current:
        layer = current[-1]
        kind = type(dict(model.named_modules())[layer]).__name__
        return (f"GraNd: torch.func cannot compute per-example gradients through layer {layer!r} "
                f"({kind}): {first}")
    return f"GraNd: torch.func cannot compute per-example gradients of {type(model).__name__}: {first}"


def check_grand(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
    """Fail early (before training) when ``model`` cannot be handled: runs GraNd on two examples."""
    with eval_mode(model):
        grand_scores(model, x[:2], y[:2])


class GraNdHook(Hook):
    """GraNd of every training example at the end of 1-based ``epochs``, averaged over them."""

    replicated = True  # evaluated on the same data with the same seed on every rank

    def __init__(self, n: int, epochs: list[int], chunk_size: int = 256):
        self.epochs, self.chunk_size = sorted(set(epochs)), chunk_size
        self.total = np.zeros(n, np.float64)
        self.count = np.zeros((), np.int64)

    def on_epoch_end(self, epoch: int, run: Run) -> None:
        if epoch + 1 not in self.epochs:
            return
        with eval_mode(run.model) as model:
            self.total += grand_scores(model, run.train.x, run.train.y, chunk_size=self.chunk_size)
        self.count += 1

    def values(self) -> dict[str, np.ndarray]:
        if int(self.count) == 0:
            return {"grand": np.full(len(self.total), np.nan)}
        return {"grand": self.total / int(self.count)}

    def meta(self) -> dict:
        return {"grand": {"epochs": self.epochs, "mode": "eval", "parameters": "all trainable parameters",
                          "method": f"torch.func vmap(grad) with functional_call, chunks of {self.chunk_size}"}}

    def state_dict(self):
        return {"total": self.total, "count": self.count}

    def load_state_dict(self, state):
        self.total, self.count = state["total"].copy(), state["count"].copy()
