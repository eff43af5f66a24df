"""Full-horizon loss sensitivity from sampled probe steps — the default ``loss_sensitivity`` (docs/measures.md §1).

The quantity is the mean over t of g_x^t (the formula: the package docstring). Computing g_x^t at all T steps
(exact mode) costs O(T²) step-backwards; this module estimates the same mean from K probe steps:

- **Sampling (choice of ours).** 1..T is cut into K contiguous strata of (near) equal size
  (``numpy.array_split``); one step t_k is drawn uniformly in each stratum S_k by
  ``numpy.random.default_rng([seed, 0x5E45])``; the estimate is ĝ_x = Σ_k (|S_k|/T)·g_x^{t_k}.
  E[ĝ_x] = Σ_k (|S_k|/T)·mean_{t∈S_k} g_x^t = ḡ_x: **unbiased**, and equal to exact mode when K = T.
  The steps, strata and seed are stored in ``meta.json``.
- **Each term is exact**: ∂L_{t_k}/∂X through the whole history 1..t_k (optimizer state, weight decay,
  the lr schedule, per-example loss weights, BatchNorm's batch coupling, dropout masks, augmentation), by
  reverse-mode differentiation of the replayed updates: the adjoint (λ_θ, λ_state) of (θ_s, optimizer state s)
  is carried from s = t_k down to 1, and at step s the vector-Jacobian product of one replayed update
  (:func:`~.replay.run_step`, double backward) with the stacked adjoints of all active probe steps gives the
  adjoints at s−1 and the contributions to ∂L_{t_k}/∂X for the rows of B_s, which add up over presentations
  before the L1 norm is taken.
- **Memory**: no graph is kept across steps. The trajectory (θ_s with the optimizer state and buffers, s = 0..T)
  is recomputed by a functional replay of the recorded steps from θ_0 (:class:`~.replay.Trajectory`; the replay's
  difference from the trained weights is stored); each reverse step rebuilds only the graph of step s. The memory
  plan (:mod:`~.plan`, ``--sensitivity-memory``) stores every state when they fit, else checkpoints every ⌈√T⌉
  steps and recomputes one segment at a time (the same values), and splits the A accumulators (N, d) of one sweep
  into several sweeps when they do not fit.
- **Cost**: one replay (T plain steps) plus Σ_k t_k ≤ K·T batched step-VJPs: O(K·T), linear in T.

The probe set and its loss are those of exact mode (inputs of the probe treated as constants unless
``include_direct``). Per-class sensitivity (docs/measures.md §3) uses the same sweep with one adjoint per
(probe step, probe class).
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from sensprune.progress import progress_bar

from sensprune.config import DEFAULT_PROBE_TIMES  # noqa: F401  (16, defined in config.py without torch)
from sensprune.config import parse_count_or_all
from sensprune.errors import ValidationError
from sensprune.measures.loss_sensitivity.exact import ExactSensitivityHook, available_bytes, probe_loss
from sensprune.measures.loss_sensitivity.plan import MemoryPlan, plan_memory, smallest_budget
from sensprune.measures.loss_sensitivity.replay import Recipe, Trajectory, module_modes, run_step
from sensprune.train.hooks import Run

#: default number of probe steps K: DEFAULT_PROBE_TIMES (chosen from benchmarks/unrolled_accuracy/results.txt)
SAMPLING_SALT = 0x5E45


def parse_probe_times(value) -> int | str:
    """``"all"`` or a positive integer K (also given as a string); anything else is a ValidationError."""
    k = parse_count_or_all(value, "--probe-times")
    if k is None:
        raise ValidationError("--probe-times must be a positive integer or 'all'; got None.")
    return k


def check_probe_times(k, steps: int) -> int:
    """K resolved against the T = ``steps`` SGD steps of the run (``all`` → T); K > T is refused."""
    k = parse_probe_times(k)
    if k == "all":
        return steps
    if k > steps:
        raise ValidationError(f"--probe-times {k} is larger than the number of SGD steps of the warmup ({steps}); "
                              f"use --probe-times {steps} (= all) or fewer.")
    return k


def sample_probe_times(steps: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """K probe steps (1-based, increasing) and their stratum sizes (K,), one uniform draw per stratum."""
    if not 1 <= k <= steps:
        raise ValidationError(f"--probe-times must be in 1..{steps} (the number of SGD steps); got {k}.")
    strata = np.array_split(np.arange(1, steps + 1), k)
    rng = np.random.default_rng([int(seed), SAMPLING_SALT])
    times = np.array([int(rng.choice(s)) for s in strata], np.int64)
    return times, np.array([len(s) for s in strata], np.int64)


def probe_loss_grads(model, theta: dict, buffers: dict, xp, yp, groups: list[torch.Tensor] | None = None,
                     include_direct: bool = False):
    """∇_θ of the probe loss(es) at ``theta`` (:func:`~.exact.probe_loss`): one mean cross-entropy per group of
    probe rows (``groups`` = boolean masks; None = the whole probe). Returns (list of dicts, list of ∂L/∂X_P or
    None)."""
    th = {k: v.detach().requires_grad_(True) for k, v in theta.items()}
    leaf = xp.detach().requires_grad_(include_direct)
    with torch.enable_grad():
        losses = probe_loss(model, th, buffers, leaf, yp, reduction="none")
        groups = [torch.ones_like(yp, dtype=torch.bool)] if groups is None else groups
        vs, directs = [], []
        for j, g in enumerate(groups):
            wrt = list(th.values()) + ([leaf] if include_direct else [])
            grads = torch.autograd.grad(losses[g].mean(), wrt, retain_graph=j + 1 < len(groups), allow_unused=True)
            vs.append({k: torch.zeros_like(v) if gr is None else gr for (k, v), gr in zip(th.items(), grads)})
            directs.append(grads[-1] if include_direct else None)
    return vs, directs


def _vjp(outs, ins, cots):
    """Batched vector-Jacobian product (leading dim = adjoints); falls back to a loop if vmap cannot."""
    try:
        return torch.autograd.grad(outs, ins, grad_outputs=cots, is_grads_batched=True, allow_unused=True)
    except RuntimeError:
        rows = [torch.autograd.grad(outs, ins, grad_outputs=[c[a] for c in cots], retain_graph=True,
                                    allow_unused=True) for a in range(cots[0].shape[0])]
        return [None if rows[0][i] is None else torch.stack([r[i] for r in rows]) for i in range(len(ins))]


def _leaves(d: dict) -> dict:
    return {k: v.detach().requires_grad_(True) for k, v in d.items()}


def reverse_sweep(traj: Trajectory, times, probe_fn, *, losses: int = 1, max_adjoints: int | None = None,
                  progress=None, profile: dict | None = None) -> torch.Tensor:
    """‖∂L^{(c)}_{t_k}/∂X‖₁ per example for every probe step t_k and probe loss c, through all earlier updates.

    The adjoint (λ_θ, λ_state) of (θ_s, optimizer state s) is carried from s = t_k down to 1; at step s the
    vector-Jacobian product of one replayed update (:func:`~.replay.run_step`, double backward; BatchNorm's
    batch coupling, the dropout masks and the augmentation included) with the stacked adjoints of all active
    probe steps gives the adjoints at s−1 and the contributions to ∂L_{t_k}/∂X for the rows of B_s, which add
    up over presentations before the L1 norm is taken.

    Parameters
    ----------
    traj : Trajectory (after ``replay()``), the states θ_s, s = 0..T
    times : sequence of int (K,), 1-based steps t_k
    probe_fn : callable (θ_t, buffers_t) → (list of C cotangent dicts ∇_θ L^{(c)}, list of C direct terms
        (|P|, ...) or None); direct terms are added to the rows ``probe_fn.rows`` (the probe indices) of ∂L/∂X.
    losses : int
        C, the number of probe losses ``probe_fn`` returns per step (1; the probe classes for per-class).
    max_adjoints : int, optional
        Most (probe step, loss) adjoints per reverse sweep (memory: that many (N, ...) accumulators).
    profile : dict, optional
        Filled with seconds spent in probe gradients (``probe_s``), per-step graph rebuilds (``rebuild_s``, the
        replayed forward and the first backward with create_graph, plus segment recomputation from checkpoints)
        and vector-Jacobian products (``vjp_s``), and the counts ``reverse_steps`` and ``adjoint_steps`` (Σ over
        reverse steps of the adjoints carried).

    Returns
    -------
    Tensor (K, C, N) float64
    """
    prof = {"probe_s": 0.0, "rebuild_s": 0.0, "vjp_s": 0.0, "reverse_steps": 0, "adjoint_steps": 0}
    recipe = traj.recipe
    x, names = recipe.x, recipe.names
    skeys = sorted(traj.start[1])
    order = sorted(range(len(times)), key=lambda k: -int(times[k]))
    out: dict[int, torch.Tensor] = {}
    c_per = int(losses)
    per = max(1, (max_adjoints or 1 << 30) // c_per)
    for group in (order[g:g + per] for g in range(0, len(order), per)):  # sweeps, latest probe steps first
        pending = list(group)
        lam = lams = acc = None
        ks: list[int] = []
        for s in range(int(times[group[0]]), 0, -1):
            while pending and int(times[pending[0]]) == s:
                k = pending.pop(0)
                theta_s, _, bufs_s = traj.get(s)
                t0 = time.perf_counter()
                vs, directs = probe_fn(theta_s, bufs_s)
                prof["probe_s"] += time.perf_counter() - t0
                new_lam = [torch.stack([v[n] for v in vs]) for n in names]
                new_acc = torch.zeros((len(vs), *x.shape), dtype=x.dtype, device=x.device)
                for c, d in enumerate(directs):
                    if d is not None:
                        new_acc[c].index_add_(0, probe_fn.rows, d.to(x.dtype))
                new_lams = [torch.zeros_like(t) for _ in skeys for t in new_lam]
                lam = new_lam if lam is None else [torch.cat([a, b]) for a, b in zip(lam, new_lam)]
                lams = new_lams if lams is None else [torch.cat([a, b]) for a, b in zip(lams, new_lams)]
                acc = new_acc if acc is None else torch.cat([acc, new_acc])
                ks.append(k)
            if lam is None:
                continue
            t0 = time.perf_counter()
            theta, ost, bufs = traj.get(s - 1)
            th, os_ = _leaves(theta), {key: _leaves(ost[key]) for key in skeys}
            rec = traj.records[s - 1]
            xb = x[torch.as_tensor(rec.idx, device=x.device)].detach().requires_grad_(True)
            new_th, new_os, _ = run_step(recipe, (th, os_, bufs), s, rec, xb=xb, create_graph=True)
            outs = [new_th[n] for n in names] + [new_os[key][n] for key in skeys for n in names]
            ins = [th[n] for n in names] + [os_[key][n] for key in skeys for n in names] + [xb]
            t1 = time.perf_counter()
            grads = _vjp(outs, ins, lam + lams)
            prof["rebuild_s"] += t1 - t0
            prof["vjp_s"] += time.perf_counter() - t1
            prof["reverse_steps"] += 1
            prof["adjoint_steps"] += int(lam[0].shape[0])
            p = len(names)
            lam = [torch.zeros_like(l0) if gi is None else gi.detach() for l0, gi in zip(lam, grads[:p])]
            lams = [torch.zeros_like(l0) if gi is None else gi.detach() for l0, gi in zip(lams, grads[p:-1])]
            if grads[-1] is not None:
                acc.index_add_(1, xb.new_tensor(rec.idx, dtype=torch.long), grads[-1].detach().to(acc.dtype))
            if progress is not None:
                progress.update(1)
        norms = acc.abs().flatten(2).sum(2).double()
        for j, k in enumerate(ks):
            out[k] = norms[j * c_per:(j + 1) * c_per]
    if profile is not None:
        profile.update(prof)
    return torch.stack([out[k] for k in range(len(times))])


def default_budget(device) -> int:
    """The default ``--sensitivity-memory``: 70% of the device's free memory."""
    return int(0.7 * available_bytes(device))


