"""The full-horizon loss sensitivity: exact mode against finite differences for the whole ḡ, sgd_step against
torch.optim.SGD, the sampled estimator against exact mode (K = T, unbiasedness, Spearman), per-class, CLI."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from click.testing import CliRunner
from nets import central_fd, fd_problem, replay_sgd, tiny_mlp, unrolled_sensitivity
from scipy.stats import spearmanr
from torch.func import functional_call

from sensprune.cli import cli
from sensprune.config import TrainConfig
from sensprune.errors import ValidationError
from sensprune.measures.loss_sensitivity import sampled as S
from sensprune.measures.loss_sensitivity import exact as U
from sensprune.measures.per_class import PerClassFullHook
from sensprune.measures.loss_sensitivity.proxy import LossSensitivityHook
from sensprune.train.loop import train
from sensprune.train.sources import ArraySource


def test_exact_mode_whole_measure_matches_central_finite_differences_float64():
    """ḡ_x = (1/T) Σ_t ‖∂L_t/∂x‖₁ from finite differences of every L_t (not only the last), L1 norms, 1/T."""
    model, x, y, batches, lrs = fd_problem()
    w = torch.tensor([1.0, 0.5, 2.0, 1.5, 1.0, 0.7], dtype=torch.float64)
    kw = dict(momentum=0.9, weight_decay=1e-2, weights=w)
    probe = np.array([0, 2, 3, 5])
    gbar = unrolled_sensitivity(model, x, y, batches, lrs, **kw, probe=probe)

    def losses(xx):  # L_t for t = 1..T, probe inputs constant (indirect effect only)
        out = []
        for t in range(1, len(lrs) + 1):
            theta = replay_sgd(model, xx, y, batches[:t], lrs[:t], **kw)
            out.append(float(F.cross_entropy(functional_call(model, theta, (x[probe],)), y[probe])))
        return np.array(out)

    fd = central_fd(losses, x)  # (T, N, D)
    want = np.abs(fd).sum(2).mean(0)
    assert np.abs(want).min() > 0
    np.testing.assert_allclose(gbar, want, rtol=1e-3)


@pytest.mark.parametrize("momentum, wd, weighted", [(0.0, 0.0, False), (0.9, 5e-3, False), (0.9, 5e-3, True)])
def test_sgd_step_equals_torch_optim_sgd(momentum, wd, weighted):
    model = tiny_mlp(dtype=torch.float64)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(12, 4, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (12,), generator=g)
    wts = torch.rand(12, generator=g, dtype=torch.float64) + 0.5 if weighted else None
    opt = torch.optim.SGD(model.parameters(), lr=0.3, momentum=momentum, weight_decay=wd)
    theta, bufs = U.params_of(model), None
    for step, lr in enumerate([0.3, 0.2, 0.1]):
        b = torch.arange(4) + 4 * step
        for grp in opt.param_groups:
            grp["lr"] = lr
        opt.zero_grad()
        losses = F.cross_entropy(model(x[b]), y[b], reduction="none")
        (losses.mean() if wts is None else (losses * wts[b]).sum() / len(b)).backward()
        opt.step()
        theta = {k: v.requires_grad_(True) for k, v in theta.items()}
        theta, bufs = U.sgd_step(model, theta, bufs, x[b], y[b], lr, momentum, wd, create_graph=False,
                                 wb=None if wts is None else wts[b])
        theta = {k: v.detach() for k, v in theta.items()}
        for k, p in model.named_parameters():
            torch.testing.assert_close(theta[k], p.detach(), rtol=1e-12, atol=1e-12)


def _train(data, hooks, epochs=2, batch_size=16, weights=None, momentum=0.9):
    cfg = TrainConfig(epochs=epochs, batch_size=batch_size, lr=0.1, momentum=momentum, weight_decay=1e-3,
                      schedule="cosine")
    train(lambda: tiny_mlp(6, 8, 4, torch.float32), ArraySource(data[0], data[1], torch.device("cpu")), cfg,
          hooks=hooks, weights=weights, progress=False)


def test_sampled_with_every_step_equals_exact_mode(tiny_arrays):
    probe = np.arange(0, 120, 3)
    w = np.random.default_rng(0).uniform(0.5, 1.5, 120).astype(np.float32)
    exact, every = U.ExactSensitivityHook(120, probe), S.SampledSensitivityHook(120, probe, probe_times="all")
    _train(tiny_arrays, [exact, every], weights=w)
    assert list(every.times) == list(range(1, 17)) and every.meta()["loss_sensitivity"]["mode"].endswith("(= exact)")
    np.testing.assert_allclose(every.value, exact.value, rtol=1e-5)


def test_sampled_is_the_stratified_estimate_of_exact_and_unbiased(tiny_arrays):
    """The hook's value is Σ_k |S_k|/T · g^{t_k} with each g^{t_k} exact through the whole history, and the mean
    of that estimate over sampling seeds converges to exact mode (unbiased)."""
    probe = np.arange(120)
    rec = U.ExactSensitivityHook(120, probe)
    hooks = [S.SampledSensitivityHook(120, probe, probe_times=3, seed=s) for s in range(3)]
    _train(tiny_arrays, [rec, *hooks], epochs=3)
    src = ArraySource(*tiny_arrays[:2], torch.device("cpu"))
    batches = [torch.as_tensor(b) for b in rec.idx]
    theta0 = {k: torch.as_tensor(v) for k, v in rec.theta0.items()}
    per_step = unrolled_sensitivity(tiny_mlp(6, 8, 4, torch.float32), src.x, src.y, batches, rec.lrs, params=theta0,
                                    momentum=0.9, weight_decay=1e-3, probe=probe, per_step=True)  # (T, N)
    T = len(batches)
    np.testing.assert_allclose(per_step.mean(0), rec.value, rtol=1e-6)
    for h in hooks:
        want = (h.strata / T) @ per_step[h.times - 1]
        np.testing.assert_allclose(h.value, want, rtol=2e-4)
    est = np.stack([(s_ / T) @ per_step[t - 1] for t, s_ in (S.sample_probe_times(T, 3, seed) for seed in range(400))])
    err_mean = np.abs(est.mean(0) - rec.value) / rec.value
    se = est.std(0) / np.sqrt(len(est)) / rec.value
    assert np.all(err_mean < 4 * se + 1e-9), (err_mean / se).max()
    assert np.median(np.abs(est[0] - rec.value) / rec.value) > 3 * np.median(err_mean)  # one draw is noisier


def test_default_estimator_ranks_like_exact_mode_spearman(tiny_arrays):
    """docs/measures.md §1: the default (K = 16 sampled steps) against exact mode, and the one-step proxy beside it."""
    probe = np.arange(120)
    exact = U.ExactSensitivityHook(120, probe)
    default = S.SampledSensitivityHook(120, probe)  # K = DEFAULT_PROBE_TIMES
    h1 = LossSensitivityHook(120, probe, horizon=1)
    _train(tiny_arrays, [exact, default, h1], epochs=6, batch_size=16)  # T = 48
    rho = spearmanr(default.value, exact.value).correlation
    rho_h1 = spearmanr(h1.values()["loss_sensitivity_h1"], exact.value).correlation
    print(f"Spearman vs exact: sampled K=16 {rho:.3f}, horizon 1 {rho_h1:.3f}")
    assert rho >= 0.9
    assert len(default.times) == S.DEFAULT_PROBE_TIMES == 16


def test_per_class_full_horizon_equals_exact_restricted_probes(tiny_arrays):
    y = tiny_arrays[1]
    probe = np.arange(120)
    pc = PerClassFullHook(y, 4, probe, probe_times="all")
    exacts = [U.ExactSensitivityHook(120, probe[y == i]) for i in range(4)]
    _train(tiny_arrays, [pc, *exacts], epochs=1)
    want = np.array([[exacts[i].value[y == j].mean() for j in range(4)] for i in range(4)])
    np.testing.assert_allclose(pc.matrix(), want, rtol=1e-5)
    assert pc.values() == {} and "per_class" in pc.meta() and "loss_sensitivity" not in pc.meta()


def test_sampled_state_roundtrip(tiny_arrays):
    hook = S.SampledSensitivityHook(120, np.arange(120), probe_times=4)
    _train(tiny_arrays, [hook])
    other = S.SampledSensitivityHook(120, np.arange(120), probe_times=4)
    other.load_state_dict({k: np.asarray(v) for k, v in hook.state_dict().items()})
    assert np.array_equal(other.times, hook.times) and np.array_equal(other.value, hook.value)


def test_smallest_memory_budget_checkpoints_and_splits_sweeps_with_the_same_values(tiny_arrays):
    """The smallest budget that works (one adjoint per sweep, a checkpoint every ⌈√T⌉ steps, segments recomputed)
    gives the values of the unconstrained run (every state stored, all adjoints in one sweep)."""
    from sensprune.measures.loss_sensitivity.plan import smallest_budget

    probe = np.arange(0, 120, 2)
    a = S.SampledSensitivityHook(120, probe, 6, seed=3)
    _train(tiny_arrays, [a], epochs=3)  # T = 24
    assert a.plan.stores_every_state and a.adjoints_per_sweep == 6 and a.recomputed_steps == 0
    b = S.SampledSensitivityHook(120, probe, 6, seed=3, memory=smallest_budget(**a.plan_inputs))
    _train(tiny_arrays, [b], epochs=3)
    plan = b.meta()["loss_sensitivity"]["memory_plan"]
    assert plan["checkpoint_interval"] == 5 and not plan["stores_every_state"] and plan["adjoints_per_sweep"] == 1
    assert plan["sweeps"] == 6 and plan["recomputed_steps"] > 0
    np.testing.assert_allclose(b.value, a.value, rtol=1e-5)
    with pytest.raises(ValidationError, match="too small .* the smallest budget that works is about"):
        _train(tiny_arrays, [S.SampledSensitivityHook(120, probe, 6, seed=3,
                                                      memory=smallest_budget(**a.plan_inputs) - 1)], epochs=3)


def test_probe_times_sampling_is_stratified_and_seeded():
    t, s = S.sample_probe_times(10, 3, seed=0)
    assert list(s) == [4, 3, 3] and 1 <= t[0] <= 4 < t[1] <= 7 < t[2] <= 10
    assert np.array_equal(t, S.sample_probe_times(10, 3, seed=0)[0])
    assert list(S.sample_probe_times(5, 5, seed=9)[0]) == [1, 2, 3, 4, 5]
    assert S.check_probe_times("all", 7) == 7 and S.check_probe_times("3", 7) == 3


@pytest.mark.parametrize("bad", ["0", "-3", "1.5", "x", ""])
def test_bad_probe_times_refused(bad):
    with pytest.raises(ValidationError, match="--probe-times must be a positive integer or 'all'"):
        S.parse_probe_times(bad)


def test_too_large_for_memory_is_refused_with_the_fix(monkeypatch):
    monkeypatch.setattr(S, "available_bytes", lambda device="cpu": 10 ** 6)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 1000), torch.nn.ReLU(),
                                torch.nn.Linear(1000, 10))
    with pytest.raises(ValidationError, match="70% of the free memory .* too small .* smallest budget that works is "
                                              "about .* fewer --epochs"):
        S.memory_plan(model, "sgd", n=1000, input_shape=(784,), batch_size=128, steps=1000, adjoints=16,
                      momentum=0.9)


_BASE = ["score", "--dataset", "digits", "--subsample", "100", "--epochs", "2", "--widths", "8",
         "--batch-size", "50", "--quiet"]  # T = 2 epochs x 2 steps = 4


@pytest.mark.parametrize("extra, msg", [
    (["--probe-times", "0"], "--probe-times must be a positive integer or 'all'; got '0'."),
    (["--probe-times", "-3"], "--probe-times must be a positive integer or 'all'; got '-3'."),
    (["--probe-times", "5"], "--probe-times 5 is larger than the number of SGD steps of the warmup (4)"),
    (["--probe-times", "2", "--horizon", "1"], "--probe-times 2 selects the full-horizon loss_sensitivity and "
                                               "--horizon 1 the truncated proxy; give only one"),
    (["--per-class", "--probe-times", "9"], "--probe-times 9 is larger than the number of SGD steps"),
])
def test_cli_probe_times_bad_input_is_one_line_and_writes_nothing(tmp_path, extra, msg):
    out = tmp_path / "s"
    r = CliRunner().invoke(cli, [*_BASE, "--measures", "loss_sensitivity", "--out", str(out), *extra])
    assert r.exit_code in (1, 2) and r.output.startswith("Error:") and msg in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1
    assert not out.exists() and not (tmp_path / "s.partial").exists()


def test_cli_too_large_is_refused_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "available_bytes", lambda device="cpu": 1000)
    out = tmp_path / "s"
    r = CliRunner().invoke(cli, [*_BASE, "--measures", "loss_sensitivity", "--out", str(out)])
    assert r.exit_code == 1 and "is too small" in r.output and "smallest budget that works" in r.output, r.output
    assert not out.exists() and not (tmp_path / "s.partial").exists()


def test_cli_proxy_is_named_as_one(tmp_path):
    out = tmp_path / "s"
    r = CliRunner().invoke(cli, [*_BASE, "--measures", "loss_sensitivity,el2n", "--horizon", "1", "--out", str(out)])
    assert r.exit_code == 0, r.output
    header = (out / "scores.csv").read_text().splitlines()[0].split(",")
    assert "loss_sensitivity_h1" in header and "loss_sensitivity" not in header
    meta = json.loads((out / "meta.json").read_text())
    assert meta["measure_notes"]["loss_sensitivity_h1"]["mode"].startswith("PROXY")
    assert "PROXY" in meta["measures"]["loss_sensitivity_h1"]["description"]
    assert "loss_sensitivity_h1: PROXY: truncated to the last 1 update(s)" in r.output  # the summary says so
    r = CliRunner().invoke(cli, ["report", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    html = (out / "report" / "report.html").read_text()
    assert "<th>estimator</th>" in html and "PROXY: truncated to the last 1 update(s)" in html


def test_cli_default_names_its_estimator_in_summary_and_report(tmp_path):
    out = tmp_path / "s"
    r = CliRunner().invoke(cli, [*_BASE, "--measures", "loss_sensitivity", "--probe-times", "3", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "loss_sensitivity: full horizon, sampled probe steps, K=3 of T=4 steps" in r.output
    meta = json.loads((out / "meta.json").read_text())["measure_notes"]["loss_sensitivity"]
    assert meta["probe_times"] == 3 and len(meta["times"]) == 3 and meta["sampling_seed"] == 0
    r = CliRunner().invoke(cli, ["report", str(out), "--quiet"])
    assert "full horizon, sampled probe steps, K=3 of T=4 steps" in (out / "report" / "report.html").read_text()
