"""Loss sensitivity ḡ_x through the SGD updates (Arpit et al., ICML 2017, §3.2; MEASURES §1).

g_x^t = ‖∂L_t/∂x‖₁ where L_t is the mean cross-entropy of a fixed *probe set* P at θ_t (choice of
ours: P = all training examples when N ≤ ``probe_size``, else a stratified sample, seed 0) and x
influences L_t only through the parameter updates it took part in. ḡ_x = (1/T) Σ_{t=1..T} g_x^t.

- **Exact** (``horizon="all"``, :func:`unrolled_sensitivity`, :class:`ExactSensitivityHook`):
  functional SGD (``torch.func.functional_call``) replays the whole run with the training inputs as
  one leaf tensor, and ``∂L_t/∂X`` is taken by autograd right after each step t (T backward passes,
  O(T²) compute, O(T) memory). Contributions of several presentations add up before the norm.
- **Truncated** (``horizon=H``, :class:`LossSensitivityHook`): only the last H updates before t
  carry the dependence; for H = 1, ∂L_{s+1}/∂x_i = −η_s·∇_{x_i}[∇_θ L_B(θ_s)·v], v = ∇_θ L(θ_{s+1}),
  one double-backward over the batch. The momentum buffer and weight decay entering the window are
  constants (they do not depend on the window's inputs); later momentum carry-over is ignored.
- **Next-batch probe** (``probe_mode="next-batch"``, H = 1 only; choice of ours, not the default):
  L_{s+1} is the mean loss of the *next training minibatch* B_{s+1} at θ_{s+1} instead of the fixed
  probe. Its gradient v is the gradient the training loop computes anyway at step s+1 (the
  parameters' ``.grad`` in ``on_step``), so the probe forward+backward disappears; the hook keeps θ_s
  and B_s for one step and does the double backward at step s+1. If B_{s+1} were drawn independently
  of the trajectory (uniform, with replacement), L_{B_{s+1}}, v and — v enters linearly —
  ∂L_{s+1}/∂x_i would be unbiased stochastic estimates of those of the whole-training-set probe
  (P = all N, the default when N ≤ ``probe_size``). Caveat: the loop samples epochs *without*
  replacement, so given the trajectory B_{s+1} is a uniform draw of the examples the epoch has not
  visited yet: the estimate is unbiased for the mean loss over those, not over all N; in particular
  x_i ∈ B_s is not in B_{s+1} (except across an epoch boundary), so the self term
  ∇ℓ(θ_{s+1}; x_i)·∂θ_{s+1}/∂x_i that the fixed probe contains is absent. The L1 norm of a noisy
  estimate is biased upwards in any case. With per-example weights L_{s+1} is the weighted batch loss the loop
  trains on; weight decay is not part of L_{s+1}. The last step of training has no next batch: it
  uses the fixed probe (one step in T). Cost: no probe pass, one forward at θ_s with a create_graph
  gradient and one double backward per step.

Normalisation (choice of ours, the same in both modes): divide by T, the number of SGD steps; an
example outside every horizon of step t contributes 0 at t. Supported: plain SGD or SGD with
(heavy-ball, non-Nesterov) momentum, weight decay, any lr schedule; models without BatchNorm or
Dropout (refused: they make the replay differ from training).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from sensprune.errors import ValidationError
from sensprune.train.hooks import Hook, Run, StepInfo
from sensprune.train.sources import ArraySource

DEFAULT_PROBE_SIZE = 2048


def parse_count_or_all(value, flag: str) -> int | str:
    """``"all"`` or a positive integer (also given as a string) for the option ``flag``; else a ValidationError."""
    if isinstance(value, str) and value.strip().lower() == "all":
        return "all"
    try:
        h = int(str(value).strip())
        ok = str(h) == str(value).strip() and h >= 1
    except ValueError:
        ok = False
    if not ok:
        raise ValidationError(f"{flag} must be a positive integer or 'all'. Got {value!r} instead.")
    return h


def parse_horizon(value) -> int | str:
    """``"all"`` or a positive integer (also given as a string); anything else is a ValidationError."""
    return parse_count_or_all(value, "--horizon")


def stratified_probe(y: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Sorted indices (≤ size,) of a class-stratified random sample of ``y`` (all of it if N ≤ size)."""
    y = np.asarray(y)
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValidationError(f"--probe-size must be an integer >= 1. Got {size!r} instead.")
    if len(y) <= size:
        return np.arange(len(y))
    rng = np.random.RandomState(seed)
    classes, counts = np.unique(y, return_counts=True)
    quota = np.floor(counts * size / len(y)).astype(int)
    rest = rng.choice(len(classes), size - quota.sum(), replace=False, p=counts / counts.sum())
    quota[rest] += 1
    picks = [rng.choice(np.flatnonzero(y == c), min(q, n), replace=False)
             for c, q, n in zip(classes, quota, counts)]
    return np.sort(np.concatenate(picks))


