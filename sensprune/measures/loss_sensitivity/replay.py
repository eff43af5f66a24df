"""Replay of a recorded training run as pure functions, with checkpoints (the formula: the package docstring).

A run is replayed from what was recorded while it trained (:class:`Recipe`, one :class:`StepRecord` per
optimizer step): θ_0, the model's buffers (BatchNorm running statistics) and the optimizer state at the start,
each step's batch indices, learning rates (one per param group), the global RNG state right before its forward
(dropout masks) and its augmentation seed. :func:`run_step` is one update θ_{s-1} → θ_s through
``torch.func.functional_call``, the augmentation (:mod:`sensprune.train.augment`, applied to the stored input,
so derivatives are w.r.t. the un-augmented x) and the functional optimizer (:mod:`~.optim`):

- **BatchNorm in train mode** normalises with the batch's own statistics, exactly as training did, so the
  examples of a batch are coupled and ∂L_t/∂x contains that coupling. The running statistics never enter a
  train-mode forward; they are replayed (updated on copies) so that the replayed model equals the trained one.
- **Dropout** draws from the global generator: the state recorded before each step's forward is restored, so
  the masks are the very ones training used.

:class:`Trajectory` gives θ_s (with optimizer state and buffers) for any s in decreasing order, for the reverse
sweep. It stores every state when the memory plan allows it (one replay in all), else a checkpoint every
``interval`` steps and recomputes one segment at a time from its checkpoint (peak ≈ (T/c + c)·|state|, ≈ 2√T·|state|
for c = √T; the values are the same).
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from sensprune.measures.loss_sensitivity import optim
from sensprune.train.loop import batch_loss

State = tuple[dict, dict, dict]  # (θ by name, optimizer state {key: {name: T}}, buffers by name)


@dataclass
class StepRecord:
    """One optimizer step as recorded: batch indices (B,), lr per param group, the RNG state before the forward
    (``(cpu, cuda or None)`` or None when the forward drew nothing), and the augmentation seed (or None)."""

    idx: np.ndarray
    lrs: tuple[float, ...]
    rng: tuple | None = None
    aug_seed: int | None = None


@dataclass
class Recipe:
    """What the replay of a run needs besides the per-step records.

    ``x`` (N, ...) and ``y`` (N,) the training set in index order on the device; ``weights`` (N,) the per-example
    loss weights or None; ``names`` the trainable parameters (in ``model.named_parameters()`` order), ``groups``
    the param-group index of each, ``specs`` the hyperparameters of each group; ``clip_norm`` the max norm of
    gradient clipping or None; ``augment`` a function ``(x, seed) -> x'`` or None; ``t0`` the optimizer's step
    count at θ_0 (0 for a fresh optimizer).
    """

    model: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    weights: torch.Tensor | None
    names: list[str]
    groups: list[int]
    specs: list[optim.GroupSpec]
    clip_norm: float | None = None
    augment: Callable[[torch.Tensor, int], torch.Tensor] | None = None
    t0: int = 0

    @property
    def spec_of(self) -> dict[str, optim.GroupSpec]:
        return {n: self.specs[g] for n, g in zip(self.names, self.groups)}


@contextmanager
def module_modes(model: nn.Module, train: bool, dropout: bool):
    """Run ``model`` in train (or eval) mode with Dropout layers on or off; restore every module's flag after."""
    saved = [(m, m.training) for m in model.modules()]
    try:
        model.train(train)
        for m in model.modules():
            if isinstance(m, nn.modules.dropout._DropoutNd):
                m.train(dropout)
        yield model
    finally:
        for m, flag in saved:
            m.training = flag


@contextmanager
def recorded_rng(rng: tuple | None, device: torch.device):
    """Restore the recorded global RNG state for the block (dropout masks); the caller's state is kept. Without a
    recorded state (a forward that draws nothing) the block runs as it is: no state is saved or restored."""
    if rng is None:
        yield
        return
    cuda = device.type == "cuda"
    devs = [device.index if device.index is not None else torch.cuda.current_device()] if cuda else []
    with torch.random.fork_rng(devices=devs, device_type="cuda" if cuda else "cpu"):
        torch.set_rng_state(rng[0])
        if cuda and rng[1] is not None:
            torch.cuda.set_rng_state(rng[1], device)
        yield


