"""The loss_sensitivity engine on what users train: Adam/AdamW, BatchNorm in train mode, Dropout, crop-flip.

Each case checks the whole measure ḡ_x = (1/T) Σ_t ‖∂L_t/∂x‖₁ in float64 three ways: central finite differences of
every L_t through the replayed run, the brute-force unroll, and the reverse sweep (the default estimator with
K = T, i.e. exact mode) — and that the replay reproduces a real torch training run of the same recipe.
"""

import dataclasses

import numpy as np
import pytest
import torch
from torch import nn

from sensprune.measures.loss_sensitivity import optim
from sensprune.measures.loss_sensitivity.exact import probe_loss, unrolled_sensitivity_of
from sensprune.measures.loss_sensitivity.replay import Recipe, StepRecord, Trajectory, run_step
from sensprune.measures.loss_sensitivity.sampled import probe_loss_grads, reverse_sweep
from sensprune.train.augment import augment
from sensprune.train.loop import batch_loss


def _mlp(bn=False, dropout=0.0):
    torch.manual_seed(0)
    layers = [nn.Linear(4, 5)] + ([nn.BatchNorm1d(5)] if bn else []) + [nn.Tanh()]
    layers += ([nn.Dropout(dropout)] if dropout else []) + [nn.Linear(5, 3)]
    return nn.Sequential(*layers).double()


def _conv():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Tanh(), nn.Flatten(), nn.Linear(2 * 5 * 5, 3)).double()


def _problem(model, x, spec, *, rng=False, aug=None, weights=None):
    """A 4-step recipe over 6 examples (batches of 3), learning rates changing per step."""
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    names = [k for k, p in model.named_parameters()]
    recipe = Recipe(model, x, y, weights, names, [0] * len(names), [spec], augment=aug)
    batches = [[0, 1, 2], [3, 4, 5], [1, 3, 5], [0, 2, 4]]
    records = []
    for t, b in enumerate(batches):
        state = None
        if rng:
            torch.manual_seed(100 + t)
            state = (torch.get_rng_state(), None)
        records.append(StepRecord(np.array(b), (0.3 - 0.05 * t,), state, 1000 + t if aug else None))
    theta = {k: p.detach().clone() for k, p in model.named_parameters()}
    start = (theta, optim.init_state(recipe.spec_of, theta), {k: b.detach().clone() for k, b in model.named_buffers()})
    return recipe, start, records


def _fd_gbar(recipe, start, records, probe, eps=1e-6):
    """Central finite differences of every L_t w.r.t. every entry of x (probe inputs held constant): ḡ (N,)."""
    x = recipe.x

    def losses(xx):
        r, state, out = dataclasses.replace(recipe, x=xx), start, []
        for t, rec in enumerate(records, start=1):
            state = run_step(r, state, t, rec)
            out.append(float(probe_loss(recipe.model, state[0], state[2], x[probe], recipe.y[probe])))
        return np.array(out)

    flat = x.reshape(len(x), -1)
    g = np.zeros((len(records), *flat.shape))
    for i in range(flat.shape[0]):
        for j in range(flat.shape[1]):
            xp, xm = flat.clone(), flat.clone()
            xp[i, j] += eps
            xm[i, j] -= eps
            g[:, i, j] = (losses(xp.reshape(x.shape)) - losses(xm.reshape(x.shape))) / (2 * eps)
    return np.abs(g).sum(2).mean(0)


def _sweep_gbar(recipe, start, records, probe, interval=None):
    """The reverse sweep at every step (K = T): exact mode of the default estimator."""
    traj = Trajectory(recipe, start, records, interval or len(records))
    traj.replay()
    pidx = torch.as_tensor(probe)

    def probe_fn(theta, buffers):
        return probe_loss_grads(recipe.model, theta, buffers, recipe.x[pidx], recipe.y[pidx])
    probe_fn.rows = pidx
    times = np.arange(1, len(records) + 1)
    return reverse_sweep(traj, times, probe_fn, max_adjoints=2)[:, 0].mean(0).numpy()