def activation_floats(model, input_shape, device="cpu") -> int:
    """Floats output by the layers of ``model`` for one example (a no-grad forward of one zero input)."""
    acts = [0]
    hooks = [m.register_forward_hook(lambda m, i, o: acts.__setitem__(0, acts[0] + getattr(o, "numel", int)()))
             for m in model.modules() if not list(m.children())]
    try:
        with torch.no_grad(), module_modes(model, False, False):
            model(torch.zeros(1, *input_shape, device=device))
    finally:
        for h in hooks:
            h.remove()
    return int(acts[0])


def plan_inputs(model, input_shape, device, *, params: int, opt_state: int, buffers: int, n: int, batch: int,
                steps: int, adjoints: int, elem_size: int = 4) -> dict:
    """The sizes :func:`~.plan.plan_memory` takes, in floats: one state (θ, optimizer state, buffers), one adjoint
    (θ and optimizer state), the N·d training inputs and one step's B·(activations + d)."""
    d = math.prod(input_shape)
    return dict(steps=steps, wanted_adjoints=adjoints, state_floats=params + opt_state + buffers,
                adjoint_floats=params + opt_state, input_floats=n * d, elem_size=elem_size,
                graph_floats=min(batch, n) * (activation_floats(model, input_shape, device) + d))


