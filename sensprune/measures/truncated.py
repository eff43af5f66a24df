"""Truncated loss sensitivity (MEASURES §1, truncated mode): a fast proxy, not the paper's measure.

Only the last H updates before each step t carry the dependence of L_t on x (Arpit et al., ICML 2017,
§3.2 back-propagates through *all* of them; see :mod:`sensprune.measures.unrolled` for the full-horizon
estimator). For H = 1, ∂L_{s+1}/∂x_i = −η_s·∇_{x_i}[∇_θ L_B(θ_s)·v], v = ∇_θ L(θ_{s+1}): a one-step
influence surrogate. Its ranking agrees with the paper's measure only at Spearman 0.5–0.7 on digits
(``benchmarks/unrolled_accuracy/results.txt``). The probe modes and the next-batch caveats are described in
the docstring of :class:`LossSensitivityHook`.
"""

from __future__ import annotations

from collections import deque

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from sensprune.errors import ValidationError
from sensprune.measures.unrolled import _ProbeMixin, params_of, sgd_step
from sensprune.train import Hook, Run, StepInfo


PROBE_MODES = ("fixed", "next-batch")


def parse_probe_mode(value) -> str:
    """``"fixed"`` (the probe set P) or ``"next-batch"`` (the next training minibatch); else ValidationError."""
    mode = str(value).strip().lower()
    if mode not in PROBE_MODES:
        raise ValidationError(f"--probe must be one of {', '.join(PROBE_MODES)}. Got {value!r} instead.")
    return mode


