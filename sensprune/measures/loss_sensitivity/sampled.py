"""Full-horizon loss sensitivity from sampled probe steps — the default ``loss_sensitivity`` (MEASURES §1).

Arpit et al. (ICML 2017, §3.2) define ḡ_x = (1/T) Σ_{t=1..T} ‖∂L_t/∂x‖₁, where x acts on L_t through
**every** earlier SGD update it took part in (they unroll SGD and back-propagate through it, after
Maclaurin et al. 2015). Exact mode (:class:`~sensprune.measures.loss_sensitivity.exact.ExactSensitivityHook`) takes
∂L_t/∂X at all T steps: O(T²) step-backwards. This module estimates the same mean from K probe steps:

- **Sampling (choice of ours).** 1..T is cut into K contiguous strata of (near) equal size
  (``numpy.array_split``); one step t_k is drawn uniformly in each stratum S_k by
  ``numpy.random.default_rng([seed, 0x5E45])``; the estimate is ĝ_x = Σ_k (|S_k|/T)·g_x^{t_k}.
  E[ĝ_x] = Σ_k (|S_k|/T)·mean_{t∈S_k} g_x^t = ḡ_x: **unbiased**, and equal to exact mode when K = T.
  The steps, strata and seed are stored in ``meta.json``.
- **Each term is exact**: ∂L_{t_k}/∂X through the whole history 1..t_k (momentum buffer, weight decay,
  the lr schedule, per-example loss weights), by reverse-mode differentiation of the SGD recursion:
  the adjoint (λ_θ, λ_buf) of (θ_s, buf_s) is carried from s = t_k down to 1, and at step s the
  vector-Jacobian product of one functional SGD step (:func:`~sensprune.measures.loss_sensitivity.exact.sgd_step`,
  double backward) with the stacked adjoints of all active probe steps gives the adjoints at s−1 and
  the contributions to ∂L_{t_k}/∂X for the rows of B_s, which add up over presentations before the
  L1 norm is taken.
- **Memory**: no graph is kept across steps. The trajectory (θ_s, buf_s), s = 0..T, is recomputed once by
  a functional replay of the recorded batches from θ_0 (like exact mode; the replay error against the
  trained weights is stored), and each reverse step rebuilds only the graph of step s. Peak memory
  ≈ T·P·(1 + [momentum]) parameters + A·N·d input-gradient accumulators for the A probe steps handled in
  one reverse sweep (sweeps are split so that the accumulators fit; :func:`estimate_sampled_bytes`).
- **Cost**: one replay (T plain steps) plus Σ_k t_k ≤ K·T batched step-VJPs: O(K·T), linear in T.

The probe set and its loss are those of exact mode (inputs of the probe treated as constants unless
``include_direct``). Per-class sensitivity (MEASURES §3) uses the same sweep with one adjoint per
(probe step, probe class).
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call
from tqdm.auto import tqdm

from sensprune.config import DEFAULT_PROBE_TIMES  # noqa: F401  (16, defined in config.py without torch)
from sensprune.errors import ValidationError
from sensprune.measures.loss_sensitivity.exact import (ExactSensitivityHook, available_bytes, parse_count_or_all,
                                                       replay_sgd, sgd_step)
from sensprune.train.hooks import Run

#: default number of probe steps K: DEFAULT_PROBE_TIMES (chosen from benchmarks/unrolled_accuracy/results.txt)
SAMPLING_SALT = 0x5E45


def parse_probe_times(value) -> int | str:
    """``"all"`` or a positive integer K (also given as a string); anything else is a ValidationError."""
    return parse_count_or_all(value, "--probe-times")


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
        raise ValidationError(f"--probe-times must be in 1..{steps} (the number of SGD steps). Got {k}.")
    strata = np.array_split(np.arange(1, steps + 1), k)
    rng = np.random.default_rng([int(seed), SAMPLING_SALT])
    times = np.array([int(rng.choice(s)) for s in strata], np.int64)
    return times, np.array([len(s) for s in strata], np.int64)


def probe_loss_grads(model, theta: dict, xp, yp, groups: list[torch.Tensor] | None = None,
                     include_direct: bool = False):
    """∇_θ of the probe loss(es) at ``theta``: one mean cross-entropy per group of probe rows
    (``groups`` = boolean masks; None = the whole probe). Returns (list of dicts, list of ∂L/∂X_P or None)."""
    th = {k: v.detach().requires_grad_(True) for k, v in theta.items()}
    leaf = xp.detach().requires_grad_(include_direct)
    losses = F.cross_entropy(functional_call(model, th, (leaf,)), yp, reduction="none")
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


def reverse_sweep(model, trajectory, x, y, batches, lrs, times, probe_fn, *, momentum=0.0, weight_decay=0.0,
                  weights=None, max_adjoints: int | None = None, progress=None) -> torch.Tensor:
    """‖∂L^{(c)}_{t_k}/∂X‖₁ per example for every probe step t_k and probe loss c, through all earlier updates.

    Parameters
    ----------
    trajectory : list of (θ_s dict, buf_s dict or None), s = 0..T (from ``replay_sgd(trajectory=...)``)
    x (N, ...), y (N,) : the training set; batches, lrs : the T steps' index tensors and learning rates
    times : sequence of int (K,), 1-based steps t_k
    probe_fn : callable θ_t → (list of C cotangent dicts ∇_θ L^{(c)}, list of C direct terms (|P|, ...) or None)
        direct terms are added to the rows ``probe_fn.rows`` (the probe indices) of ∂L/∂X.
    max_adjoints : int, optional
        Most (probe step, loss) adjoints per reverse sweep (memory: that many (N, ...) accumulators).

    Returns
    -------
    Tensor (K, C, N) float64
    """
    names = list(trajectory[0][0])
    order = sorted(range(len(times)), key=lambda k: -int(times[k]))
    out: dict[int, torch.Tensor] = {}
    first_v, _ = probe_fn(trajectory[int(times[order[0]])][0])
    c_per = len(first_v)
    per_sweep = max(1, (max_adjoints or 1 << 30) // c_per)
    # sweeps over groups of probe steps, latest first; each group is one reverse pass from its latest step
    for g0 in range(0, len(order), per_sweep):
        group = order[g0:g0 + per_sweep]
        pending = list(group)
        lam = lamb = acc = None
        ks: list[int] = []
        for s in range(int(times[group[0]]), 0, -1):
            while pending and int(times[pending[0]]) == s:
                k = pending.pop(0)
                vs, directs = probe_fn(trajectory[s][0])
                new_lam = [torch.stack([v[n] for v in vs]) for n in names]
                new_acc = torch.zeros((len(vs), *x.shape), dtype=x.dtype, device=x.device)
                for c, d in enumerate(directs):
                    if d is not None:
                        new_acc[c].index_add_(0, probe_fn.rows, d.to(x.dtype))
                new_lamb = [torch.zeros_like(t) for t in new_lam]
                lam = new_lam if lam is None else [torch.cat([a, b]) for a, b in zip(lam, new_lam)]
                lamb = new_lamb if lamb is None else [torch.cat([a, b]) for a, b in zip(lamb, new_lamb)]
                acc = new_acc if acc is None else torch.cat([acc, new_acc])
                ks.append(k)
            if lam is None:
                continue
            theta_prev, buf_prev = trajectory[s - 1]
            th = {n: theta_prev[n].detach().requires_grad_(True) for n in names}
            bf = None if buf_prev is None else {n: buf_prev[n].detach().requires_grad_(True) for n in names}
            b = batches[s - 1]
            xb = x[b].detach().requires_grad_(True)
            wb = None if weights is None else weights[b]
            new_th, new_bf = sgd_step(model, th, bf, xb, y[b], float(lrs[s - 1]), momentum, weight_decay, wb=wb)
            outs = [new_th[n] for n in names] + ([new_bf[n] for n in names] if new_bf is not None else [])
            cots = lam + (lamb if new_bf is not None else [])
            ins = [th[n] for n in names] + ([bf[n] for n in names] if bf is not None else []) + [xb]
            grads = _vjp(outs, ins, cots)
            p = len(names)
            lam = [torch.zeros_like(l0) if gi is None else gi.detach() for l0, gi in zip(lam, grads[:p])]
            if bf is not None:
                lamb = [torch.zeros_like(l0) if gi is None else gi.detach() for l0, gi in zip(lamb, grads[p:2 * p])]
            if grads[-1] is not None:
                acc.index_add_(1, b, grads[-1].detach().to(acc.dtype))
            if progress is not None:
                progress.update(1)
        norms = acc.abs().flatten(2).sum(2).double()
        for j, k in enumerate(ks):
            out[k] = norms[j * c_per:(j + 1) * c_per]
    return torch.stack([out[k] for k in range(len(times))])


def estimate_sampled_bytes(n_params: int, steps: int, momentum: bool, n: int, input_size: int, adjoints: int,
                           elem_size: int = 4) -> int:
    """Peak memory of the sampled estimator: the trajectory (T+1 parameter sets, twice with momentum),
    ``adjoints`` (N, d) accumulators and 2 parameter-sized adjoints each, and the training inputs."""
    traj = (steps + 1) * n_params * (2 if momentum else 1)
    per_adj = n * input_size + 2 * n_params
    return int(elem_size * (traj + adjoints * per_adj + 2 * n * input_size))


def plan_adjoints(n_params: int, steps: int, momentum: bool, n: int, input_size: int, wanted: int,
                  device="cpu", what: str = "loss_sensitivity") -> int:
    """How many adjoints one reverse sweep may carry (≤ ``wanted``) so the estimate fits in 70% of free
    memory; refuses with the fix when even the trajectory and one adjoint do not fit."""
    free = 0.7 * available_bytes(device)
    need_one = estimate_sampled_bytes(n_params, steps, momentum, n, input_size, 1)
    if need_one > free:
        raise ValidationError(
            f"{what} (full horizon) needs about {need_one / 2 ** 30:.1f} GiB to store the {steps}-step SGD "
            f"trajectory, this machine has {free / 0.7 / 2 ** 30:.1f} GiB free; use fewer --epochs, a larger "
            "--batch-size or a smaller model, or the one-step proxy --measures loss_sensitivity_h1.")
    per_adj = 4 * (n * input_size + 2 * n_params)
    return int(max(1, min(wanted, (free - need_one) // per_adj + 1)))


class SampledSensitivityHook(ExactSensitivityHook):
    """Full-horizon loss sensitivity from K stratified probe steps (the default ``loss_sensitivity``).

    Records θ_0, the batches and learning rates during training (as exact mode does), and after the last
    epoch replays the trajectory and runs :func:`reverse_sweep`. ``values()['loss_sensitivity']`` is (N,).
    ``probe_times``: K, ``"all"`` (K = T, exact) or None (``DEFAULT_PROBE_TIMES``, at most T); ``seed``: the
    sampling seed (None = the training run's seed).
    """

    def __init__(self, n: int, probe: np.ndarray, probe_times=None, seed: int | None = None,
                 include_direct: bool = False):
        super().__init__(n, probe, include_direct)
        # None: the default K, capped at the number of steps T; an explicit K > T is refused
        self.probe_times = None if probe_times is None else parse_probe_times(probe_times)
        self.seed = None if seed is None else int(seed)  # None: the training run's seed
        self.times = np.zeros(0, np.int64)
        self.strata = np.zeros(0, np.int64)
        self.adjoints_per_sweep = 0

    def on_train_begin(self, run: Run) -> None:
        super().on_train_begin(run)
        if self.seed is None:
            self.seed = int(run.config.seed)

    def _groups(self, run: Run):
        return None

    def _sweep(self, run: Run, batches: list, kw: dict):
        """Replay, sample the probe steps, and return the (K, C, N) norms of the reverse sweep."""
        traj: list = []
        final = replay_sgd(run.model, run.train.x, run.train.y, batches, self.lrs, **kw, trajectory=traj)
        self.replay_error = self._replay_error(final, run)
        steps = len(batches)
        k = min(DEFAULT_PROBE_TIMES, steps) if self.probe_times is None else check_probe_times(self.probe_times, steps)
        self.times, self.strata = sample_probe_times(steps, k, self.seed)
        groups = self._groups(run)
        c = 1 if groups is None else len(groups)
        n_params = sum(v.numel() for v in traj[0][0].values())
        x = run.train.x
        self.adjoints_per_sweep = plan_adjoints(n_params, steps, bool(kw["momentum"]), len(x),
                                                int(np.prod(x.shape[1:])), k * c, run.device)
        xp, yp = x[self.pidx], run.train.y[self.pidx]

        def probe_fn(theta):
            return probe_loss_grads(run.model, theta, xp, yp, groups, self.include_direct)
        probe_fn.rows = self.pidx
        per = max(1, self.adjoints_per_sweep // c)
        order = sorted(self.times.tolist(), reverse=True)
        total = sum(order[g] for g in range(0, len(order), per))  # reverse steps over all sweeps
        with tqdm(total=total, desc="loss_sensitivity reverse sweep", unit="step", leave=False,
                  disable=None, dynamic_ncols=True) as bar:
            return reverse_sweep(run.model, traj, x, run.train.y, batches, self.lrs, self.times, probe_fn,
                                 momentum=kw["momentum"], weight_decay=kw["weight_decay"], weights=kw["weights"],
                                 max_adjoints=self.adjoints_per_sweep, progress=bar)

    def _compute(self, run: Run, batches: list, kw: dict) -> None:
        norms = self._sweep(run, batches, kw)[:, 0]
        w = torch.as_tensor(self.strata / len(batches), dtype=torch.float64, device=norms.device)
        self.value = (w @ norms).cpu().numpy()

    def meta(self) -> dict:
        k, steps = len(self.times), int(self.strata.sum())
        return {"loss_sensitivity": {
            "mode": "full horizon, sampled probe steps" if k < steps else "full horizon, every step (= exact)",
            "estimator": "stratified sample of K of the T SGD steps, one uniform step per stratum; each "
                         "||dL_t/dx||_1 exact through every earlier update; unbiased for the mean over t",
            "probe_times": k, "steps": steps, "times": self.times.tolist(), "strata": self.strata.tolist(),
            "sampling_seed": self.seed, "probe_size": int(len(self.probe)), "include_direct": self.include_direct,
            "normalisation": "sum over the sampled steps of (stratum size / T) * ||dL_t/dx||_1",
            "replay_max_abs_param_diff": self.replay_error,
            "approximations": ["the mean over t is estimated from K sampled steps (unbiased; K = T is exact mode); "
                               "agreement with exact mode in benchmarks/unrolled_accuracy/results.txt",
                               "functional replay of the same SGD trajectory (float32 rounding)"]}}

    def state_dict(self):
        return {**super().state_dict(), "times": self.times, "strata": self.strata}

    def load_state_dict(self, state):
        super().load_state_dict(state)
        self.times = np.asarray(state.get("times", np.zeros(0)), np.int64).copy()
        self.strata = np.asarray(state.get("strata", np.zeros(0)), np.int64).copy()