def planned(budget: int | None, device, inputs: dict) -> MemoryPlan:
    """The plan for ``inputs`` (:func:`plan_inputs`) within ``budget`` bytes (None: 70% of free memory)."""
    return plan_memory(default_budget(device) if budget is None else int(budget), default_budget=budget is None,
                       **inputs)


def memory_plan(model, optimizer: str, *, n: int, input_shape, batch_size: int, steps: int, adjoints: int,
                budget: int | None = None, device="cpu", momentum: float = 0.0) -> MemoryPlan:
    """The :class:`~.plan.MemoryPlan` of a run before it trains (the CLI prints it; meta.json stores it)."""
    p = sum(v.numel() for v in model.parameters() if v.requires_grad)
    n_state = {"sgd": 1 if momentum else 0, "adam": 2, "adamw": 2}.get(optimizer, 2)
    inputs = plan_inputs(model, tuple(input_shape), device, params=p, opt_state=p * n_state, n=n, batch=batch_size,
                         buffers=sum(v.numel() for v in model.buffers()), steps=steps, adjoints=adjoints)
    return planned(budget, device, inputs)


class SampledSensitivityHook(ExactSensitivityHook):
    """Full-horizon loss sensitivity from K stratified probe steps (the default ``loss_sensitivity``).

    Records what the replay needs during training (as :class:`~.exact.ExactSensitivityHook` does), and after the
    last step replays the trajectory (:class:`~.replay.Trajectory`, checkpointed by the memory plan) and runs
    :func:`reverse_sweep`. ``values()['loss_sensitivity']`` is (N,). ``probe_times``: K, ``"all"`` (K = T, exact)
    or None (``DEFAULT_PROBE_TIMES``, at most T); ``seed``: the sampling seed (None = the training run's seed);
    ``memory``: the budget in bytes (None = 70% of free memory).
    """

    def __init__(self, n: int, probe: np.ndarray, probe_times=None, seed: int | None = None,
                 include_direct: bool = False, memory: int | None = None):
        super().__init__(n, probe, include_direct)
        # None: the default K, capped at the number of steps T; an explicit K > T is refused
        self.probe_times = None if probe_times is None else parse_probe_times(probe_times)
        self.seed = None if seed is None else int(seed)  # None: the training run's seed
        self.memory = memory
        self.times = np.zeros(0, np.int64)
        self.strata = np.zeros(0, np.int64)
        self.adjoints_per_sweep = 0
        self.plan: MemoryPlan | None = None
        self.recomputed_steps = 0
        self.profile: dict = {}

    def on_train_begin(self, run: Run) -> None:
        super().on_train_begin(run)
        if self.seed is None:
            self.seed = int(run.config.seed)

    def _groups(self):
        return None

    def _sweep(self, recipe: Recipe, start, records: list, model) -> torch.Tensor:
        """Plan, replay, sample the probe steps, and return the (K, C, N) norms of the reverse sweep."""
        steps = len(records)
        k = min(DEFAULT_PROBE_TIMES, steps) if self.probe_times is None else check_probe_times(self.probe_times, steps)
        self.times, self.strata = sample_probe_times(steps, k, self.seed)
        groups = self._groups()
        c = 1 if groups is None else len(groups)
        x = recipe.x
        theta, ost, bufs = start
        self.plan_inputs = plan_inputs(
            model, tuple(x.shape[1:]), x.device, params=sum(v.numel() for v in theta.values()),
            opt_state=sum(v.numel() for d in ost.values() for v in d.values()),
            buffers=sum(v.numel() for v in bufs.values()), n=len(x),
            batch=max((len(r.idx) for r in records), default=1), steps=steps, adjoints=k * c,
            elem_size=x.element_size())
        self.plan = planned(self.memory, x.device, self.plan_inputs)
        self.adjoints_per_sweep = self.plan.adjoints_per_sweep
        traj = Trajectory(recipe, start, records, self.plan.checkpoint_interval)
        xp, yp = self.xp, self.yp

        def probe_fn(theta, buffers):
            return probe_loss_grads(recipe.model, theta, buffers, xp, yp, groups, self.include_direct)
        probe_fn.rows = self.pidx
        per = max(1, self.adjoints_per_sweep // c)
        order = sorted(self.times.tolist(), reverse=True)
        total = steps + sum(order[g] for g in range(0, len(order), per))  # the replay + reverse steps of all sweeps
        with progress_bar(total=total, desc="loss_sensitivity replay + reverse sweep", unit="step", leave=False,
                          dynamic_ncols=True) as bar:
            t0 = time.perf_counter()
            final = traj.replay(bar)
            self.profile = {"replay_s": time.perf_counter() - t0}
            self._check_drift(final, model)
            norms = reverse_sweep(traj, self.times, probe_fn, losses=c, max_adjoints=self.adjoints_per_sweep,
                                  progress=bar, profile=self.profile)
        self.recomputed_steps = traj.recomputed_steps
        self.profile["adjoint_steps_defined"] = int(self.times.sum()) * c  # Σ_k t_k per probe loss
        return norms

    def _compute(self, recipe: Recipe, start, records: list, model) -> None:
        norms = self._sweep(recipe, start, records, model)[:, 0]
        w = torch.as_tensor(self.strata / len(records), dtype=torch.float64, device=norms.device)
        self.value = (w @ norms).cpu().numpy()

    def _plan_meta(self) -> dict:
        if self.plan is None:
            return {"memory_plan": None}
        return {"memory_plan": {**self.plan.to_dict(), "recomputed_steps": int(self.recomputed_steps),
                                "smallest_budget_bytes": smallest_budget(**self.plan_inputs)}}

    def meta(self) -> dict:
        k, steps = len(self.times), int(self.strata.sum())
        return {"loss_sensitivity": {
            "mode": "full horizon, sampled probe steps" if k < steps else "full horizon, every step (= exact)",
            "estimator": "stratified sample of K of the T optimizer steps, one uniform step per stratum; each "
                         "||dL_t/dx||_1 exact through every earlier update; unbiased for the mean over t",
            "probe_times": k, "steps": steps, "times": self.times.tolist(), "strata": self.strata.tolist(),
            "sampling_seed": self.seed, "probe_size": int(len(self.probe)), "include_direct": self.include_direct,
            "normalisation": "sum over the sampled steps of (stratum size / T) * ||dL_t/dx||_1",
            **self._replay_meta(), **self._plan_meta(), "profile": self.profile,
            "approximations": ["the mean over t is estimated from K sampled steps (unbiased; K = T is exact mode); "
                               "agreement with exact mode in benchmarks/unrolled_accuracy/results.txt",
                               "functional replay of the same trajectory (float32 rounding)"]}}

    def state_dict(self):
        return {**super().state_dict(), "times": self.times, "strata": self.strata}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.times = np.asarray(state.get("times", np.zeros(0)), np.int64).copy()
        self.strata = np.asarray(state.get("strata", np.zeros(0)), np.int64).copy()
