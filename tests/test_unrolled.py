"""Loss sensitivity through the SGD updates: exact vs finite differences, truncated vs exact, plumbing."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from nets import central_fd, fd_problem, replay_sgd, tiny_mlp, unrolled_sensitivity
from torch import nn
from torch.func import functional_call

from sensprune.cli import cli
from sensprune.config import MeasureOptions, TrainConfig
from sensprune.data import make_dataset
from sensprune.errors import ValidationError
from sensprune.measures.loss_sensitivity import proxy as TR
from sensprune.measures.loss_sensitivity import exact as U
from sensprune.measures.per_class import PerClassHook, off_diagonal_fraction
from sensprune.scoring.stage import ScoreConfig, score
from sensprune.train.hooks import Hook
from sensprune.train.loop import epoch_order, train
from sensprune.train.sources import ArraySource


def test_exact_mode_matches_central_finite_differences_float64():
    model, x, y, batches, lrs = fd_problem()
    kw = dict(momentum=0.9, weight_decay=1e-2)
    _, grad = unrolled_sensitivity(model, x, y, batches, lrs, **kw, return_last_grad=True)

    def final_loss(xx):
        theta = replay_sgd(model, xx, y, batches, lrs, **kw)
        return float(F.cross_entropy(functional_call(model, theta, (x,)), y))  # probe inputs constant

    fd = torch.from_numpy(central_fd(final_loss, x))
    rel = float((fd - grad).norm() / grad.norm())
    assert rel < 1e-3, rel
    assert float(grad.abs().sum()) > 0


def _run(data, hooks, epochs=2, batch_size=16, momentum=0.9, **kw):
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=0.1, momentum=momentum, weight_decay=1e-3,
                      schedule="cosine", **kw)
    torch.set_default_dtype(torch.float32)
    train(lambda: tiny_mlp(6, 8, 4, torch.float32), ArraySource(data[0], data[1], torch.device("cpu")), cfg,
          hooks=hooks, progress=False)
    return cfg


def test_replay_reproduces_the_training_trajectory(tiny_arrays):
    hook = U.ExactSensitivityHook(120, np.arange(120))
    _run(tiny_arrays, [hook])
    assert hook.replay_error < 1e-5
    assert np.isfinite(hook.value).all() and (hook.value > 0).all()


@pytest.mark.parametrize("direct", [False, True])
def test_truncated_with_full_horizon_equals_exact(tiny_arrays, direct):
    probe = np.arange(0, 120, 3)
    exact = U.ExactSensitivityHook(120, probe, include_direct=direct)
    trunc = TR.LossSensitivityHook(120, probe, horizon=16, include_direct=direct)  # 2 epochs x 8 steps
    _run(tiny_arrays, [exact, trunc])
    np.testing.assert_allclose(trunc.values()["loss_sensitivity_h16"], exact.value, rtol=2e-4, atol=1e-9)


def test_horizon_one_equals_exact_on_one_step(tiny_arrays):
    probe = np.arange(120)
    exact, h1 = U.ExactSensitivityHook(120, probe), TR.LossSensitivityHook(120, probe, horizon=1)
    _run(tiny_arrays, [exact, h1], epochs=1, batch_size=120)
    np.testing.assert_allclose(h1.values()["loss_sensitivity_h1"], exact.value, rtol=2e-4)


def test_horizon_one_with_direct_term_equals_exact_on_one_step(tiny_arrays):
    probe = np.arange(0, 120, 2)
    exact = U.ExactSensitivityHook(120, probe, include_direct=True)
    h1 = TR.LossSensitivityHook(120, probe, horizon=1, include_direct=True)
    _run(tiny_arrays, [exact, h1], epochs=1, batch_size=120, momentum=0.0)
    np.testing.assert_allclose(h1.values()["loss_sensitivity_h1"], exact.value, rtol=2e-4)


def test_window_state_roundtrip(tiny_arrays):
    hook = TR.LossSensitivityHook(120, np.arange(120), horizon=3)
    _run(tiny_arrays, [hook], epochs=1)
    other = TR.LossSensitivityHook(120, np.arange(120), horizon=3)
    other.load_state_dict({k: np.asarray(v) for k, v in hook.state_dict().items()})
    assert len(other.window) == 3 and other.steps == hook.steps
    for (a, ba, ia, la), (b, bb, ib, lb) in zip(hook.window, other.window):
        assert la == lb and torch.equal(ia, ib) and all(torch.equal(a[k], b[k]) for k in a)
        assert (ba is None) == (bb is None)


def test_per_class_equals_exact_restricted_probe_on_one_step(tiny_arrays):
    y = tiny_arrays[1]
    probe = np.arange(120)
    pc = PerClassHook(y, 4, probe)
    exacts = [U.ExactSensitivityHook(120, probe[y == i]) for i in range(4)]
    _run(tiny_arrays, [pc, *exacts], epochs=1, batch_size=120)
    want = np.array([[exacts[i].value[y == j].mean() for j in range(4)] for i in range(4)])
    np.testing.assert_allclose(pc.matrix(), want, rtol=2e-4)
    assert 0 < off_diagonal_fraction(pc.matrix()) < 1


@pytest.mark.parametrize("bad", ["0", "-2", "1.5", "two", "", "all2"])
def test_bad_horizon_is_refused(bad):
    with pytest.raises(ValidationError, match="--horizon must be a positive integer or 'all'"):
        MeasureOptions(horizon=bad)
    assert MeasureOptions(horizon="ALL").horizon == "all" and MeasureOptions(horizon="3").horizon == 3


def test_models_the_replay_cannot_reproduce_are_refused():
    with pytest.raises(ValidationError, match="BatchNorm1d"):
        U.check_unrollable(nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4)), "sgd")
    with pytest.raises(ValidationError, match="Dropout"):
        U.check_unrollable(nn.Sequential(nn.Linear(3, 4), nn.Dropout(0.5)), "sgd")
    with pytest.raises(ValidationError, match="adam"):
        U.check_unrollable(nn.Linear(3, 4), "adam")
    with pytest.raises(ValidationError, match="replays torch.optim.SGD, Adam and AdamW; got --optimizer lbfgs"):
        U.check_replayable("lbfgs")


def test_per_class_needs_two_classes():
    with pytest.raises(ValidationError, match="at least 2 classes"):
        PerClassHook(np.zeros(5, int), 1, np.arange(5))


def test_stratified_probe_keeps_class_shares():
    y = np.repeat([0, 1, 2], [600, 300, 100])
    p = U.stratified_probe(y, 100)
    assert len(p) == 100 and np.array_equal(np.bincount(y[p]), [60, 30, 10])
    assert np.array_equal(U.stratified_probe(y[:50], 100), np.arange(50))


def test_exact_mode_too_large_is_refused_with_the_smallest_budget(tiny_arrays):
    ds = make_dataset(*tiny_arrays, spec="tiny")
    cfg = ScoreConfig(dataset="tiny", widths=(8,), measures=("loss_sensitivity",),
                      measure_options={"horizon": "all", "sensitivity_memory": "10kB"},
                      train=TrainConfig(epochs=1, batch_size=16))
    with pytest.raises(ValidationError, match=r"`--sensitivity-memory` 0.0 MiB is too small for loss_sensitivity over "
                                              r"8 steps even with checkpoints every 3 steps; the smallest budget"):
        score(ds, cfg, progress=False)


def test_score_artifact_has_extras_and_notes(tmp_path):
    out = tmp_path / "s"
    args = ["score", "--dataset", "digits", "--subsample", "150", "--epochs", "2", "--widths", "16",
            "--measures", "loss_sensitivity,grand", "--per-class", "--csr", "--csr-samples", "20",
            "--quiet", "--out", str(out)]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "meta.json").read_text())
    note = meta["measure_notes"]["loss_sensitivity"]
    # 150 examples / batch 128 = 2 steps per epoch, T = 4 < 16: the default K is capped at T (= exact)
    assert note["mode"] == "full horizon, every step (= exact)" and note["probe_times"] == 4 and note["steps"] == 4
    assert meta["measure_notes"]["per_class"]["mode"] == "full horizon, every step (= exact)"
    assert 0 < meta["extras"]["per_class"]["off_diagonal_fraction"] < 1
    assert len(meta["extras"]["csr"]["curve"]) == 2
    assert np.load(out / "per_class.npy").shape == (10, 10)
    assert (out / "csr.csv").read_text().startswith("epoch,csr\n1,")
    assert "loss_sensitivity" in meta["gini"] and "grand" in meta["lorenz"]


@pytest.mark.parametrize("measure, extra, msg", [
    ("loss_sensitivity", ["--horizon", "0"], "--horizon must be"),
    ("loss_sensitivity_h1", ["--optimizer", "adam"], "(a proxy) unrolls SGD updates; --optimizer adam is replayed by "
                                                     "the full-horizon --measures loss_sensitivity only"),
    ("loss_sensitivity_h1", ["--dropout", "0.5"], "is Dropout; use the full-horizon --measures loss_sensitivity")])
def test_cli_bad_input_is_one_line_and_writes_nothing(tmp_path, measure, extra, msg):
    out = tmp_path / "s"
    args = ["score", "--dataset", "digits", "--subsample", "100", "--epochs", "1",
            "--measures", measure, "--quiet", "--out", str(out), *extra]
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 1 and msg in r.output and r.output.startswith("Error:")
    assert not out.exists() and not (tmp_path / "s.partial").exists()


def test_epoch_order_is_what_the_hook_records(tiny_arrays):
    hook = U.ExactSensitivityHook(120, np.arange(120))
    _run(tiny_arrays, [hook], epochs=1)
    assert np.array_equal(np.concatenate(hook.idx), epoch_order(120, 0, 0, None).numpy())


class _Recorder(Hook):
    """θ_s, the momentum buffer entering step s, the batch and the lr of every step."""

    def __init__(self):
        self.steps = []

    def on_step(self, step, run):
        opt = run.optimizer
        bufs = [opt.state.get(p, {}).get("momentum_buffer") for p in run.model.parameters()]
        names = [k for k, _ in run.model.named_parameters()]
        bufs = None if any(b is None for b in bufs) else {k: b.detach().clone() for k, b in zip(names, bufs)}
        self.steps.append((U.params_of(run.model), bufs, step.idx.clone(), float(step.lr)))

    def after_step(self, step, run):
        self.final = U.params_of(run.model)


@pytest.mark.parametrize("momentum, wd", [(0.0, 0.0), (0.9, 1e-2)])
def test_next_batch_probe_equals_brute_force_through_one_sgd_step_float64(tiny_arrays, momentum, wd):
    """--probe next-batch: L_{s+1} = mean loss of B_{s+1} at θ_{s+1}; ∂L_{s+1}/∂x_i by plain autograd through
    the functional SGD step s (float64), the last step with the fixed probe; ḡ = Σ_s ‖·‖₁ / T."""
    x = torch.as_tensor(tiny_arrays[0], dtype=torch.float64)
    y = torch.as_tensor(tiny_arrays[1])
    probe = np.arange(0, 120, 2)
    hook = TR.LossSensitivityHook(120, probe, horizon=1, probe_mode="next-batch")
    rec = _Recorder()
    cfg = TrainConfig(epochs=3, batch_size=32, lr=0.3, momentum=momentum, weight_decay=wd, schedule="cosine")
    train(lambda: tiny_mlp(6, 8, 4), ArraySource(x.numpy(), y.numpy(), torch.device("cpu")), cfg,
          hooks=[hook, rec], progress=False)
    model = tiny_mlp(6, 8, 4)
    T = len(rec.steps)
    assert T == 12 and int(hook.steps) == T and int(hook.last_step_fixed) == 1
    want = np.zeros(120)
    for s, (theta, bufs, b, lr) in enumerate(rec.steps):
        X = x.clone().requires_grad_(True)
        th = {k: v.clone().requires_grad_(True) for k, v in theta.items()}
        new, _ = U.sgd_step(model, th, bufs, X[b], y[b], lr, momentum, wd)
        nxt = rec.final if s + 1 == T else rec.steps[s + 1][0]
        assert max(float((new[k] - nxt[k]).detach().abs().max()) for k in new) < 1e-6  # replay = training
        pb = torch.as_tensor(probe) if s + 1 == T else rec.steps[s + 1][2]
        loss = F.cross_entropy(functional_call(model, new, (x[pb],)), y[pb])  # next batch's inputs constant
        (gx,) = torch.autograd.grad(loss, X)
        outside = torch.ones(120, dtype=torch.bool)
        outside[b] = False
        assert float(gx[b].abs().sum()) > 0 and float(gx[outside].abs().sum()) == 0  # only B_s moves L_{s+1}
        want += gx.abs().sum(1).numpy()
    np.testing.assert_allclose(hook.values()["loss_sensitivity_h1"], want / T, rtol=1e-5, atol=1e-12)
    meta = hook.meta()["loss_sensitivity_h1"]
    assert meta["probe"] == "next-batch" and meta["steps_with_fixed_probe"] == 1
    assert any("unbiased" in a for a in meta["approximations"])


class _Boom(Hook):
    def __init__(self, armed):
        self.armed = armed

    def on_step(self, step, run):
        if self.armed and step.epoch == 1:
            raise KeyboardInterrupt


def test_next_batch_resume_keeps_the_pending_step(tiny_arrays, tmp_path):
    """The step pending at an epoch end (θ_s, B_s waiting for B_{s+1}) survives a checkpoint and resume."""
    def go(hooks, ckpt=None):
        cfg = TrainConfig(epochs=2, batch_size=16, lr=0.1, momentum=0.9, weight_decay=1e-3)
        src = ArraySource(tiny_arrays[0], tiny_arrays[1], torch.device("cpu"))
        train(lambda: tiny_mlp(6, 8, 4, torch.float32), src,
              cfg, hooks=hooks, checkpoint_dir=ckpt, progress=False)

    full = TR.LossSensitivityHook(120, np.arange(120), probe_mode="next-batch")
    go([full, _Boom(False)])
    with pytest.raises(KeyboardInterrupt):
        go([TR.LossSensitivityHook(120, np.arange(120), probe_mode="next-batch"), _Boom(True)], tmp_path)
    resumed = TR.LossSensitivityHook(120, np.arange(120), probe_mode="next-batch")
    go([resumed, _Boom(False)], tmp_path)
    assert int(resumed.steps) == int(full.steps) == 16
    np.testing.assert_allclose(resumed.values()["loss_sensitivity_h1"], full.values()["loss_sensitivity_h1"], rtol=1e-6)


def test_next_batch_is_refused_where_it_does_not_apply():
    with pytest.raises(ValidationError, match="--horizon 1 only"):
        TR.LossSensitivityHook(10, np.arange(10), horizon=2, probe_mode="next-batch")
    with pytest.raises(ValidationError, match="--include-direct is not supported"):
        TR.LossSensitivityHook(10, np.arange(10), include_direct=True, probe_mode="next-batch")
    with pytest.raises(ValidationError, match="--probe must be one of fixed, next-batch"):
        MeasureOptions(probe="batch")


def test_cli_probe_next_batch_is_in_meta_and_refused_with_the_full_horizon(tmp_path):
    base = ["score", "--dataset", "digits", "--subsample", "100", "--epochs", "2", "--widths", "8",
            "--quiet", "--probe", "next-batch"]
    r = CliRunner().invoke(cli, [*base, "--measures", "loss_sensitivity_h1", "--out", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    note = json.loads((tmp_path / "a" / "meta.json").read_text())["measure_notes"]["loss_sensitivity_h1"]
    assert note["probe"] == "next-batch" and note["steps_with_fixed_probe"] == 1
    for extra in (["--horizon", "all"], []):
        r = CliRunner().invoke(cli, [*base, "--measures", "loss_sensitivity", *extra, "--out", str(tmp_path / "b")])
        assert r.exit_code == 1 and "--probe next-batch belongs to the one-step proxy" in r.output
        assert not (tmp_path / "b").exists()
