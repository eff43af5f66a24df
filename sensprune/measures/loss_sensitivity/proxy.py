"""Truncated loss sensitivity (docs/measures.md §1, truncated mode): a fast proxy, not the paper's measure.

Only the last H updates before each step t carry the dependence of L_t on x (Arpit et al., ICML 2017,
§3.2 back-propagates through *all* of them; see :mod:`sensprune.measures.loss_sensitivity.exact` for the full-horizon
estimator). For H = 1, ∂L_{s+1}/∂x_i = −η_s·∇_{x_i}[∇_θ L_B(θ_s)·v], v = ∇_θ L(θ_{s+1}): a one-step
influence surrogate. Its ranking agrees with the paper's measure only at Spearman 0.5–0.7 on digits
(``benchmarks/unrolled_accuracy/results.txt``). The probe modes and the next-batch caveats are described in
the docstring of :class:`LossSensitivityHook`.
"""

from __future__ import annotations

import weakref
from collections import deque
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from sensprune.errors import ValidationError
from sensprune.measures.buffers import StepBuffer
from sensprune.measures.loss_sensitivity.proxy_mlp import mlp_h1, mlp_probe_grad
from sensprune.measures.loss_sensitivity.exact import _ProbeMixin, sgd_step
from sensprune.train.hooks import Hook, Run, StepInfo
from sensprune.train.loop import batch_loss


class WindowStep(NamedTuple):
    """One SGD step s held in the horizon window: the parameters θ_s it started from, the optimizer's momentum
    buffers at θ_s (None without momentum, or at horizon 1), its batch B_s (indices) and its learning rate η_s."""

    theta: dict[str, torch.Tensor]
    bufs: dict[str, torch.Tensor] | None
    idx: torch.Tensor
    lr: float


def _trainable(model: nn.Module) -> list[torch.Tensor]:
    return [p for p in model.parameters() if p.requires_grad]


def h1_input_grads(model: nn.Module, theta_s: list[torch.Tensor], xb: torch.Tensor, yb: torch.Tensor,
                   vs: list, lr: float, wb: torch.Tensor | None = None) -> list[torch.Tensor]:
    """−η·∇_{x_i}[∇_θ L_B(θ_s)·v] for every row x_i of ``xb`` and every v in ``vs``: a list of (B, ...) tensors.

    The one implementation of the horizon-1 double backward (Arpit et al., ICML 2017, §3.2, truncated to
    one update; used by :class:`LossSensitivityHook` and the per-class matrix). ``theta_s`` lists values
    for ``model``'s trainable parameters (in ``parameters()`` order); L_B is the loop's batch loss
    (:func:`sensprune.train.loop.batch_loss`), with the sample weights ``wb`` of the batch if the run has them.
    Nothing is accumulated into ``.grad`` and the parameters are left as they were.

    For the built-in ``mlp`` (exactly :class:`~sensprune.train.models.MLP`) the same quantity is computed in
    closed form, forward-over-reverse without autograd (:func:`~.proxy_mlp.mlp_h1`; float
    rounding only): with one torch thread, a batch of 128 and one v it takes 0.93 ms instead of 1.63 ms on
    digits (MLP 64-256-128-10) and 0.18–0.23 ms instead of 0.70 ms in the paper setting (196-16-16-10; the
    second figure with the applicability checks), and the forward pass is shared by the v's. It falls back to
    the autograd path (:func:`_h1_input_grads_autograd`) for every other model, a Dropout layer in train mode
    (it would draw a mask), frozen parameters, forward or backward hooks, autocast, a v with a missing part,
    and dtypes or devices that differ.
    """
    fast = mlp_h1(model, theta_s, xb, yb, vs, lr, wb)
    return fast if fast is not None else _h1_input_grads_autograd(model, theta_s, xb, yb, vs, lr, wb)


