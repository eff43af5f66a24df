"""Exact mode, the probe set and the refusals of loss sensitivity (the formula: the package docstring).

Choices of ours, shared by every estimator of the package:

- **Probe set** P: all training examples when N ≤ ``probe_size`` (2048), else a class-stratified sample (seed 0);
  L_t is the mean cross-entropy of P at θ_t (:func:`probe_loss`: BatchNorm normalises with the probe's own batch
  statistics — train mode, so running statistics never enter — and Dropout is off, so L_t is a deterministic
  function of θ_t; the paper's networks have neither layer). The probe inputs are constants unless
  ``include_direct``.
- **Normalisation**: divide by T, the number of optimizer steps.
- **What is replayed** (:mod:`~.replay`): the run's own updates — SGD (momentum, Nesterov, dampening, weight
  decay), Adam, AdamW (:mod:`~.optim`), gradient clipping by norm when the loop clips, BatchNorm in train mode
  (the examples of a batch are coupled through its statistics, and ∂L_t/∂x contains that coupling), Dropout
  (each step's masks from the recorded RNG state), the built-in crop-flip augmentation (∂/∂ of the stored,
  un-augmented x), per-example loss weights and any lr schedule. The replay's difference from the trained
  weights is stored in ``meta.json`` and reported as a warning above a relative 1e-4, naming the tensor.

**Exact mode** (``--probe-times all``) is the reverse sweep of :mod:`~.sampled` at every step (K = T), under the
memory plan. :func:`unrolled_sensitivity_of` (:class:`ExactSensitivityHook`) computes the same quantity by brute
force — the whole run unrolled forward with the inputs as one leaf, ∂L_t/∂X by autograd after each step — and is
the reference the tests and ``benchmarks/unrolled_accuracy`` hold the sweep to.

The truncated proxies (``loss_sensitivity_hH``, :mod:`~.proxy`) replay plain SGD on models without BatchNorm or
Dropout only (:func:`check_unrollable`).
"""

from __future__ import annotations

import dataclasses
import warnings

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from sensprune.errors import ValidationError
from sensprune.measures.loss_sensitivity import optim
from sensprune.measures.loss_sensitivity.replay import Recipe, StepRecord, module_modes, replay_drift, run_step
from sensprune.train.hooks import Hook, Run, StepInfo
from sensprune.train.loop import batch_loss
from sensprune.train.sources import ArraySource

#: relative difference between replayed and trained weights above which the replay is reported as drifting
DRIFT_WARN = 1e-4


def stratified_probe(y: np.ndarray, size: int, seed: int = 0) -> np.ndarray:
    """Sorted indices (≤ size,) of a class-stratified random sample of ``y`` (all of it if N ≤ size)."""
    y = np.asarray(y)
    if not isinstance(size, (int, np.integer)) or size < 1:
        raise ValidationError(f"--probe-size must be an integer >= 1; got {size!r}.")
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


def check_unrollable(model: nn.Module, optimizer: str, what: str = "loss_sensitivity_h1") -> None:
    """The truncated PROXY (:mod:`~.proxy`) replays plain SGD on models without BatchNorm or Dropout only; the
    full-horizon measure replays all of them (:mod:`~.replay`)."""
    for name, m in model.named_modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            raise ValidationError(f"{what} (a proxy) unrolls SGD per example, but layer {name!r} is "
                                  f"{type(m).__name__}; use the full-horizon --measures loss_sensitivity, "
                                  "which replays BatchNorm.")
        if isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0:
            raise ValidationError(f"{what} (a proxy) replays training deterministically, but layer {name!r} is "
                                  "Dropout; use the full-horizon --measures loss_sensitivity, which replays "
                                  "Dropout, or --dropout 0.")
    if optimizer != "sgd":
        raise ValidationError(f"{what} (a proxy) unrolls SGD updates; --optimizer {optimizer} is replayed by the "
                              "full-horizon --measures loss_sensitivity only.")


def check_replayable(optimizer: str, what: str = "loss_sensitivity") -> None:
    """The full-horizon measure replays ``torch.optim.SGD``, ``Adam`` and ``AdamW`` (:mod:`~.optim`)."""
    if optimizer not in optim.SUPPORTED:
        raise ValidationError(f"{what} replays torch.optim.SGD, Adam and AdamW; got --optimizer {optimizer}.")


def params_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of the trainable parameters, by name."""
    return {k: p.detach().clone() for k, p in model.named_parameters() if p.requires_grad}


def buffers_of(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached copies of the model's buffers (BatchNorm running statistics), by name."""
    return {k: b.detach().clone() for k, b in model.named_buffers()}


