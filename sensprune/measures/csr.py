"""Critical sample ratio with Langevin adversarial sample search (Arpit et al., ICML 2017, §4; docs/measures.md §5).

x is *critical* if some x̂ with ‖x̂ − x‖_∞ ≤ r gets another predicted label than x. LASS searches
for such an x̂: x̃ ← x̃ + α·sign(∇_x̃ ℓ(f(x̃), k)) + β·ε, ε ~ N(0, I), k the class predicted at x,
then clip into [x − r, x + r]; x is marked critical as soon as the prediction flips. The search of
a batch stops after ``max_iter`` iterations, or as soon as an iteration finds fewer than
``min_new`` new critical samples (docs/measures.md §5; the first iteration counts too).

The paper's α = 0.25, β = 0.2, r = 0.3 are on the 0–255 pixel scale; :func:`lass_parameters`
rescales them to the data's range (``dataset.info["input_range"]``). Choices of ours: inputs are
not clipped to the data range (standardized data has none); the noise comes from a private
generator so the training run's random stream is untouched; the model is evaluated in eval mode.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sensprune.errors import ValidationError
from sensprune.train.hooks import Hook, Run
from sensprune.train.sources import eval_mode

PAPER_ALPHA, PAPER_BETA, PAPER_RADIUS = 0.25, 0.2, 0.3  # on the 0-255 pixel scale


def lass_parameters(input_range: float) -> dict[str, float]:
    """The paper's α, β, r rescaled from the 0–255 scale to data spanning ``input_range``."""
    s = float(input_range) / 255.0
    return {"alpha": PAPER_ALPHA * s, "beta": PAPER_BETA * s, "radius": PAPER_RADIUS * s}


def _logits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    out = model(x)
    if not torch.is_tensor(out) or out.dim() != 2 or out.shape[0] != x.shape[0]:
        what = type(out).__name__ if not torch.is_tensor(out) else f"a tensor of shape {tuple(out.shape)}"
        raise ValidationError(f"CSR needs a model that returns logits of shape (B, K); "
                              f"{type(model).__name__} returned {what}.")
    return out


def critical_samples(model: nn.Module, x: torch.Tensor, *, radius: float, alpha: float, beta: float,
                     max_iter: int = 100, min_new: int = 20, batch_size: int = 500, seed: int = 0) -> np.ndarray:
    """Boolean (N,): which rows of ``x`` (N, ...) are critical for ``model`` (evaluated as given).

    Parameters
    ----------
    radius, alpha, beta : float
        L∞ radius r, sign-step α and noise scale β, on the scale of ``x``.
    max_iter : int
        Iterations per batch (paper: 100).
    min_new : int
        Stop a batch once an iteration finds fewer than this many new critical samples.
    """
    if radius < 0 or alpha < 0 or beta < 0:
        raise ValidationError("CSR radius, alpha and beta must be >= 0.")
    gen = torch.Generator(device=x.device).manual_seed(int(seed))
    out = []
    for start in range(0, len(x), batch_size):
        xb = x[start:start + batch_size].detach()
        with torch.no_grad():
            k = _logits(model, xb).argmax(1)
        crit = torch.zeros(len(xb), dtype=torch.bool, device=x.device)
        xt = xb.clone()
        for _ in range(max_iter):
            xt.requires_grad_(True)
            logits = _logits(model, xt)
            (g,) = torch.autograd.grad(F.cross_entropy(logits, k, reduction="sum"), xt)
            noise = torch.randn(xt.shape, generator=gen, device=x.device, dtype=xt.dtype)
            xt = xt.detach() + alpha * g.sign() + beta * noise
            xt = torch.max(torch.min(xt, xb + radius), xb - radius)
            with torch.no_grad():
                flipped = _logits(model, xt).argmax(1) != k
            new = flipped & ~crit
            crit |= flipped
            if int(new.sum()) < min_new:
                break
        out.append(crit.cpu())
    return torch.cat(out).numpy() if out else np.zeros(0, bool)


def critical_sample_ratio(model: nn.Module, x: torch.Tensor, **kw) -> float:
    """CSR: the fraction of rows of ``x`` that are critical (see :func:`critical_samples`)."""
    return float(np.mean(critical_samples(model, x, **kw)))


class CSRHook(Hook):
    """CSR of ``samples`` random test examples after every epoch; ``extras()['csr']`` is (epochs,)."""

    replicated = True  # evaluated on the same data with the same seed on every rank

    def __init__(self, x_test: np.ndarray, params: dict[str, float], samples: int = 500, seed: int = 0,
                 max_iter: int = 100):
        if not isinstance(samples, int) or samples < 1:
            raise ValidationError(f"--csr-samples must be an integer >= 1; got {samples!r}.")
        rng = np.random.RandomState(seed)
        self.pick = np.sort(rng.choice(len(x_test), min(samples, len(x_test)), replace=False))
        self.x = np.asarray(x_test)[self.pick]
        self.params, self.seed, self.max_iter = params, seed, max_iter
        self.curve = np.zeros(0)

    def on_epoch_end(self, epoch: int, run: Run) -> None:
        with eval_mode(run.model) as model:
            x = torch.as_tensor(self.x, device=run.device)
            csr = critical_sample_ratio(model, x, **self.params, max_iter=self.max_iter,
                                        seed=self.seed * 1000 + epoch)
        self.curve = np.append(self.curve, csr)

    def extras(self) -> dict[str, np.ndarray]:
        return {"csr": self.curve}

    def meta(self) -> dict:
        return {"csr": {**self.params, "max_iter": self.max_iter, "min_new": 20, "samples": int(len(self.pick)),
                        "set": "test split (validation)", "norm": "L-infinity",
                        "scale_note": "paper values alpha=0.25, beta=0.2, r=0.3 on the 0-255 scale, "
                                      "multiplied by input_range/255"}}

    def state_dict(self):
        return {"curve": self.curve}

    def load_state_dict(self, state):
        self.curve = state["curve"].copy()