def _h1_input_grads_autograd(model: nn.Module, theta_s: list[torch.Tensor], xb: torch.Tensor, yb: torch.Tensor,
                             vs: list, lr: float, wb: torch.Tensor | None = None) -> list[torch.Tensor]:
    """:func:`h1_input_grads` with autograd (reverse-over-reverse), for any model.

    The model is evaluated at θ_s by pointing each parameter's data at it for the duration of the call
    (cheaper than ``functional_call`` on small models) and restored afterwards. ∇_θ L_B is taken once with
    ``create_graph``; each v is one vector-Jacobian product on that graph.
    """
    leaf = xb.detach().requires_grad_(True)
    params = _trainable(model)
    saved = [p.data for p in params]
    out = []
    try:
        # the backward passes run while the parameters point at θ_s: the graph saves the parameter
        # tensors themselves, so restoring them first would silently evaluate the second pass at θ_{s+1}
        for p, t in zip(params, theta_s):
            p.data = t
        lb = batch_loss(F.cross_entropy(model(leaf), yb, reduction="none"), wb)
        gth = torch.autograd.grad(lb, params, create_graph=True, allow_unused=True)
        for k, v in enumerate(vs):
            pairs = [(g, vi) for g, vi in zip(gth, v) if g is not None and g.requires_grad and vi is not None]
            gx = None
            if pairs:
                (gx,) = torch.autograd.grad([g for g, _ in pairs], leaf,
                                            grad_outputs=[vi.to(g.dtype) for g, vi in pairs], allow_unused=True,
                                            retain_graph=k < len(vs) - 1)
            out.append(torch.zeros_like(leaf) if gx is None else gx.mul_(-lr))
    finally:
        for p, t in zip(params, saved):
            p.data = t
    return out


def _l1_rows(g: torch.Tensor) -> torch.Tensor:
    return g.abs().flatten(1).sum(1)