def sgd_step(model, params, bufs, xb, yb, lr, momentum=0.0, weight_decay=0.0, create_graph=True, wb=None):
    """One functional step of ``torch.optim.SGD`` on the batch loss (:func:`sensprune.train.loop.batch_loss`),
    for the truncated proxy: ``(new_params, new_bufs)`` (``new_bufs`` None without momentum; ``bufs`` None
    before the first step). The update itself is :func:`~.optim.step`."""
    names = list(params)
    loss = batch_loss(F.cross_entropy(functional_call(model, params, (xb,)), yb, reduction="none"), wb)
    grads = torch.autograd.grad(loss, [params[k] for k in names], create_graph=create_graph)
    spec = optim.GroupSpec("sgd", momentum=momentum, weight_decay=weight_decay)
    state = {"buf": bufs} if (momentum and bufs is not None) else {}
    new_p, new_s = optim.step(params, dict(zip(names, grads)), state, 1 if bufs is None else 2,
                              dict.fromkeys(names, lr), dict.fromkeys(names, spec))
    return new_p, (new_s["buf"] if momentum else None)


def probe_loss(model: nn.Module, theta: dict, buffers: dict, xp: torch.Tensor, yp: torch.Tensor,
               reduction: str = "mean") -> torch.Tensor:
    """The probe loss L_t at θ_t: cross-entropy of the probe set, BatchNorm on the probe's own batch statistics
    (train mode; running statistics never enter) and Dropout off — a deterministic function of θ_t (our choice:
    the paper's networks have neither layer)."""
    with module_modes(model, True, False):
        logits = functional_call(model, {**theta, **{k: v.clone() for k, v in buffers.items()}}, (xp,))
    return F.cross_entropy(logits, yp, reduction=reduction)


def unrolled_sensitivity_of(recipe: Recipe, start, records: list[StepRecord], *, probe=None,
                            include_direct: bool = False, per_step: bool = False, return_last_grad: bool = False):
    """Exact loss sensitivity by brute force: the whole run unrolled forward with the training inputs as one
    leaf, and ∂L_t/∂X by autograd after every step t (T backward passes through a growing graph: O(T²) compute,
    O(T) graph memory). The reference the reverse sweep (:mod:`~.sampled`) is tested against.

    ``start`` is (θ_0, optimizer state, buffers). Returns ḡ (N,) float64 — or (T, N) with ``per_step`` — and
    ∂L_T/∂X with ``return_last_grad``.
    """
    x, y = recipe.x, recipe.y
    X = x.detach().clone().requires_grad_(True)
    leaf_recipe = dataclasses.replace(recipe, x=X)
    theta, ost, bufs = start
    state = ({k: v.detach().clone().requires_grad_(True) for k, v in theta.items()}, ost, bufs)
    pidx = torch.arange(len(y), device=x.device) if probe is None else torch.as_tensor(probe, device=x.device)
    rows, g = [], None
    for t, rec in enumerate(records, start=1):
        state = run_step(leaf_recipe, state, t, rec, xb=X[torch.as_tensor(rec.idx, device=x.device)],
                         create_graph=True)
        xp = X[pidx] if include_direct else x[pidx]
        (g,) = torch.autograd.grad(probe_loss(recipe.model, state[0], state[2], xp, y[pidx]), X, retain_graph=True)
        rows.append(g.detach().abs().flatten(1).sum(1).double())
    steps = torch.stack(rows) if rows else torch.zeros((0, len(y)), dtype=torch.float64, device=x.device)
    out = steps.cpu().numpy() if per_step else (steps.sum(0) / max(len(records), 1)).cpu().numpy()
    if return_last_grad:
        return out, (torch.zeros_like(x) if g is None else g.detach())
    return out


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


class _ProbeMixin:
    def _setup(self, run: Run, proxy: bool = True) -> None:
        if not isinstance(run.train, ArraySource):
            raise ValidationError("loss_sensitivity needs the training set in memory (an array dataset).")
        if proxy:
            check_unrollable(run.model, run.config.optimizer)
        self.pidx = torch.as_tensor(self.probe, device=run.device)
        self.xp, self.yp = run.train.x[self.pidx], run.train.y[self.pidx]


def has_dropout(model: nn.Module) -> bool:
    """Whether a forward of ``model`` in train mode draws random numbers (a Dropout layer with p > 0)."""
    return any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in model.modules())


def augment_fn(name: str):
    """The built-in augmentation ``name`` as a function ``(x, seed) -> x'`` (None for ``"none"``)."""
    if name == "none":
        return None
    from sensprune.train.augment import augment

    return lambda x, seed: augment(name, x, seed)