def run_step(recipe: Recipe, state: State, t: int, rec: StepRecord, *, xb: torch.Tensor | None = None,
             create_graph: bool = False) -> State:
    """One update θ_{t-1} → θ_t (t 1-based within the replay) on the recorded batch.

    ``xb``: the batch inputs to use (e.g. a leaf that requires grad, for ∂/∂x); default ``x[idx]``. With
    ``create_graph`` the result keeps the graph w.r.t. θ_{t-1}, the optimizer state and ``xb``.
    """
    theta, opt_state, buffers = state
    b = torch.as_tensor(rec.idx, device=recipe.x.device)
    x_in = recipe.x[b] if xb is None else xb
    th = theta if create_graph else {k: v.detach().requires_grad_(True) for k, v in theta.items()}
    bufs = {k: v.clone() for k, v in buffers.items()}  # the forward updates running statistics in place
    with torch.enable_grad(), recorded_rng(rec.rng, recipe.x.device), module_modes(recipe.model, True, True):
        if recipe.augment is not None and rec.aug_seed is not None:
            x_in = recipe.augment(x_in, rec.aug_seed)
        logits = functional_call(recipe.model, {**th, **bufs}, (x_in,))
        losses = F.cross_entropy(logits, recipe.y[b], reduction="none")
        loss = batch_loss(losses, None if recipe.weights is None else recipe.weights[b])
        grads = torch.autograd.grad(loss, [th[n] for n in recipe.names], create_graph=create_graph)
    lrs = {n: rec.lrs[g] for n, g in zip(recipe.names, recipe.groups)}
    new_theta, new_state = optim.step(th, dict(zip(recipe.names, grads)), opt_state, recipe.t0 + t, lrs,
                                      recipe.spec_of, recipe.clip_norm)
    if not create_graph:
        new_theta = {k: v.detach() for k, v in new_theta.items()}
        new_state = {k: {n: v.detach() for n, v in d.items()} for k, d in new_state.items()}
    return new_theta, new_state, bufs


class Trajectory:
    """θ_s (with optimizer state and buffers) for s = 0..T of the replayed run, from checkpoints.

    ``interval`` c ≥ T stores every state during the first replay (no recomputation); c < T stores θ_s at
    s = 0, c, 2c, …, T and recomputes a segment [jc, jc + c] when :meth:`get` asks for a state outside the
    segment it holds. :meth:`replay` must run first; it returns the final state θ_T.
    """

    def __init__(self, recipe: Recipe, start: State, records: list[StepRecord], interval: int):
        self.recipe, self.records, self.start = recipe, records, start
        self.steps = len(records)
        self.c = max(1, min(int(interval), max(self.steps, 1)))
        self.checkpoints: dict[int, State] = {}
        self.segment: dict[int, State] = {}
        self.recomputed_steps = 0

    @property
    def stores_all(self) -> bool:
        return self.c >= self.steps

    def replay(self, progress=None) -> State:
        s = self.start
        keep = self.segment if self.stores_all else self.checkpoints
        keep[0] = s
        for t, rec in enumerate(self.records, start=1):
            s = run_step(self.recipe, s, t, rec)
            if self.stores_all or t % self.c == 0 or t == self.steps:
                keep[t] = s
            if progress is not None:
                progress.update(1)
        return s

    def get(self, s: int) -> State:
        if s in self.segment:
            return self.segment[s]
        if s in self.checkpoints:
            return self.checkpoints[s]
        j = s // self.c
        a = j * self.c
        state = self.checkpoints[a]
        self.segment = {a: state}  # drop the previous segment before building this one
        for t in range(a + 1, min(a + self.c, self.steps) + 1):
            state = run_step(self.recipe, state, t, self.records[t - 1])
            self.segment[t] = state
            self.recomputed_steps += 1
        return self.segment[s]


def replay_drift(final: State, model: nn.Module) -> tuple[float, float, str]:
    """(max abs difference, max relative difference, the parameter or buffer with the largest relative
    difference) between the replayed θ_T (and buffers) and the trained ``model``'s."""
    theta, _, buffers = final
    live = {**dict(model.named_parameters()), **dict(model.named_buffers())}
    worst, worst_rel, blame = 0.0, 0.0, ""
    for name, v in {**theta, **buffers}.items():
        if not v.is_floating_point():
            continue
        diff = float((v - live[name].detach()).abs().max()) if v.numel() else 0.0
        rel = diff / max(float(live[name].detach().abs().max()) if v.numel() else 0.0, 1e-12)
        worst = max(worst, diff)
        if rel > worst_rel:
            worst_rel, blame = rel, name
    return worst, worst_rel, blame
