"""Per-class loss sensitivity g_ij (Arpit et al., ICML 2017, §3.2 and Fig. 4; docs/measures.md §3).

g_ij = (1/T) Σ_t mean_{x : y(x) = j} ‖∂L_t^{(i)}/∂x‖₁ with L_t^{(i)} the probe loss restricted to probe
examples of label i; row i = whose loss, column j = whose inputs. The mean over class j runs over
*all* N_j training examples of class j.

- :class:`PerClassFullHook` (the default): the paper's measure, full horizon — ∂L_t^{(i)}/∂x through every
  earlier update, from the same K stratified probe steps as ``loss_sensitivity``
  (:mod:`sensprune.measures.loss_sensitivity.sampled`; one adjoint per (step, class) in the reverse sweep), weighted by
  stratum size / T (unbiased; ``probe_times="all"`` = every step = exact).
- :class:`PerClassHook` (``--horizon 1``): a PROXY — the dependence truncated to the one update before each
  step; only every ``every``-th step is used and T' is the number of steps used.

Choices of ours (both): the probe set is the one of ``loss_sensitivity``; the labels are the training labels
(corrupted ones, when noise was injected).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from sensprune.errors import ValidationError
from sensprune.measures.loss_sensitivity.sampled import SampledSensitivityHook
from sensprune.measures.loss_sensitivity.proxy import h1_input_grads
from sensprune.measures.loss_sensitivity.exact import _ProbeMixin, params_of
from sensprune.train.hooks import Hook, Run, StepInfo


def off_diagonal_fraction(g: np.ndarray) -> float:
    """Σ_{i≠j} g_ij / Σ g_ij of a (K, K) matrix (NaN when it sums to 0)."""
    g = np.asarray(g, np.float64)
    total = g.sum()
    return float((total - np.trace(g)) / total) if total > 0 else float("nan")


class PerClassHook(_ProbeMixin, Hook):
    """Accumulates the (K, K) matrix g_ij online; ``extras()['per_class']``."""

    def __init__(self, y: np.ndarray, num_classes: int, probe: np.ndarray, every: int = 1):
        if num_classes < 2:
            raise ValidationError(f"--per-class needs at least 2 classes; the dataset has {num_classes}.")
        if not isinstance(every, int) or every < 1:
            raise ValidationError(f"--per-class-every must be an integer >= 1; got {every!r}.")
        self.k, self.every, self.probe = int(num_classes), every, np.asarray(probe)
        self.class_size = np.bincount(np.asarray(y), minlength=self.k).astype(np.float64)
        self.total = np.zeros((self.k, self.k), np.float64)
        self.steps = np.zeros((), np.int64)
        self.theta = None

    def on_train_begin(self, run: Run) -> None:
        self._setup(run)
        self.probe_classes = [c for c in range(self.k) if bool((self.yp == c).any())]

    def on_step(self, step: StepInfo, run: Run) -> None:
        self.theta = params_of(run.model) if step.step % self.every == 0 else None

    def after_step(self, step: StepInfo, run: Run) -> None:
        if self.theta is None:
            return
        params = [p for p in run.model.parameters() if p.requires_grad]
        losses = F.cross_entropy(run.model(self.xp), self.yp, reduction="none")
        vs = [torch.autograd.grad(losses[self.yp == i].mean(), params, retain_graph=True) for i in self.probe_classes]
        wb = None if getattr(run, "weights", None) is None else run.weights[step.idx]
        gxs = h1_input_grads(run.model, list(self.theta.values()), step.x, step.y, vs, step.lr, wb)
        yb = step.y.cpu().numpy()
        for i, gx in zip(self.probe_classes, gxs):
            norms = gx.abs().flatten(1).sum(1).double().cpu().numpy()
            self.total[i] += np.bincount(yb, weights=norms, minlength=self.k) / np.maximum(self.class_size, 1)
        self.steps += 1
        self.theta = None

    def matrix(self) -> np.ndarray:
        return self.total / max(int(self.steps), 1)

    def extras(self) -> dict[str, np.ndarray]:
        return {"per_class": self.matrix()}

    def meta(self) -> dict:
        return {"per_class": {"mode": "PROXY: truncated to one update (horizon 1)",
                              "horizon": 1, "every": self.every, "probe_size": int(len(self.probe)),
                              "rows": "class i of the probe loss L^(i)", "columns": "class j of the inputs x",
                              "normalisation": "mean over all training examples of class j, then over the "
                                               "steps used"}}

    def state_dict(self):
        return {"total": self.total, "steps": self.steps}

    def load_state_dict(self, state):
        self.total, self.steps = state["total"].copy(), state["steps"].copy()


class PerClassFullHook(SampledSensitivityHook):
    """The (K, K) matrix g_ij with the full-horizon estimator; ``extras()['per_class']``."""

    def __init__(self, y: np.ndarray, num_classes: int, probe: np.ndarray, probe_times=None,
                 seed: int | None = None):
        if num_classes < 2:
            raise ValidationError(f"--per-class needs at least 2 classes; the dataset has {num_classes}.")
        super().__init__(len(y), probe, probe_times, seed)
        self.k = int(num_classes)
        self.class_size = np.bincount(np.asarray(y), minlength=self.k).astype(np.float64)
        self.total = np.full((self.k, self.k), np.nan)

    def _groups(self):
        self.probe_classes = [c for c in range(self.k) if bool((self.yp == c).any())]
        return [self.yp == c for c in self.probe_classes]

    def _compute(self, recipe, start, records: list, model) -> None:
        norms = self._sweep(recipe, start, records, model)  # (K, C, N)
        w = torch.as_tensor(self.strata / len(records), dtype=torch.float64, device=norms.device)
        per_x = torch.einsum("k,kcn->cn", w, norms).cpu().numpy()
        y = recipe.y.cpu().numpy()
        self.total = np.zeros((self.k, self.k))
        for row, i in enumerate(self.probe_classes):
            self.total[i] = np.bincount(y, weights=per_x[row], minlength=self.k) / np.maximum(self.class_size, 1)

    def matrix(self) -> np.ndarray:
        return self.total

    def values(self) -> dict[str, np.ndarray]:
        return {}

    def extras(self) -> dict[str, np.ndarray]:
        return {"per_class": self.matrix()}

    def meta(self) -> dict:
        base = super().meta()["loss_sensitivity"]
        keep = ("mode", "estimator", "probe_times", "steps", "times", "strata", "sampling_seed", "probe_size",
                "replay_max_abs_param_diff", "approximations")
        return {"per_class": {**{k: base[k] for k in keep},
                              "rows": "class i of the probe loss L^(i)", "columns": "class j of the inputs x",
                              "normalisation": "mean over all training examples of class j of the full-horizon "
                                               "||dL_t^(i)/dx||_1, then (stratum size / T)-weighted sum over the "
                                               "sampled steps"}}

    def state_dict(self):
        return {**super().state_dict(), "total": self.total}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.total = np.asarray(state["total"]).copy()
