"""The memory plan of the reverse sweep (``--sensitivity-memory``): how many states to keep, how many adjoints
to carry per sweep (the formula: the package docstring).

What the sweep holds, in floats of the run's dtype (S = one state: θ, optimizer state and buffers; P = the
trainable parameters plus their optimizer state, the size of one adjoint; N·d = the training inputs):

- the stored states: all T + 1 when they fit (one replay, nothing recomputed), else checkpoints every c steps
  plus one recomputed segment: ⌈T/c⌉ + 1 + c + 1 states, smallest at c ≈ √T (so memory grows like √T·S);
- A adjoints per sweep, each an (N, d) accumulator of ∂L_t/∂X plus an adjoint of size P;
- the training inputs and the input leaf of a step (2·N·d), and the graph of one step's double backward,
  estimated as (4 + 2A)·B·a floats for a batch of B examples whose layers output a floats per example.

The plan takes the largest A ≤ K that fits beside √T checkpoints (fewer sweeps: each sweep rebuilds every step
once), then stores every state if that still fits. A budget too small for A = 1 with √T checkpoints is refused,
naming the smallest budget that works.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from sensprune.errors import ValidationError


@dataclass(frozen=True)
class MemoryPlan:
    budget_bytes: int
    checkpoint_interval: int
    stored_states: int
    adjoints_per_sweep: int
    sweeps: int
    estimated_peak_bytes: int
    stores_every_state: bool

    def to_dict(self) -> dict:
        return asdict(self)

    def describe(self) -> str:
        how = ("every state stored (no recomputation)" if self.stores_every_state else
               f"a checkpoint every {self.checkpoint_interval} steps ({self.stored_states} states held at most)")
        return (f"loss_sensitivity memory plan: {how}, {self.adjoints_per_sweep} adjoint(s) per sweep, "
                f"{self.sweeps} sweep(s), estimated peak {_gib(self.estimated_peak_bytes)} of a "
                f"{_gib(self.budget_bytes)} budget")


def _gib(b: float) -> str:
    return f"{b / 2 ** 30:.2f} GiB" if b >= 2 ** 30 else f"{b / 2 ** 20:.1f} MiB"


def _need(states: int, adjoints: int, *, state: int, adjoint: int, n_d: int, graph_b_a: int, elem: int) -> int:
    return elem * (states * state + adjoints * (n_d + adjoint) + 2 * n_d + (4 + 2 * adjoints) * graph_b_a)


def _sqrt_checkpoints(steps: int) -> tuple[int, int]:
    """c = ⌈√T⌉ and the states held with checkpoints every c steps (⌈T/c⌉ + 1 checkpoints, one segment)."""
    t = max(int(steps), 1)
    c = max(1, math.isqrt(t))
    while c * c < t:
        c += 1
    return c, min(-(-t // c) + 1 + c + 1, t + 1)


def smallest_budget(*, steps: int, state_floats: int, adjoint_floats: int, input_floats: int, graph_floats: int,
                    elem_size: int = 4, **_) -> int:
    """The smallest ``--sensitivity-memory`` (bytes) that works: one adjoint, checkpoints every ⌈√T⌉ steps."""
    return _need(_sqrt_checkpoints(steps)[1], 1, state=state_floats, adjoint=adjoint_floats, n_d=input_floats,
                 graph_b_a=graph_floats, elem=elem_size)


def plan_memory(budget_bytes: int, *, steps: int, wanted_adjoints: int, state_floats: int, adjoint_floats: int,
                input_floats: int, graph_floats: int, elem_size: int = 4, default_budget: bool = False) -> MemoryPlan:
    """The plan for a run of ``steps`` updates and ``wanted_adjoints`` (probe step, loss) adjoints.

    ``state_floats`` S, ``adjoint_floats`` P, ``input_floats`` N·d and ``graph_floats`` B·a as in the module
    docstring. Refuses (ValidationError) when even one adjoint with √T checkpoints exceeds ``budget_bytes``
    (``default_budget``: the budget is the default, 70% of the free memory, not a ``--sensitivity-memory``).
    """
    t = max(int(steps), 1)
    kw = dict(state=state_floats, adjoint=adjoint_floats, n_d=input_floats, graph_b_a=graph_floats, elem=elem_size)
    c, ckpt_states = _sqrt_checkpoints(t)
    smallest = _need(ckpt_states, 1, **kw)
    if smallest > budget_bytes:
        what = (f"70% of the free memory ({_gib(budget_bytes)})" if default_budget
                else f"`--sensitivity-memory` {_gib(budget_bytes)}")
        raise ValidationError(f"{what} is too small for loss_sensitivity over {t} steps even with checkpoints every "
                              f"{c} steps; the smallest budget that works is about {_gib(smallest * 1.05)} (or use "
                              "fewer --epochs, a larger --batch-size or a smaller model).")
    lo, hi = 1, max(1, int(wanted_adjoints))  # the largest A in [1, wanted] that fits beside √T checkpoints
    while lo < hi:
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if _need(ckpt_states, mid, **kw) <= budget_bytes else (lo, mid - 1)
    a = lo
    all_fit = _need(t + 1, a, **kw) <= budget_bytes
    interval, held = (t, t + 1) if all_fit else (c, ckpt_states)
    return MemoryPlan(budget_bytes=int(budget_bytes), checkpoint_interval=interval, stored_states=held,
                      adjoints_per_sweep=a, sweeps=-(-max(int(wanted_adjoints), 1) // a),
                      estimated_peak_bytes=_need(held, a, **kw), stores_every_state=all_fit)