class ExactSensitivityHook(_ProbeMixin, Hook):
    """Records what the replay needs while the run trains — θ_0, buffers and optimizer state, then per step the
    batch, learning rates, RNG state (dropout) and augmentation seed — and after the last epoch computes the
    exact measure by the brute-force unroll (:func:`unrolled_sensitivity_of`). The default estimator,
    :class:`~.sampled.SampledSensitivityHook`, records the same and computes by the reverse sweep.

    The same recorder serves the training loop (the Hook methods) and :class:`sensprune.Tracker` (``begin``,
    ``record``, ``finish``).
    """

    def __init__(self, n: int, probe: np.ndarray, include_direct: bool = False):
        self.probe, self.include_direct = np.asarray(probe), include_direct
        self.value = np.full(n, np.nan)
        self.idx, self.sizes, self.lrs, self.rngs, self.aug_seeds = [], [], [], [], []
        self.theta0: dict[str, np.ndarray] = {}
        self.buffers0: dict[str, np.ndarray] = {}
        self.state0: dict[str, np.ndarray] = {}
        self.t0 = 0
        self.replay_error = float("nan")
        self.replay_rel_error = float("nan")
        self.replay_blame = ""
        self.needs_rng_state = False
        self.augment = "none"

    # -- recording ------------------------------------------------------------------------------------------
    def begin(self, model: nn.Module, optimizer, x: torch.Tensor, y: torch.Tensor, *, weights=None,
              augment=None, clip_norm: float | None = None) -> None:
        """Before the first step: θ_0, buffers and optimizer state of ``model``/``optimizer``; the training set
        ``x`` (N, ...), ``y`` (N,) in index order on the model's device."""
        self.model, self.x, self.y, self.weights = model, x, y, weights
        self.augment_fn, self.clip_norm = augment, clip_norm
        self.specs = optim.specs_from_optimizer(optimizer)
        params = [(k, p) for k, p in model.named_parameters() if p.requires_grad]
        self.names = [k for k, _ in params]
        group_of = {id(p): g for g, grp in enumerate(optimizer.param_groups) for p in grp["params"]}
        missing = [k for k, p in params if id(p) not in group_of]
        if missing:
            raise ValidationError(f"loss_sensitivity replays every trainable parameter, but {missing[0]!r} is not "
                                  "in the optimizer; freeze it (requires_grad=False) or give it to the optimizer.")
        self.groups = [group_of[id(p)] for _, p in params]
        self.n_groups = len(optimizer.param_groups)
        self.pidx = torch.as_tensor(self.probe, device=x.device)
        self.xp, self.yp = x[self.pidx], y[self.pidx]
        self.needs_rng_state = has_dropout(model)
        if self.idx:  # resumed: θ_0 and the records come from the checkpoint
            return
        self.theta0 = {k: v.cpu().numpy() for k, v in params_of(model).items()}
        self.buffers0 = {k: v.cpu().numpy() for k, v in buffers_of(model).items()}
        state, self.t0 = optim.state_from_optimizer(optimizer, {p: k for k, p in params})
        self.state0 = {f"{key}.{k}": v.cpu().numpy() for key, d in state.items() for k, v in d.items()}

    def record(self, idx, lrs, rng=None, aug_seed=None) -> None:
        """One optimizer step: batch indices (B,), lr per param group, RNG state before the forward, seed."""
        self.idx.append(idx.cpu().numpy() if torch.is_tensor(idx) else np.asarray(idx, np.int64))
        self.sizes.append(len(self.idx[-1]))
        self.lrs.append(tuple(float(v) for v in lrs))
        self.rngs.append(rng if self.needs_rng_state else None)
        self.aug_seeds.append(aug_seed)

    def replay_inputs(self) -> tuple[Recipe, tuple, list[StepRecord]]:
        """What was recorded, as the replay takes it: the recipe, the start state (θ_0, optimizer state, buffers)
        on the training set's device, and one :class:`~.replay.StepRecord` per step so far."""
        dev = self.x.device
        recipe = Recipe(self.model, self.x, self.y, self.weights, self.names, self.groups, self.specs,
                        self.clip_norm, self.augment_fn, self.t0)
        theta0 = {k: torch.as_tensor(self.theta0[k], device=dev) for k in self.names}
        bufs0 = {k: torch.as_tensor(v, device=dev) for k, v in self.buffers0.items()}
        ost0 = optim.init_state(recipe.spec_of, theta0)
        for key, v in self.state0.items():
            group, _, name = key.partition(".")
            ost0.setdefault(group, {})[name] = torch.as_tensor(v, device=dev)
        records = [StepRecord(i, lr, r, a) for i, lr, r, a in zip(self.idx, self.lrs, self.rngs, self.aug_seeds)]
        return recipe, (theta0, ost0, bufs0), records

    def finish(self, model: nn.Module) -> None:
        """After the last step: replay, compare with the trained ``model``, compute the measure."""
        self._compute(*self.replay_inputs(), model)

    def _check_drift(self, final, model) -> None:
        self.replay_error, self.replay_rel_error, self.replay_blame = replay_drift(final, model)
        if self.replay_rel_error > DRIFT_WARN:
            warnings.warn(f"loss_sensitivity: the replayed weights differ from the trained ones by a relative "
                          f"{self.replay_rel_error:.1e} (> {DRIFT_WARN:g}), most at {self.replay_blame!r}: a layer "
                          "or step the replay does not reproduce (see meta.json).", RuntimeWarning, stacklevel=2)

    def _compute(self, recipe: Recipe, start, records: list[StepRecord], model: nn.Module) -> None:
        state = start
        for t, rec in enumerate(records, start=1):
            state = run_step(recipe, state, t, rec)
        self._check_drift(state, model)
        self.value = unrolled_sensitivity_of(recipe, start, records, probe=self.probe,
                                             include_direct=self.include_direct)

    # -- the training loop's Hook methods ---------------------------------------------------------------------
    def on_train_begin(self, run: Run) -> None:
        self._setup(run, proxy=False)
        self.augment = run.config.augment
        self.begin(run.model, run.optimizer, run.train.x, run.train.y, weights=getattr(run, "weights", None),
                   augment=augment_fn(run.config.augment))

    def on_step(self, step: StepInfo, run: Run) -> None:
        self.record(step.idx, [g["lr"] for g in run.optimizer.param_groups], step.rng_state, step.aug_seed)

    def on_epoch_end(self, epoch: int, run: Run) -> None:
        if epoch + 1 == run.config.epochs:
            self.finish(run.model)

    def values(self) -> dict[str, np.ndarray]:
        return {"loss_sensitivity": self.value}

    def _replay_meta(self) -> dict:
        return {"replay_max_abs_param_diff": self.replay_error, "replay_max_rel_param_diff": self.replay_rel_error,
                "replay_worst_tensor": self.replay_blame,
                "optimizer": [s.to_dict() for s in getattr(self, "specs", [])], "augment": self.augment,
                "dropout_masks_replayed": bool(self.needs_rng_state)}

    def meta(self) -> dict:
        return {"loss_sensitivity": {
            "mode": "exact (horizon all, brute-force unroll)", "probe_size": int(len(self.probe)),
            "include_direct": self.include_direct,
            "normalisation": "sum over all T optimizer steps of ||dL_t/dx||_1 divided by T", **self._replay_meta(),
            "approximations": ["none: functional replay of the same trajectory (float32 rounding)"]}}

    # -- checkpoints ------------------------------------------------------------------------------------------
    def state_dict(self):
        rng_rows = [i for i, r in enumerate(self.rngs) if r is not None]
        out = {"value": self.value, "idx": np.concatenate(self.idx) if self.idx else np.zeros(0, np.int64),
               "sizes": np.asarray(self.sizes, np.int64),
               "lrs": np.asarray(self.lrs, np.float64).reshape(len(self.lrs), -1),
               "aug_seeds": np.asarray([-1 if a is None else a for a in self.aug_seeds], np.int64),
               "rng_rows": np.asarray(rng_rows, np.int64),
               "rng_cpu": (np.stack([self.rngs[i][0].numpy() for i in rng_rows]) if rng_rows
                           else np.zeros((0, 0), np.uint8)),
               "t0": np.asarray(self.t0, np.int64),
               **{f"theta0.{k}": v for k, v in self.theta0.items()},
               **{f"buffers0.{k}": v for k, v in self.buffers0.items()},
               **{f"state0.{k}": v for k, v in self.state0.items()}}
        if rng_rows and self.rngs[rng_rows[0]][1] is not None:
            out["rng_cuda"] = np.stack([self.rngs[i][1].cpu().numpy() for i in rng_rows])
        return out

    def load_state_dict(self, state):
        self.value = state["value"].copy()
        sizes = state["sizes"]
        self.idx = list(np.split(state["idx"], np.cumsum(sizes)[:-1])) if len(sizes) else []
        self.sizes = sizes.tolist()
        self.lrs = [tuple(r) for r in np.asarray(state["lrs"], np.float64).reshape(len(sizes), -1).tolist()]
        seeds = state.get("aug_seeds", np.full(len(sizes), -1))
        self.aug_seeds = [None if s < 0 else int(s) for s in np.asarray(seeds).tolist()]
        self.rngs = [None] * len(sizes)
        cuda = state.get("rng_cuda")
        for j, i in enumerate(np.asarray(state.get("rng_rows", np.zeros(0, np.int64))).tolist()):
            self.rngs[i] = (torch.as_tensor(state["rng_cpu"][j].copy()),
                            None if cuda is None else torch.as_tensor(cuda[j].copy()))
        self.t0 = int(state.get("t0", 0))
        for prefix in ("theta0", "buffers0", "state0"):
            setattr(self, prefix, {k[len(prefix) + 1:]: v.copy() for k, v in state.items()
                                   if k.startswith(prefix + ".")})
