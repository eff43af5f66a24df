"""Critical sample ratio (LASS): a linear model whose decision boundary is known gives the CSR by hand."""

import numpy as np
import pytest
import torch
from torch import nn

from sensprune.config import TrainConfig
from sensprune.errors import ValidationError
from sensprune.measures.csr import CSRHook, critical_sample_ratio, critical_samples, lass_parameters
from sensprune.train.loop import train
from sensprune.train.sources import ArraySource


class Linear2(nn.Module):
    """logits = [0, w·x + b]: class 1 iff w·x + b > 0; the L∞ distance to the boundary is |w·x+b| / ‖w‖₁."""

    def __init__(self, w, b):
        super().__init__()
        self.w, self.b = torch.tensor(w), torch.tensor(b)

    def forward(self, x):
        s = x @ self.w + self.b
        return torch.stack([torch.zeros_like(s), s], 1)


def _setup():
    model = Linear2([1.0, -2.0, 0.5], 0.1)  # ‖w‖₁ = 3.5
    g = torch.Generator().manual_seed(0)
    x = torch.randn(400, 3, generator=g)
    margin = (x @ model.w + model.b).abs() / 3.5
    return model, x, margin


@pytest.mark.parametrize("alpha_frac, iters", [(1.0, 1), (0.1, 12)])
def test_linear_model_csr_equals_the_hand_computed_one(alpha_frac, iters):
    model, x, margin = _setup()
    r = 0.4
    keep = (margin - r).abs() > 1e-4  # no ties at the radius
    x, margin = x[keep], margin[keep]
    want = (margin < r).numpy()
    got = critical_samples(model, x, radius=r, alpha=alpha_frac * r, beta=0.0, max_iter=iters, min_new=0)
    assert np.array_equal(got, want)
    assert critical_sample_ratio(model, x, radius=r, alpha=alpha_frac * r, beta=0.0, max_iter=iters,
                                 min_new=0) == pytest.approx(want.mean())
    assert 0.1 < want.mean() < 0.9


def test_noise_never_leaves_the_ball_so_no_false_criticals():
    model, x, margin = _setup()
    r = 0.3
    got = critical_samples(model, x, radius=r, alpha=0.05, beta=0.5, max_iter=30, min_new=0, seed=3)
    assert not got[(margin > r + 1e-5).numpy()].any()
    assert got[(margin < 0.5 * r).numpy()].all()


def test_lass_parameters_are_the_paper_values_rescaled():
    assert lass_parameters(255.0) == pytest.approx({"alpha": 0.25, "beta": 0.2, "radius": 0.3})
    assert lass_parameters(1.0)["radius"] == pytest.approx(0.3 / 255)


class Dict(nn.Module):
    def forward(self, x):
        return {"logits": x}


class Flat(nn.Module):
    def forward(self, x):
        return x.sum(1)


@pytest.mark.parametrize("model, what", [(Dict(), "returned dict"), (Flat(), r"shape \(5,\)")])
def test_model_without_logits_is_refused(model, what):
    with pytest.raises(ValidationError, match="CSR needs a model that returns logits of shape \\(B, K\\); .*" + what):
        critical_sample_ratio(model, torch.randn(5, 3), radius=0.1, alpha=0.1, beta=0.0)


def test_csr_hook_gives_one_value_per_epoch(tiny_arrays):
    hook = CSRHook(tiny_arrays[2], {"radius": 0.5, "alpha": 0.2, "beta": 0.05}, samples=30)
    train(lambda: nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4)),
          ArraySource(tiny_arrays[0], tiny_arrays[1], torch.device("cpu")), TrainConfig(epochs=3, batch_size=32),
          hooks=[hook], progress=False)
    assert hook.extras()["csr"].shape == (3,)
    assert ((hook.curve >= 0) & (hook.curve <= 1)).all()