class LossSensitivityHook(_ProbeMixin, Hook):
    """Truncated loss sensitivity (horizon H ≥ 1); ``values()[self.name]`` (``loss_sensitivity_hH``) is (N,).

    Cost of the default (fixed probe, H = 1, v at every step): per step one probe gradient v = ∇_θ L_P(θ_{s+1})
    and one double backward over the batch (Arpit et al., ICML 2017, §3.2, truncated to one update). For the
    built-in ``mlp`` both are closed forms (:mod:`~.proxy_mlp`, float rounding only), the batch
    is the one the loop already holds (``StepInfo.x``, not gathered again) and the trainable parameters are
    resolved once per model. Measured with one torch thread, whole 20-epoch warmup, process CPU time, min of
    5–9 runs interleaved with the previous version (the ranges are over repeated measurements on a shared
    2-core machine): paper setting (MLP 196-16-16-10, probe = all 1000) 0.66 ms of hook per step instead of
    1.22 ms, ratio to plain training 2.3–2.5 instead of 3.1–3.5; digits (64-256-128-10) with the probe = all
    1257, 7.0–8.1 instead of 7.7–9.0 (the probe gradient's matrix products dominate, the same as autograd's);
    probe 256, 3.2–3.4 instead of 3.6–4.0; probe 256 and ``probe_every`` 4, 2.7–2.9 instead of 2.8–3.0.
    """

    def __init__(self, n: int, probe: np.ndarray, horizon: int = 1, include_direct: bool = False,
                 probe_mode: str = "fixed", probe_every: int = 1, step_every: int = 1):
        self.probe, self.horizon, self.include_direct = np.asarray(probe), int(horizon), include_direct
        # probe_mode, probe_every, step_every: validated once, by sensprune.config.MeasureOptions
        self.probe_mode = probe_mode
        self.probe_every, self.step_every = int(probe_every), int(step_every)
        if self.probe_every > 1 and (self.horizon != 1 or self.probe_mode != "fixed" or include_direct):
            raise ValidationError("--probe-every applies to the fixed probe at horizon 1 without --include-direct "
                                  f"(got --horizon {horizon}, --probe {self.probe_mode}"
                                  f"{', --include-direct' if include_direct else ''}).")
        if self.step_every > 1 and (self.horizon != 1 or self.probe_mode != "fixed"):
            raise ValidationError("--step-every applies to the fixed probe at horizon 1 "
                                  f"(got --horizon {horizon}, --probe {self.probe_mode}).")
        if self.probe_mode == "next-batch" and self.horizon != 1:
            raise ValidationError(f"--probe next-batch works with --horizon 1 only (got --horizon {horizon}); "
                                  "use --probe fixed for longer horizons.")
        if self.probe_mode == "next-batch" and include_direct:
            raise ValidationError("--include-direct is not supported with --probe next-batch "
                                  "(use --probe fixed).")
        self.total = np.zeros(n, np.float64)
        self.steps = np.zeros((), np.int64)
        self.last_step_fixed = np.zeros((), np.int64)  # next-batch: steps that fell back to the fixed probe
        self.window: deque[WindowStep] = deque(maxlen=self.horizon)
        self.buffer = StepBuffer()  # per-step (ids, norms) on the device, folded into ``total`` once per epoch
        # --probe-every k: the probe gradient v of the last refresh, its age in steps, and the measured error
        # of reusing it (sums and maxima over the refreshes that replaced a stale v; see meta())
        self.v: list | None = None
        self.v_age = np.zeros((), np.int64)
        self.stale_err = np.zeros(5, np.float64)  # count, sum and max of rel. error of v, sum and max of contrib.
        # the trainable (name, parameter) pairs of the model they were read from (a weak reference), and the
        # StepInfo whose batch the pending window step holds (its x and y are then at hand)
        self._named: list[tuple[str, torch.Tensor]] = []
        self._of: weakref.ref | None = None
        self._at: StepInfo | None = None

    def on_train_begin(self, run: Run) -> None:
        self._setup(run)
        if self.probe_mode == "next-batch" and getattr(run.config, "amp", "none") == "fp16":
            raise ValidationError("--probe next-batch reads the training gradients, which --amp fp16 scales; "
                                  "use --probe fixed or --amp bf16.")
        self._of, self._at = None, None
        self._params(run)

    def _params(self, run: Run) -> list[tuple[str, torch.Tensor]]:
        """The model's trainable (name, parameter) pairs, ``named_parameters()`` order, read once per model: a
        run keeps its parameter tensors (the optimizer and a checkpoint resume update them in place), and the
        module walk behind ``named_parameters()`` cost more per step than the clones of θ_s."""
        if self._of is None or self._of() is not run.model:
            self._named = [(k, p) for k, p in run.model.named_parameters() if p.requires_grad]
            self._of = weakref.ref(run.model)
        return self._named

    def _add(self, idx: torch.Tensor, norms: torch.Tensor) -> None:
        self.buffer.append(idx, norms.double())
        self.steps += 1

    def _fold(self) -> None:
        for idx, norms in self.buffer.drain():  # groups free of repeated indices
            self.total[idx] += norms.cpu().numpy()

    @staticmethod
    def _weights(run: Run, b: torch.Tensor):
        w = getattr(run, "weights", None)
        return None if w is None else w[b]

    def _h1(self, run: Run, vs: list, step: StepInfo | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The pending (θ_s, B_s): B_s and −η·∇_x[∇_θ L_B(θ_s)·v] for each v in ``vs``. When ``step`` is the
        step whose ``on_step`` put it there, its batch ``step.x``, ``step.y`` (the very rows of the training set
        the loop read for B_s) is used instead of gathering them again."""
        theta_s, _, b, lr = self.window[-1]
        if step is not None and step is self._at:
            xb, yb = step.x, step.y
        else:
            xb, yb = run.train.x[b], run.train.y[b]
        return b, h1_input_grads(run.model, list(theta_s.values()), xb, yb, vs, lr, self._weights(run, b))

    def _next_batch_step(self, step: StepInfo, run: Run) -> None:
        # .grad now holds v = ∇_θ L_{B_{s+1}}(θ_{s+1}) (the batch loss the loop trains on; no weight decay)
        if self.window:
            b, (gx,) = self._h1(run, [[p.grad for _, p in self._params(run)]])
            self._add(b, _l1_rows(gx))
        self.window.append(WindowStep(self._theta(run), None, step.idx.clone(), float(step.lr)))

    def _theta(self, run: Run) -> dict[str, torch.Tensor]:
        """Detached copies of the trainable parameters, by name (``params_of`` without the module walk)."""
        return {k: p.detach().clone() for k, p in self._params(run)}

    def _probe_grad(self, run: Run, direct: bool = False):
        """v = ∇_θ L_P(θ_{s+1}) (and ∇_{x_p} L_P for the probe inputs when ``direct``); the model is at θ_{s+1}.

        Without ``direct``, for the built-in ``mlp`` v is computed in closed form, one forward pass and the
        textbook backward (:func:`~.proxy_mlp.mlp_probe_grad`; the same quantity, float rounding
        only, in ``parameters()`` order like autograd's): with one torch thread, 0.35 ms instead of 0.69–0.73 ms
        in the paper setting (196-16-16-10, 1000 probe examples; autograd's cross-entropy over 10 classes alone
        takes 0.15 ms there, its softmax runs over the short last dimension), 4.1 ms instead of 4.7 ms on digits
        (64-256-128-10, 1257 examples: matrix products, the same as autograd's). Every case where
        :func:`~.proxy_mlp.mlp_h1` falls back (other models, Dropout in train mode, frozen
        parameters, hooks, autocast, other dtypes) and ``direct`` keep autograd.
        """
        params = [p for _, p in self._params(run)]
        if not direct:
            fast = mlp_probe_grad(run.model, params, self.xp, self.yp)
            if fast is not None:
                return fast, None
        xp = self.xp.detach().requires_grad_(True) if direct else self.xp
        lp = F.cross_entropy(run.model(xp), self.yp)
        grads = torch.autograd.grad(lp, params + ([xp] if direct else []), allow_unused=True)
        return (list(grads[:-1]), grads[-1]) if direct else (list(grads), None)

    def _fixed_probe_h1(self, run: Run, step: StepInfo | None = None) -> None:
        """H = 1 with the fixed probe for the pending (θ_s, B_s); the model is at θ_{s+1}.

        With ``probe_every`` k > 1 (an approximation, named in meta()), v is recomputed at every k-th step
        only and reused in between; at each refresh the stale v is compared with the fresh one, on v itself
        and on this step's contributions, which is the error of the oldest (k steps stale) reuse.
        """
        if self.include_direct:
            v, gp = self._probe_grad(run, direct=True)
            b, (gx,) = self._h1(run, [v], step)
            ids = torch.unique(torch.cat([b, self.pidx]))
            g = torch.zeros((len(ids), *gx.shape[1:]), dtype=gx.dtype, device=gx.device)
            g.index_add_(0, torch.searchsorted(ids, b), gx)
            g.index_add_(0, torch.searchsorted(ids, self.pidx), gp.to(gx.dtype))
            self._add(ids, _l1_rows(g))
            return
        if self.v is not None and int(self.v_age) < self.probe_every:
            b, (gx,) = self._h1(run, [self.v], step)
            self.v_age += 1
        else:
            fresh, _ = self._probe_grad(run)
            if self.v is None:
                b, (gx,) = self._h1(run, [fresh], step)
            else:
                b, (old, gx) = self._h1(run, [self.v, fresh], step)
                self._record_staleness(fresh, _l1_rows(old), _l1_rows(gx))
            self.v = fresh if self.probe_every > 1 else None
            self.v_age = np.ones((), np.int64)
        self._add(b, _l1_rows(gx))

    def _record_staleness(self, fresh: list, old_norms: torch.Tensor, new_norms: torch.Tensor) -> None:
        num = sum(float((a - b).pow(2).sum()) for a, b in zip(fresh, self.v) if a is not None)
        den = sum(float(a.pow(2).sum()) for a in fresh if a is not None)
        ev = (num / den) ** 0.5 if den > 0 else 0.0
        ec = float((old_norms - new_norms).abs().sum() / new_norms.sum().clamp_min(1e-30))
        e = self.stale_err
        e[0] += 1
        e[1] += ev
        e[2] = max(e[2], ev)
        e[3] += ec
        e[4] = max(e[4], ec)

    def staleness(self) -> dict:
        """The measured error of ``probe_every`` (empty when k = 1): relative errors at the refreshes."""
        if self.probe_every == 1:
            return {}
        n, sv, mv, sc, mc = self.stale_err.tolist()
        return {"refreshes_compared": int(n),
                "v_rel_error_l2": {"mean": sv / n if n else None, "max": mv if n else None},
                "contribution_rel_error_l1": {"mean": sc / n if n else None, "max": mc if n else None}}

    def on_epoch_end(self, epoch: int, run: Run) -> None:
        if self.probe_mode == "next-batch" and epoch + 1 == run.config.epochs and self.window:
            self._fixed_probe_h1(run)  # the last step has no next batch
            self.last_step_fixed += 1
            self.window.clear()
        self._fold()

    def on_step(self, step: StepInfo, run: Run) -> None:
        if self.probe_mode == "next-batch":
            self._next_batch_step(step, run)
            return
        if step.step % self.step_every:  # --step-every s: only every s-th step is scored
            self.window.clear()
            self._at = None
            return
        opt = run.optimizer
        bufs = None
        if self.horizon > 1 and run.config.momentum:
            st = [opt.state.get(p, {}).get("momentum_buffer") for _, p in run.model.named_parameters()]
            if all(b is not None for b in st):
                bufs = {k: b.detach().clone() for (k, _), b in zip(run.model.named_parameters(), st)}
        self.window.append(WindowStep(self._theta(run), bufs, step.idx.clone(), float(step.lr)))
        self._at = step

    def after_step(self, step: StepInfo, run: Run) -> None:
        if self.probe_mode == "next-batch" or not self.window:
            return
        if self.horizon == 1:
            self._fixed_probe_h1(run, step)
            self._at = None  # the batch is not kept past its step
            return
        cfg, x = run.config, run.train.x
        idx = torch.cat([w.idx for w in self.window] + ([self.pidx] if self.include_direct else []))
        ids = torch.unique(idx)
        leaf = x[ids].clone().requires_grad_(True)
        xp = leaf[torch.searchsorted(ids, self.pidx)] if self.include_direct else self.xp
        theta, bufs = self.window[0].theta, self.window[0].bufs
        theta = {k: v.clone().requires_grad_(True) for k, v in theta.items()}
        for _, _, b, lr in self.window:
            theta, bufs = sgd_step(run.model, theta, bufs, leaf[torch.searchsorted(ids, b)],
                                   run.train.y[b], lr, cfg.momentum, cfg.weight_decay, wb=self._weights(run, b))
        lp = F.cross_entropy(functional_call(run.model, theta, (xp,)), self.yp)
        (gx,) = torch.autograd.grad(lp, leaf)
        self._add(ids, _l1_rows(gx))

    def values(self) -> dict[str, np.ndarray]:
        self._fold()
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
        if self.step_every > 1:
            approx.append(f"steps subsampled: only every {self.step_every}-th SGD step is scored and the value is the "
                          "mean over those steps, an unbiased estimate of the mean over all steps when the steps' "
                          f"batches are exchangeable; each example is scored at about 1/{self.step_every} of its "
                          "presentations (more variance)")
        if self.probe_every > 1:
            approx.append(f"probe gradient reused: v = grad L_P is recomputed at every {self.probe_every}-th step "
                          f"only and reused (up to {self.probe_every - 1} steps stale) in between; the measured "
                          "error of the stalest reuse is in probe_every_error")
        return {self.name: {
            "mode": f"PROXY: truncated to the last {self.horizon} update(s)"
                    + (" (one-step influence surrogate)" if self.horizon == 1 else ""),
            "horizon": self.horizon, "probe": self.probe_mode,
            "probe_size": int(len(self.probe)), "include_direct": self.include_direct,
            **({"steps_with_fixed_probe": int(self.last_step_fixed)} if self.probe_mode == "next-batch" else {}),
            "probe_every": self.probe_every, "step_every": self.step_every,
            **({"probe_every_error": self.staleness()} if self.probe_every > 1 else {}),
            "normalisation": "sum over steps t of ||dL_t/dx||_1 divided by T, the number of SGD steps; "
                             "0 at steps whose horizon does not contain x",
            "approximations": approx}}

    def state_dict(self):
        self._fold()
        out = {"total": self.total, "steps": self.steps, "win_len": np.asarray(len(self.window)),
               "last_step_fixed": self.last_step_fixed, "v_age": self.v_age, "stale_err": self.stale_err}
        if self.v is not None:
            out["v_len"] = np.asarray(len(self.v))
            out.update({f"v.{j}": vi.detach().cpu().numpy() for j, vi in enumerate(self.v) if vi is not None})
        for j, (th, bufs, b, lr) in enumerate(self.window):
            out[f"w{j}.idx"], out[f"w{j}.lr"] = b.cpu().numpy(), np.asarray(lr)
            out.update({f"w{j}.t.{k}": v.detach().cpu().numpy() for k, v in th.items()})
            out.update({f"w{j}.b.{k}": v.detach().cpu().numpy() for k, v in (bufs or {}).items()})
        return out

    def load_state_dict(self, state):
        def scalar(v):  # a checkpoint stores 0-d arrays as shape (1,)
            return np.asarray(v).reshape(()).copy()

        self.buffer = StepBuffer()
        self.total, self.steps = state["total"].copy(), scalar(state["steps"])
        self.last_step_fixed = scalar(state.get("last_step_fixed", 0))
        self.v_age = scalar(state.get("v_age", 0))
        self.stale_err = np.asarray(state.get("stale_err", np.zeros(5)), np.float64).reshape(5).copy()
        vdev = self.pidx.device if hasattr(self, "pidx") else "cpu"
        n_v = int(scalar(state.get("v_len", 0)))
        self.v = [torch.as_tensor(state[f"v.{j}"], device=vdev) if f"v.{j}" in state else None
                  for j in range(n_v)] if n_v else None
        self.window.clear()
        self._at = None
        dev = self.pidx.device if hasattr(self, "pidx") else "cpu"
        for j in range(int(scalar(state["win_len"]))):
            th = {k[len(f"w{j}.t."):]: torch.as_tensor(v, device=dev) for k, v in state.items()
                  if k.startswith(f"w{j}.t.")}
            bufs = {k[len(f"w{j}.b."):]: torch.as_tensor(v, device=dev) for k, v in state.items()
                    if k.startswith(f"w{j}.b.")} or None
            self.window.append(WindowStep(th, bufs, torch.as_tensor(state[f"w{j}.idx"], device=dev),
                                          float(scalar(state[f"w{j}.lr"]))))
