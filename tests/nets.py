"""Tiny networks shared by the tests of the unrolled measures."""

import torch
from torch import nn


def tiny_mlp(d=4, h=5, k=3, dtype=torch.float64, seed=0):
    """Linear-Tanh-Linear, seeded, in ``dtype`` (float64 for gradient checks)."""
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(d, h), nn.Tanh(), nn.Linear(h, k)).to(dtype)
