"""Tiny networks shared by the tests of the unrolled measures."""

import numpy as np
import torch
from torch import nn


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