def _trainable(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


def h1_input_grad(model: nn.Module, theta_s: list[torch.Tensor], xb: torch.Tensor, yb: torch.Tensor,
                  v, lr: float) -> torch.Tensor:
    """−η·∇_{x_i}[∇_θ L_B(θ_s)·v] for every row x_i of ``xb`` (leaf or not): (B, ...), same as ``xb``.

    ``theta_s`` lists values for ``model``'s trainable parameters (in ``parameters()`` order); the
    model is evaluated at them by pointing each parameter's data at them for the duration of the
    call (cheaper than ``functional_call`` on small models) and restored afterwards. ∇_θ L_B is taken
    with ``create_graph`` and the second backward is the vector-Jacobian product with ``v``; gradients
    are returned, nothing is accumulated into ``.grad``.
    """
    leaf = xb.detach().requires_grad_(True)
    params = _trainable(model)
    saved = [p.data for p in params]
    gx = None
    try:
        # both backward passes run while the parameters point at θ_s: the graph saves the parameter
        # tensors themselves, so restoring them first would silently evaluate the second pass at θ_{s+1}
        for p, t in zip(params, theta_s):
            p.data = t
        lb = F.cross_entropy(model(leaf), yb)
        gth = torch.autograd.grad(lb, params, create_graph=True, allow_unused=True)
        pairs = [(g, vi) for g, vi in zip(gth, v) if g is not None and g.requires_grad and vi is not None]
        if pairs:
            (gx,) = torch.autograd.grad([g for g, _ in pairs], leaf,
                                        grad_outputs=[vi.to(g.dtype) for g, vi in pairs], allow_unused=True)
    finally:
        for p, t in zip(params, saved):
            p.data = t
    return torch.zeros_like(leaf) if gx is None else gx.mul_(-lr)


class LossSensitivityHook(_ProbeMixin, Hook):
    """Truncated loss sensitivity (horizon H ≥ 1); ``values()['loss_sensitivity']`` is (N,)."""

    def __init__(self, n: int, probe: np.ndarray, horizon: int = 1, include_direct: bool = False,
                 probe_mode: str = "fixed"):
        self.probe, self.horizon, self.include_direct = np.asarray(probe), int(horizon), include_direct
        self.probe_mode = parse_probe_mode(probe_mode)
        if self.probe_mode == "next-batch" and self.horizon != 1:
            raise ValidationError(f"--probe next-batch works with --horizon 1 only (got --horizon {horizon}); "
                                  "use --probe fixed for longer horizons.")
        if self.probe_mode == "next-batch" and include_direct:
            raise ValidationError("--include-direct is not supported with --probe next-batch "
                                  "(use --probe fixed).")
        self.total = np.zeros(n, np.float64)
        self.steps = np.zeros((), np.int64)
        self.last_step_fixed = np.zeros((), np.int64)  # next-batch: steps that fell back to the fixed probe
        self.window: deque = deque(maxlen=self.horizon)

    def on_train_begin(self, run: Run) -> None:
        self._setup(run)
        if self.probe_mode == "next-batch" and getattr(run.config, "amp", "none") == "fp16":
            raise ValidationError("--probe next-batch reads the training gradients, which --amp fp16 scales; "
                                  "use --probe fixed or --amp bf16.")

    def _add(self, idx: torch.Tensor, gx: torch.Tensor) -> None:
        self.total[idx.cpu().numpy()] += gx.abs().flatten(1).sum(1).double().cpu().numpy()
        self.steps += 1

    def _next_batch_step(self, step: StepInfo, run: Run) -> None:
        # .grad now holds v = ∇_θ L_{B_{s+1}}(θ_{s+1}) (the batch loss the loop trains on; no weight decay)
        if self.window:
            theta_s, _, b, lr = self.window[-1]
            v = [p.grad for p in _trainable(run.model)]
            self._add(b, h1_input_grad(run.model, list(theta_s.values()), run.train.x[b], run.train.y[b], v, lr))
        self.window.append((params_of(run.model), None, step.idx.clone(), float(step.lr)))

    def _fixed_probe_h1(self, run: Run) -> None:
        """H = 1 with the fixed probe for the pending (θ_s, B_s); the model is at θ_{s+1}."""
        theta_s, _, b, lr = self.window[-1]
        params = _trainable(run.model)
        lp = F.cross_entropy(run.model(self.xp), self.yp)
        v = torch.autograd.grad(lp, params, allow_unused=True)
        self._add(b, h1_input_grad(run.model, list(theta_s.values()), run.train.x[b], run.train.y[b], v, lr))

    def on_epoch_end(self, epoch: int, run: Run) -> None:
        if self.probe_mode == "next-batch" and epoch + 1 == run.config.epochs and self.window:
            self._fixed_probe_h1(run)  # the last step has no next batch
            self.last_step_fixed += 1
            self.window.clear()

    def on_step(self, step: StepInfo, run: Run) -> None:
        if self.probe_mode == "next-batch":
            self._next_batch_step(step, run)
            return
        opt = run.optimizer
        bufs = None
        if self.horizon > 1 and run.config.momentum:
            st = [opt.state.get(p, {}).get("momentum_buffer") for _, p in run.model.named_parameters()]
            if all(b is not None for b in st):
                bufs = {k: b.detach().clone() for (k, _), b in zip(run.model.named_parameters(), st)}
        self.window.append((params_of(run.model), bufs, step.idx.clone(), float(step.lr)))

    def after_step(self, step: StepInfo, run: Run) -> None:
        if self.probe_mode == "next-batch":
            return
        if self.horizon == 1 and not self.include_direct:
            self._fixed_probe_h1(run)
            return
        cfg, x = run.config, run.train.x
        idx = torch.cat([w[2] for w in self.window] + ([self.pidx] if self.include_direct else []))
        ids = torch.unique(idx)
        leaf = x[ids].clone().requires_grad_(True)
        xp = leaf[torch.searchsorted(ids, self.pidx)] if self.include_direct else self.xp
        if self.horizon == 1:
            theta_s, _, b, lr = self.window[-1]
            theta_s = {k: v.detach().requires_grad_(True) for k, v in theta_s.items()}
            params = [p for p in run.model.parameters() if p.requires_grad]
            lp = F.cross_entropy(run.model(xp), self.yp)
            v = torch.autograd.grad(lp, params, retain_graph=self.include_direct)
            xb = leaf[torch.searchsorted(ids, b)]
            lb = F.cross_entropy(functional_call(run.model, theta_s, (xb,)), run.train.y[b])
            gth = torch.autograd.grad(lb, list(theta_s.values()), create_graph=True)
            dot = -lr * sum((g * vi).sum() for g, vi in zip(gth, v))
            (gx,) = torch.autograd.grad(dot + (lp if self.include_direct else 0.0), leaf)
        else:
            theta, bufs = self.window[0][0], self.window[0][1]
            theta = {k: v.clone().requires_grad_(True) for k, v in theta.items()}
            for _, _, b, lr in self.window:
                theta, bufs = sgd_step(run.model, theta, bufs, leaf[torch.searchsorted(ids, b)],
                                       run.train.y[b], lr, cfg.momentum, cfg.weight_decay)
            lp = F.cross_entropy(functional_call(run.model, theta, (xp,)), self.yp)
            (gx,) = torch.autograd.grad(lp, leaf)
        self.total[ids.cpu().numpy()] += gx.abs().flatten(1).sum(1).double().cpu().numpy()
        self.steps += 1

    def values(self) -> dict[str, np.ndarray]:
        return {self.name: self.total / max(int(self.steps), 1)}

    @property
    def name(self) -> str:
        """The column name: ``loss_sensitivity_hH`` — a proxy is never named like the paper's measure."""
        return f"loss_sensitivity_h{self.horizon}"

    def meta(self) -> dict:
        approx = [f"only the last {self.horizon} update(s) before each step carry the dependence",
                  "momentum and weight decay entering the window are treated as constants; "
                  "momentum carry-over beyond the window is ignored"]
        if self.probe_mode == "next-batch":
            approx.append("L_{s+1} = mean loss of the next training minibatch B_{s+1} at theta_{s+1} (its gradient "
                          "is the training gradient of step s+1, reused); it would be an unbiased stochastic estimate "
                          "of the whole-training-set probe loss and its input gradient (not of the L1 norm) under "
                          "independent sampling, but epochs sample without replacement: B_{s+1} is drawn from the "
                          "examples the epoch has not visited yet and excludes B_s, so the self term of x_i in "
                          "L_{s+1} is absent; the last step of training has no next batch and uses the fixed probe")
        return {self.name: {
            "mode": f"PROXY: truncated to the last {self.horizon} update(s)"
                    + (" (one-step influence surrogate)" if self.horizon == 1 else ""),
            "horizon": self.horizon, "probe": self.probe_mode,
            "probe_size": int(len(self.probe)), "include_direct": self.include_direct,
            **({"steps_with_fixed_probe": int(self.last_step_fixed)} if self.probe_mode == "next-batch" else {}),
            "normalisation": "sum over steps t of ||dL_t/dx||_1 divided by T, the number of SGD steps; "
                             "0 at steps whose horizon does not contain x",
            "approximations": approx}}

    def state_dict(self):
        out = {"total": self.total, "steps": self.steps, "win_len": np.asarray(len(self.window)),
               "last_step_fixed": self.last_step_fixed}
        for j, (th, bufs, b, lr) in enumerate(self.window):
            out[f"w{j}.idx"], out[f"w{j}.lr"] = b.cpu().numpy(), np.asarray(lr)
            out.update({f"w{j}.t.{k}": v.detach().cpu().numpy() for k, v in th.items()})
            out.update({f"w{j}.b.{k}": v.detach().cpu().numpy() for k, v in (bufs or {}).items()})
        return out

    def load_state_dict(self, state):
        def scalar(v):  # a checkpoint stores 0-d arrays as shape (1,)
            return np.asarray(v).reshape(()).copy()

        self.total, self.steps = state["total"].copy(), scalar(state["steps"])
        self.last_step_fixed = scalar(state.get("last_step_fixed", 0))
        self.window.clear()
        dev = self.pidx.device if hasattr(self, "pidx") else "cpu"
        for j in range(int(scalar(state["win_len"]))):
            th = {k[len(f"w{j}.t."):]: torch.as_tensor(v, device=dev) for k, v in state.items()
                  if k.startswith(f"w{j}.t.")}
            bufs = {k[len(f"w{j}.b."):]: torch.as_tensor(v, device=dev) for k, v in state.items()
                    if k.startswith(f"w{j}.b.")} or None
            self.window.append((th, bufs, torch.as_tensor(state[f"w{j}.idx"], device=dev),
                                float(scalar(state[f"w{j}.lr"]))))