def check_unrollable(model: nn.Module, optimizer: str, what: str = "loss_sensitivity") -> None:
    """Refuse what the functional replay cannot reproduce exactly: BatchNorm, Dropout, Adam."""
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            raise ValidationError(f"{what} unrolls SGD per example, but layer {name!r} is {type(m).__name__}, "
                                  "which couples the examples of a batch; use a model without BatchNorm.")
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            raise ValidationError(f"{what} replays training deterministically, but layer {name!r} is "
                                  "Dropout; use --dropout 0.")
    if optimizer != "sgd":
        raise ValidationError(f"{what} unrolls SGD updates; --optimizer {optimizer} is not supported "
                              "(use --optimizer sgd, with or without --momentum).")


def params_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of the trainable parameters, by name."""
    return {k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad}


def sgd_step(model, params, bufs, xb, yb, lr, momentum=0.0, weight_decay=0.0, create_graph=True, wb=None):
    """One functional step of ``torch.optim.SGD`` on the batch loss the training loop uses.

    L_B = mean_i ℓ_i, or Σ_i w_i·ℓ_i / |B| with per-example weights ``wb`` (B,) (as in
    :func:`sensprune.train.loop.train`); d = ∇L_B(θ) + wd·θ; buf = d on the first step (``bufs is None``)
    else μ·buf + d; θ ← θ − η·buf. Returns ``(new_params, new_bufs)`` (``new_bufs`` is None without momentum).
    """
    names = list(params)
    logits = functional_call(model, params, (xb,))
    if wb is None:
        loss = F.cross_entropy(logits, yb)
    else:
        loss = (F.cross_entropy(logits, yb, reduction="none") * wb.to(logits.dtype)).sum() / max(len(yb), 1)
    grads = torch.autograd.grad(loss, [params[k] for k in names], create_graph=create_graph)
    new_p, new_b = {}, {}
    for k, g in zip(names, grads):
        d = g + weight_decay * params[k] if weight_decay else g
        if momentum:
            d = d if bufs is None else momentum * bufs[k] + d
            new_b[k] = d
        new_p[k] = params[k] - lr * d
    return new_p, (new_b if momentum else None)


def unrolled_sensitivity(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batches, lrs, *,
                         params: dict | None = None, momentum: float = 0.0, weight_decay: float = 0.0,
                         probe: np.ndarray | None = None, include_direct: bool = False,
                         return_last_grad: bool = False, weights: torch.Tensor | None = None,
                         per_step: bool = False):
    """Exact loss sensitivity by back-propagating through the unrolled SGD run.

    Parameters
    ----------
    model : nn.Module
        Gives the architecture (``functional_call``); its parameters are θ_0 unless ``params`` is given.
    x : Tensor (N, ...), y : Tensor (N,)
        The training set; the dtype of ``x`` is used throughout (float64 for gradient checks).
    batches : sequence of index tensors (B_t,), lrs : sequence of float
        The minibatches and learning rates of steps t = 1..T, in training order.
    probe : ndarray of int, optional
        Indices of the probe set P (default all N). ``include_direct`` adds ∂ℓ(θ_t; x, y)/∂x, x ∈ P.
    weights : Tensor (N,), optional
        Per-example loss weights of the training run (see :func:`sgd_step`).
    per_step : bool
        Return the (T, N) matrix of g_x^t instead of its mean over t.

    Returns
    -------
    g : ndarray (N,) float64
        ḡ_x = (1/T) Σ_t ‖∂L_t/∂x‖₁; higher = more sensitive. (T, N) with ``per_step``.
    last_grad : Tensor (N, ...)
        ∂L_T/∂X, only with ``return_last_grad``.
    """
    theta = {k: v.detach().clone().to(x.dtype).requires_grad_(True)
             for k, v in (params or params_of(model)).items()}
    X = x.detach().clone().requires_grad_(True)
    probe_t = torch.arange(len(y), device=x.device) if probe is None else torch.as_tensor(probe, device=x.device)
    yp = y[probe_t]
    rows = []
    bufs, g = None, None
    for b, lr in zip(batches, lrs):
        b = torch.as_tensor(b, device=x.device)
        wb = None if weights is None else weights[b]
        theta, bufs = sgd_step(model, theta, bufs, X[b], y[b], float(lr), momentum, weight_decay, wb=wb)
        xp = X[probe_t] if include_direct else x[probe_t]
        loss = F.cross_entropy(functional_call(model, theta, (xp,)), yp)
        (g,) = torch.autograd.grad(loss, X, retain_graph=True)
        rows.append(g.detach().abs().flatten(1).sum(1).double())
    steps = torch.stack(rows) if rows else torch.zeros((0, len(y)), dtype=torch.float64, device=x.device)
    out = steps.cpu().numpy() if per_step else (steps.sum(0) / max(len(lrs), 1)).cpu().numpy()
    if return_last_grad:
        return out, (torch.zeros_like(x) if g is None else g.detach())
    return out


def replay_sgd(model, x, y, batches, lrs, *, params=None, momentum=0.0, weight_decay=0.0, weights=None,
               trajectory: list | None = None):
    """The parameters after replaying the SGD run functionally (no graph kept).

    With ``trajectory`` (a list), ``(θ_s, buf_s)`` for s = 0..T is appended to it (buf_0 = None).
    """
    theta = {k: v.detach().clone() for k, v in (params or params_of(model)).items()}
    bufs = None
    if trajectory is not None:
        trajectory.append((theta, None))
    for b, lr in zip(batches, lrs):
        theta = {k: v.requires_grad_(True) for k, v in theta.items()}
        wb = None if weights is None else weights[b]
        theta, bufs = sgd_step(model, theta, bufs, x[b], y[b], float(lr), momentum, weight_decay, False, wb=wb)
        theta = {k: v.detach() for k, v in theta.items()}
        bufs = None if bufs is None else {k: v.detach() for k, v in bufs.items()}
        if trajectory is not None:
            trajectory.append((theta, bufs))
    return theta


def estimate_exact_bytes(model: nn.Module, input_shape, n: int, batch_size: int, steps: int,
                         probe_size: int, elem_size: int = 4) -> int:
    """Rough peak memory of exact mode: per step ~6 parameter-sized and ~8 activation-sized tensors
    of the batch are kept in the graph, plus the probe pass and the input leaf."""
    n_params = sum(p.numel() for p in model.parameters())
    acts = [0]
    hooks = [m.register_forward_hook(lambda m, i, o: acts.__setitem__(0, acts[0] + o.numel()))
             for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad():
            model(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
    d = int(np.prod(input_shape))
    per_step = 6 * n_params + 8 * batch_size * (acts[0] + d)
    once = 4 * n * d + 4 * probe_size * (acts[0] + d)
    return int(elem_size * (steps * per_step + once))


def available_bytes(device: str = "cpu") -> int:
    """Free memory of the device: CUDA free memory, else MemAvailable of /proc/meminfo."""
    if str(device).startswith("cuda") and torch.cuda.is_available():
        return int(torch.cuda.mem_get_info()[0])
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2 ** 30


def check_exact_fits(model, input_shape, n, batch_size, steps, probe_size, device="cpu") -> int:
    need = estimate_exact_bytes(model, input_shape, n, batch_size, steps, probe_size)
    free = available_bytes(device)
    if need > 0.7 * free:
        raise ValidationError(f"loss_sensitivity exact mode (--probe-times all) needs about {need / 2 ** 30:.1f} GiB, "
                              f"this machine has {free / 2 ** 30:.1f} GiB free; use the sampled full-horizon "
                              "estimator (--probe-times K, the default) or fewer epochs.")
    return need


class _ProbeMixin:
    def _setup(self, run: Run) -> None:
        if not isinstance(run.train, ArraySource):
            raise ValidationError("loss_sensitivity needs the training set in memory (an array dataset).")
        check_unrollable(run.model, run.config.optimizer)
        self.pidx = torch.as_tensor(self.probe, device=run.device)
        self.xp, self.yp = run.train.x[self.pidx], run.train.y[self.pidx]


class ExactSensitivityHook(_ProbeMixin, Hook):
    """Exact loss sensitivity: records θ_0 and the batches, replays them after the last epoch."""

    def __init__(self, n: int, probe: np.ndarray, include_direct: bool = False):
        self.probe, self.include_direct = np.asarray(probe), include_direct
        self.value = np.full(n, np.nan)
        self.idx, self.sizes, self.lrs = [], [], []
        self.theta0: dict[str, np.ndarray] = {}
        self.replay_error = float("nan")

    def on_train_begin(self, run: Run) -> None:
        self._setup(run)
        self.theta0 = {k: v.cpu().numpy() for k, v in params_of(run.model).items()}

    def on_step(self, step: StepInfo, run: Run) -> None:
        self.idx.append(step.idx.cpu().numpy())
        self.sizes.append(len(step.idx))
        self.lrs.append(step.lr)

    def on_epoch_end(self, epoch: int, run: Run) -> None:
        if epoch + 1 != run.config.epochs:
            return
        cfg, dev = run.config, run.device
        theta0 = {k: torch.as_tensor(v, device=dev) for k, v in self.theta0.items()}
        batches = [torch.as_tensor(b, device=dev) for b in self.idx]
        kw = dict(params=theta0, momentum=cfg.momentum, weight_decay=cfg.weight_decay,
                  weights=getattr(run, "weights", None))
        self._compute(run, batches, kw)

    def _replay_error(self, final: dict, run: Run) -> float:
        return max(float((final[k] - p.detach()).abs().max()) for k, p in run.model.named_parameters())

    def _compute(self, run: Run, batches: list, kw: dict) -> None:
        final = replay_sgd(run.model, run.train.x, run.train.y, batches, self.lrs, **kw)
        self.replay_error = self._replay_error(final, run)
        self.value = unrolled_sensitivity(run.model, run.train.x, run.train.y, batches, self.lrs, **kw,
                                          probe=self.probe, include_direct=self.include_direct)

    def values(self) -> dict[str, np.ndarray]:
        return {"loss_sensitivity": self.value}

    def meta(self) -> dict:
        return {"loss_sensitivity": {
            "mode": "exact (horizon all)", "probe_size": int(len(self.probe)), "include_direct": self.include_direct,
            "normalisation": "sum over all T SGD steps of ||dL_t/dx||_1 divided by T",
            "replay_max_abs_param_diff": self.replay_error,
            "approximations": ["none: functional replay of the same SGD trajectory (float32 rounding)"]}}

    def state_dict(self):
        return {"value": self.value, "idx": np.concatenate(self.idx) if self.idx else np.zeros(0, np.int64),
                "sizes": np.asarray(self.sizes, np.int64), "lrs": np.asarray(self.lrs, np.float64),
                **{f"theta0.{k}": v for k, v in self.theta0.items()}}

    def load_state_dict(self, state):
        self.value = state["value"].copy()
        self.idx = list(np.split(state["idx"], np.cumsum(state["sizes"])[:-1])) if len(state["sizes"]) else []
        self.sizes, self.lrs = state["sizes"].tolist(), state["lrs"].tolist()
        self.theta0 = {k[len("theta0."):]: v.copy() for k, v in state.items() if k.startswith("theta0.")}
