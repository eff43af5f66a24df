"""Tiny networks shared by the tests of the unrolled measures."""

import numpy as np
import torch
from torch import nn

from sensprune.measures.loss_sensitivity import optim
from sensprune.measures.loss_sensitivity.exact import buffers_of, params_of, unrolled_sensitivity_of
from sensprune.measures.loss_sensitivity.replay import Recipe, StepRecord, run_step


def tiny_mlp(d=4, h=5, k=3, dtype=torch.float64, seed=0):
    """Linear-Tanh-Linear, seeded, in ``dtype`` (float64 for gradient checks)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, k)).to(dtype)


def fd_problem():
    """The float64 replay problem of the finite-difference tests: tiny MLP, 6 examples, 4 SGD steps."""
    g = torch.Generator().manual_seed(1)
    x = torch.randn(6, 4, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    batches = [torch.tensor([0, 1, 2]), torch.tensor([3, 4, 5]), torch.tensor([1, 3, 5]), torch.tensor([0, 2, 4])]
    return tiny_mlp(), x, y, batches, [0.5, 0.4, 0.3, 0.2]


def central_fd(f, x, eps=1e-5):
    """Central finite differences of ``f(x)`` (a float or a 1-d array) w.r.t. every entry of ``x``: shape f × x."""
    cols = []
    for i in range(x.shape[0]):
        for j in range(x.shape[1]):
            xp, xm = x.clone(), x.clone()
            xp[i, j] += eps
            xm[i, j] -= eps
            cols.append((np.asarray(f(xp)) - np.asarray(f(xm))) / (2 * eps))
    return np.moveaxis(np.array(cols), 0, -1).reshape(*np.shape(cols[0]), *x.shape)


# -- one-group SGD runs given as batches and learning rates (the oracles of the unrolled measures' tests) --

def sgd_recipe(model: nn.Module, x, y, *, momentum: float = 0.0, weight_decay: float = 0.0, weights=None) -> Recipe:
    """A ``Recipe`` for one-group ``torch.optim.SGD`` (the proxy's and the tests' runs)."""
    names = [k for k, p in model.named_parameters() if p.requires_grad]
    spec = optim.GroupSpec("sgd", momentum=momentum, weight_decay=weight_decay)
    return Recipe(model, x, y, weights, names, [0] * len(names), [spec])


def records_of(batches, lrs, rngs=None, aug_seeds=None) -> list[StepRecord]:
    """``StepRecord`` of each step from its batch, lr (one group or a tuple), RNG state, seed."""
    out = []
    for t, (b, lr) in enumerate(zip(batches, lrs)):
        idx = b.cpu().numpy() if torch.is_tensor(b) else np.asarray(b)
        out.append(StepRecord(idx.astype(np.int64), tuple(lr) if isinstance(lr, (tuple, list)) else (float(lr),),
                              None if rngs is None else rngs[t], None if aug_seeds is None else aug_seeds[t]))
    return out


def _sgd_start(model, x, params, momentum):
    theta = {k: v.detach().clone().to(x.dtype) for k, v in (params or params_of(model)).items()}
    return theta, (optim.init_state(optim.GroupSpec("sgd", momentum=momentum), theta)), buffers_of(model)


def unrolled_sensitivity(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batches, lrs, *,
                         params: dict | None = None, momentum: float = 0.0, weight_decay: float = 0.0,
                         probe: np.ndarray | None = None, include_direct: bool = False,
                         return_last_grad: bool = False, weights: torch.Tensor | None = None,
                         per_step: bool = False):
    """``exact.unrolled_sensitivity_of`` for a one-group SGD run given as batches (index tensors) and learning
    rates; θ_0 = ``params`` or the model's. Returns ḡ (N,), higher = more sensitive."""
    recipe = sgd_recipe(model, x, y, momentum=momentum, weight_decay=weight_decay, weights=weights)
    return unrolled_sensitivity_of(recipe, _sgd_start(model, x, params, momentum), records_of(batches, lrs),
                                   probe=probe, include_direct=include_direct, per_step=per_step,
                                   return_last_grad=return_last_grad)


def replay_sgd(model, x, y, batches, lrs, *, params=None, momentum=0.0, weight_decay=0.0, weights=None):
    """θ_T after replaying a one-group SGD run functionally (no graph kept)."""
    recipe = sgd_recipe(model, x, y, momentum=momentum, weight_decay=weight_decay, weights=weights)
    state = _sgd_start(model, x, params, momentum)
    for t, rec in enumerate(records_of(batches, lrs), start=1):
        state = run_step(recipe, state, t, rec)
    return state[0]