CASES = {
    "adam": lambda g: (_mlp(), optim.GroupSpec("adam", weight_decay=1e-2), {}),
    "adamw-amsgrad": lambda g: (_mlp(), optim.GroupSpec("adamw", weight_decay=0.05, amsgrad=True), {}),
    "sgd-nesterov": lambda g: (_mlp(), optim.GroupSpec("sgd", momentum=0.9, nesterov=True, weight_decay=1e-3), {}),
    "batchnorm": lambda g: (_mlp(bn=True), optim.GroupSpec("sgd", momentum=0.9), {}),
    "dropout": lambda g: (_mlp(dropout=0.3), optim.GroupSpec("adam"), {"rng": True}),
    "crop-flip": lambda g: (_conv(), optim.GroupSpec("sgd", momentum=0.5),
                            {"aug": lambda x, s: augment("crop-flip", x, s)}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_whole_measure_matches_central_finite_differences_float64(case):
    g = torch.Generator().manual_seed(1)
    model, spec, kw = CASES[case](g)
    shape = (6, 1, 5, 5) if case == "crop-flip" else (6, 4)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    w = torch.tensor([1.0, 0.5, 2.0, 1.5, 1.0, 0.7], dtype=torch.float64)
    recipe, start, records = _problem(model, x, spec, weights=w, **kw)
    probe = np.array([0, 2, 3, 5])
    fd = _fd_gbar(recipe, start, records, probe)
    brute = unrolled_sensitivity_of(recipe, start, records, probe=probe)
    sweep = _sweep_gbar(recipe, start, records, probe)
    sweep_ckpt = _sweep_gbar(recipe, start, records, probe, interval=2)  # checkpoints every 2 steps, recomputed
    assert fd.min() > 0
    np.testing.assert_allclose(brute, fd, rtol=1e-3)
    np.testing.assert_allclose(sweep, fd, rtol=1e-3)
    np.testing.assert_allclose(sweep, brute, rtol=1e-9)
    np.testing.assert_allclose(sweep_ckpt, sweep, rtol=1e-12)


@pytest.mark.parametrize("case", ["adam", "batchnorm", "dropout", "crop-flip"])
def test_replay_equals_a_real_torch_training_run(case):
    """The functional replay (batch loss, BatchNorm running statistics, dropout masks from the recorded RNG state,
    augmentation) ends at the weights and buffers a plain torch loop reaches."""
    g = torch.Generator().manual_seed(3)
    model, spec, kw = CASES[case](g)
    x = torch.randn(*((6, 1, 5, 5) if case == "crop-flip" else (6, 4)), generator=g, dtype=torch.float64)
    recipe, start, records = _problem(model, x, spec, **kw)
    opt = (torch.optim.Adam if spec.kind == "adam" else torch.optim.SGD)(
        model.parameters(), lr=0.1, **({"weight_decay": spec.weight_decay} if spec.kind == "adam" else
                                       {"momentum": spec.momentum}))
    model.train()
    for rec in records:
        b = torch.as_tensor(rec.idx)
        if rec.rng is not None:
            torch.set_rng_state(rec.rng[0])
        xb = x[b] if recipe.augment is None else recipe.augment(x[b], rec.aug_seed)
        loss = batch_loss(torch.nn.functional.cross_entropy(model(xb), recipe.y[b], reduction="none"))
        for grp in opt.param_groups:
            grp["lr"] = rec.lrs[0]
        opt.zero_grad()
        loss.backward()
        opt.step()
    state = start
    for t, rec in enumerate(records, start=1):
        state = run_step(recipe, state, t, rec)
    for k, p in model.named_parameters():
        torch.testing.assert_close(state[0][k], p.detach(), rtol=1e-12, atol=1e-12)
    for k, b in model.named_buffers():
        torch.testing.assert_close(state[2][k], b, rtol=1e-12, atol=1e-12)
