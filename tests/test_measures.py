import numpy as np
import pytest
import torch
import torch.nn.functional as F

from sensprune.errors import ValidationError
from sensprune.measures import MEASURES, check_measures
from sensprune.measures.gini import gini, lorenz
from sensprune.measures.peers import DynamicsHook, el2n, margins
from sensprune.train.hooks import StepInfo
from sensprune.train.models import MLP


class AutogradMLP(MLP):
    """The built-in MLP under another type: the closed forms (proxy_mlp.py) refuse it, so it takes autograd."""


def _step(idx, logits, y):
    logits = torch.tensor(logits, dtype=torch.float64)
    y = torch.tensor(y)
    losses = torch.nn.functional.cross_entropy(logits, y, reduction="none")
    return StepInfo(0, 0, torch.tensor(idx), torch.zeros(len(idx), 1), y, logits, losses, None, 0.1)


def test_gini_hand_values():
    assert gini(np.ones(10)) == pytest.approx(0.0)
    assert gini(np.array([0, 0, 0, 1.0])) == pytest.approx(0.75)
    assert gini(np.array([1.0, 2.0, 3.0])) == pytest.approx(2 * (1 + 4 + 9) / (3 * 6) - 4 / 3)
    assert gini(np.zeros(5)) == 0.0


def test_lorenz_endpoints_and_shape():
    curve = lorenz(np.array([0, 0, 0, 4.0]))
    assert curve.shape == (101,)
    assert curve[0] == 0 and curve[-1] == pytest.approx(1.0)
    assert curve[75] == pytest.approx(0.0)
    assert np.all(np.diff(curve) >= -1e-12)


def test_dynamics_hand_checkable_sequence():
    """Example 0: correct, wrong, correct, wrong → 2 forgetting events; example 1: never correct."""
    hook = DynamicsHook(2)
    seq = [([[2.0, 0.0], [2.0, 0.0]], [0, 1]),
           ([[0.0, 1.0], [3.0, 0.0]], [0, 1]),
           ([[1.0, 0.0], [1.0, 0.0]], [0, 1]),
           ([[0.0, 2.0], [1.0, 0.5]], [0, 1])]
    for logits, y in seq:
        hook.on_step(_step([0, 1], logits, y), None)
    v = hook.values()
    assert v["forgetting"][0] == 2
    assert v["forgetting"][1] == 5  # never learned: presentations + 1
    assert v["correctness"].tolist() == [0.5, 1.0]
    # AUM of example 0: margins 2, -1, 1, -2 → mean 0 → stored −AUM = 0
    assert v["aum"][0] == pytest.approx(0.0)
    assert v["aum"][1] == pytest.approx(-np.mean([-2.0, -3.0, -1.0, -0.5]))
    p0 = torch.softmax(torch.tensor([[2.0, 0], [0, 1.0], [1.0, 0], [0, 2.0]], dtype=torch.float64), 1)[:, 0].numpy()
    assert v["confidence"][0] == pytest.approx(1 - p0.mean())
    assert v["variability"][0] == pytest.approx(p0.std())
    losses = -np.log(p0)
    assert v["loss"][0] == pytest.approx(losses.mean())


def test_dynamics_whole_epoch_fold_equals_the_indexed_fold_and_a_repeat_leaves_others_unseen():
    """The contiguous path (a step or epoch covering all N once) gives what per-index updates give; a batch of
    N rows with a repeat (a sampler with replacement) is not mistaken for a whole epoch."""
    rng = np.random.default_rng(0)
    logits, y = rng.normal(size=(6, 3)), rng.integers(0, 3, 6)
    perm = rng.permutation(6)
    whole, parts = DynamicsHook(6), DynamicsHook(6)
    for _ in range(2):
        whole.on_step(_step(perm.tolist(), logits[perm].tolist(), y[perm].tolist()), None)
        whole.on_epoch_end(0, None)
        for half in (perm[:3], perm[3:]):
            parts.on_step(_step(half.tolist(), logits[half].tolist(), y[half].tolist()), None)
            parts.on_epoch_end(0, None)  # three of six rows per fold: the indexed path
    for k, v in whole.values().items():
        np.testing.assert_allclose(v, parts.values()[k], rtol=1e-12, err_msg=k)
    rep = DynamicsHook(6)
    idx = [0, 1, 2, 3, 4, 4]  # six rows, example 5 absent
    rep.on_step(_step(idx, logits[idx].tolist(), y[idx].tolist()), None)
    v = rep.values()
    assert np.isnan(v["loss"][5]) and np.isfinite(v["loss"][:5]).all()


def test_dynamics_fold_matches_per_row_torch_reference_with_ties_and_the_loops_correct_flags():
    """The numpy fold (float64 softmax, AUM margin from the transposed logits) against torch row by row;
    ``StepInfo.correct`` (the loop's argmax == y) and the hook's own argmax give the same arrays, ties included."""
    rng = np.random.default_rng(3)
    n, k = 40, 5
    logits = torch.tensor(rng.integers(-2, 3, size=(n, k)), dtype=torch.float32)  # many tied maxima
    y = torch.tensor(rng.integers(0, k, n))
    losses = F.cross_entropy(logits, y, reduction="none")
    given, own = DynamicsHook(n), DynamicsHook(n)
    perm = torch.tensor(rng.permutation(n))
    for part in (perm[:17], perm[17:]):
        given.on_step(StepInfo(0, 0, part, None, y[part], logits[part], losses[part], None, 0.1,
                               logits[part].argmax(1) == y[part]), None)
        own.on_step(StepInfo(0, 0, part, None, y[part], logits[part], losses[part], None, 0.1), None)
    a, b = given.values(), own.values()
    for name in a:
        np.testing.assert_array_equal(a[name], b[name], err_msg=name)
    lg = logits.double()
    np.testing.assert_allclose(a["aum"], -margins(lg, y).numpy(), rtol=1e-12)
    np.testing.assert_allclose(a["confidence"], 1 - torch.softmax(lg, 1)[torch.arange(n), y].numpy(), rtol=1e-12)
    np.testing.assert_array_equal(a["correctness"], 1.0 - (logits.argmax(1) == y).double().numpy())


def test_dynamics_state_roundtrip():
    a = DynamicsHook(2)
    a.on_step(_step([0, 1], [[2.0, 0.0], [0.0, 1.0]], [0, 0]), None)
    b = DynamicsHook(2)
    b.load_state_dict(a.state_dict())
    for k in a.values():
        np.testing.assert_array_equal(a.values()[k], b.values()[k])


def test_el2n_and_margin_by_hand():
    logits = torch.tensor([[0.0, 0.0], [np.log(3.0), 0.0]], dtype=torch.float64)
    y = torch.tensor([0, 1])
    e = el2n(logits, y).numpy()
    assert e[0] == pytest.approx(np.sqrt(0.5 ** 2 * 2))
    assert e[1] == pytest.approx(np.sqrt(0.75 ** 2 * 2))
    assert margins(logits, y).tolist() == pytest.approx([0.0, -np.log(3.0)])


def test_every_measure_states_a_direction():
    for spec in MEASURES.values():
        assert spec.direction.startswith("higher")


def test_unknown_measure_named():
    with pytest.raises(ValidationError, match="'bogus'"):
        check_measures(["el2n", "bogus"])


def test_check_measures_is_a_pure_lookup_of_truncated_proxies():
    from sensprune.measures import GROUPS, hook_builder, measure_spec

    before = (dict(MEASURES), dict(GROUPS))
    assert check_measures(["loss_sensitivity_h7", "el2n", "loss_sensitivity_h7"]) == ["loss_sensitivity_h7", "el2n"]
    assert (dict(MEASURES), dict(GROUPS)) == before  # nothing registered as a side effect
    spec = measure_spec("loss_sensitivity_h7")
    assert spec.group == "loss_sensitivity_h7" and "last 7 SGD update" in spec.description
    assert callable(hook_builder(spec.group)) and measure_spec("loss_sensitivity_h0") is None
    assert measure_spec("loss_sensitivity_h1") is MEASURES["loss_sensitivity_h1"]


# --- horizon-1 proxy: the one double backward, sample weights, --probe-every -------------------------------

def _h1_input_grad(model, theta, xb, yb, v, lr, wb=None):
    """The h1 proxy's input gradient for one direction v."""
    from sensprune.measures.loss_sensitivity.proxy import h1_input_grads

    return h1_input_grads(model, theta, xb, yb, [v], lr, wb)[0]


def _tiny_run(hooks, tiny_arrays, ckpt=None, epochs=2, weights=None):
    from sensprune.config import TrainConfig
    from sensprune.train.loop import train
    from sensprune.train.models import MLP
    from sensprune.train.sources import ArraySource

    x, y = tiny_arrays[0], tiny_arrays[1]
    cfg = TrainConfig(epochs=epochs, batch_size=16, lr=0.1, momentum=0.9, weight_decay=1e-3)
    return train(lambda: MLP(4, (6,), widths=(8,)), ArraySource(x, y, torch.device("cpu")), cfg, hooks=hooks,
                 weights=weights, checkpoint_dir=ckpt, progress=False)


def test_h1_several_vectors_equal_one_at_a_time_and_weights_enter_the_batch_loss():
    from torch.func import functional_call

    from sensprune.measures.loss_sensitivity.proxy import h1_input_grads
    from sensprune.train.models import MLP

    torch.manual_seed(0)
    model = MLP(3, (5,), widths=(7,)).double()
    x, y = torch.randn(6, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    w = torch.linspace(0.5, 2.0, 6, dtype=torch.float64)
    before = [p.detach().clone() for p in model.parameters()]
    theta = [p + 0.01 for p in before]
    vs = [[torch.randn_like(t) for t in theta] for _ in range(2)]
    both = h1_input_grads(model, theta, x, y, vs, 0.3, w)
    for v, g in zip(vs, both):
        assert torch.equal(g, _h1_input_grad(model, theta, x, y, v, 0.3, w))
    # by hand: -lr * d/dx [grad_theta (sum_i w_i l_i / B) . v] with functional_call
    names = [k for k, _ in model.named_parameters()]
    leaf = x.clone().requires_grad_(True)
    th = {k: t.clone().requires_grad_(True) for k, t in zip(names, theta)}
    losses = F.cross_entropy(functional_call(model, th, (leaf,)), y, reduction="none")
    g = torch.autograd.grad((losses * w).sum() / 6, list(th.values()), create_graph=True)
    (want,) = torch.autograd.grad(-0.3 * sum((a * b).sum() for a, b in zip(g, vs[0])), leaf)
    torch.testing.assert_close(both[0], want, rtol=1e-10, atol=1e-12)
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))  # parameters restored


@pytest.mark.parametrize("widths", [(7,), (6, 5)])
@pytest.mark.parametrize("weighted", [False, True])
def test_h1_mlp_closed_form_equals_autograd(widths, weighted, monkeypatch):
    from sensprune.measures.loss_sensitivity import proxy as truncated
    from sensprune.train.models import MLP

    torch.manual_seed(1)
    model = MLP(3, (1, 4, 4), widths=widths).double()  # input (B, 1, 4, 4): the Flatten is part of the model
    x, y = torch.randn(9, 1, 4, 4, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2, 2, 1, 0])
    w = torch.linspace(0.5, 2.0, 9, dtype=torch.float64) if weighted else None
    before = [p.detach().clone() for p in model.parameters()]
    theta = [p.detach() + 0.1 * torch.randn_like(p) for p in before]
    vs = [[torch.randn_like(t) for t in theta] for _ in range(3)]
    want = truncated._h1_input_grads_autograd(model, theta, x, y, vs, 0.3, w)

    def no_autograd(*args):
        raise AssertionError("the built-in MLP must take the closed form")

    monkeypatch.setattr(truncated, "_h1_input_grads_autograd", no_autograd)
    got = truncated.h1_input_grads(model, theta, x, y, vs, 0.3, w)
    assert len(got) == 3
    for g, h in zip(got, want):
        assert g.shape == x.shape and g.dtype == torch.float64
        torch.testing.assert_close(g, h, rtol=1e-10, atol=1e-14)
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))  # parameters untouched
    assert all(p.grad is None for p in model.parameters())


def test_h1_mlp_falls_back_to_autograd_where_the_closed_form_does_not_apply(monkeypatch):
    from sensprune.measures.loss_sensitivity import proxy as truncated
    from sensprune.train.models import MLP

    torch.manual_seed(2)
    x, y = torch.randn(6, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])
    calls = []
    autograd = truncated._h1_input_grads_autograd

    def counted(*args):
        calls.append(1)
        return autograd(*args)

    monkeypatch.setattr(truncated, "_h1_input_grads_autograd", counted)
    # Dropout in train mode draws a mask (and random numbers): autograd, with the same draws
    drop = MLP(3, (5,), widths=(7, 4), dropout=0.5).double().train()
    theta = [p.detach().clone() for p in drop.parameters()]
    vs = [[torch.randn_like(t) for t in theta] for _ in range(2)]
    torch.manual_seed(3)
    got = truncated.h1_input_grads(drop, theta, x, y, vs, 0.3)
    torch.manual_seed(3)
    want = autograd(drop, theta, x, y, vs, 0.3)
    assert len(calls) == 1
    for g, h in zip(got, want):
        assert torch.equal(g, h)
    # in eval mode Dropout is the identity: the closed form, equal to autograd
    drop.eval()
    got = truncated.h1_input_grads(drop, theta, x, y, vs, 0.3)
    assert len(calls) == 1
    for g, h in zip(got, autograd(drop, theta, x, y, vs, 0.3)):
        torch.testing.assert_close(g, h, rtol=1e-10, atol=1e-14)
    # a v with a missing part, a v in another dtype, a frozen parameter: autograd
    model = MLP(3, (5,), widths=(7,)).double()
    theta = [p.detach().clone() for p in model.parameters()]
    v = [torch.randn_like(t) for t in theta]
    truncated.h1_input_grads(model, theta, x, y, [v[:1] + [None] + v[2:]], 0.3)
    assert len(calls) == 2
    truncated.h1_input_grads(model, theta, x, y, [[t.float() for t in v]], 0.3)
    assert len(calls) == 3
    model.net[1].bias.requires_grad_(False)
    truncated.h1_input_grads(model, [t for j, t in enumerate(theta) if j != 1], x, y,
                             [[t for j, t in enumerate(v) if j != 1]], 0.3)
    assert len(calls) == 4


@pytest.mark.parametrize("widths", [(7,), (6, 5)])
def test_probe_grad_mlp_closed_form_equals_autograd(widths):
    from sensprune.measures.loss_sensitivity.proxy_mlp import mlp_probe_grad
    from sensprune.train.models import MLP

    torch.manual_seed(4)
    model = MLP(3, (1, 4, 4), widths=widths).double()  # input (B, 1, 4, 4): the Flatten is part of the model
    x, y = torch.randn(11, 1, 4, 4, dtype=torch.float64), torch.randint(0, 3, (11,))
    params = list(model.parameters())
    before = [p.detach().clone() for p in params]
    want = torch.autograd.grad(F.cross_entropy(model(x), y), params)
    got = mlp_probe_grad(model, params, x, y)
    assert len(got) == len(want)
    for g, h in zip(got, want):  # parameters() order, as autograd returns them
        assert g.shape == h.shape and g.dtype == torch.float64 and not g.requires_grad
        torch.testing.assert_close(g, h, rtol=1e-10, atol=1e-14)
    assert all(torch.equal(p, b) for p, b in zip(model.parameters(), before))
    assert all(p.grad is None for p in model.parameters())


def test_probe_grad_mlp_falls_back_where_the_h1_closed_form_does():
    from sensprune.measures.loss_sensitivity.proxy_mlp import mlp_h1, mlp_probe_grad
    from sensprune.train.models import MLP

    torch.manual_seed(5)
    x, y = torch.randn(6, 5, dtype=torch.float64), torch.tensor([0, 1, 2, 0, 1, 2])

    def both(model, x=x, y=y):
        params = [p for p in model.parameters() if p.requires_grad]
        theta = [p.detach().clone() for p in params]
        v = [torch.randn_like(t) for t in theta]
        fast, h1 = mlp_probe_grad(model, params, x, y), mlp_h1(model, theta, x, y, [v], 0.3)
        assert (fast is None) == (h1 is None)
        return fast is not None

    drop = MLP(3, (5,), widths=(7, 4), dropout=0.5).double()
    assert not both(drop.train())  # Dropout in train mode draws a mask
    assert both(drop.eval())
    model = MLP(3, (5,), widths=(7,)).double()
    assert both(model)
    assert not both(model, x=x.float())  # dtypes differ
    assert not both(model, y=y.int()) and not both(model, x=x[:0], y=y[:0])
    handle = model.net[1].register_forward_hook(lambda *args: None)
    assert not both(model)
    handle.remove()
    assert both(model)
    model.net[1].bias.requires_grad_(False)
    assert not both(model)
    assert not both(AutogradMLP(3, (5,), widths=(7,)).double())


def test_h1_hook_closed_forms_equal_autograd_end_to_end(tiny_arrays):
    """The built-in MLP (closed forms) and a subclass of it (autograd for v and the double backward) train
    identically; the hook's values agree to float32 rounding, and the step's own batch is the gathered one."""
    from sensprune.config import TrainConfig
    from sensprune.measures.loss_sensitivity import proxy as truncated
    from sensprune.train.loop import train
    from sensprune.train.models import MLP
    from sensprune.train.sources import ArraySource

    class Spy(truncated.LossSensitivityHook):
        def after_step(self, step, run):
            v, _ = self._probe_grad(run)
            (b1, (g1,)), (b2, (g2,)) = self._h1(run, [v], step), self._h1(run, [v])
            assert torch.equal(b1, b2) and torch.equal(g1, g2)
            super().after_step(step, run)

    x, y = tiny_arrays[0], tiny_arrays[1]
    cfg = TrainConfig(epochs=2, batch_size=16, lr=0.1, momentum=0.9, weight_decay=1e-3)
    out = {}
    for cls in (MLP, AutogradMLP):
        hooks = [Spy(120, np.arange(0, 120, 2)), truncated.LossSensitivityHook(120, np.arange(120), probe_every=3)]
        train(lambda: cls(4, (6,), widths=(8, 5)), ArraySource(x, y, torch.device("cpu")), cfg, hooks=hooks,
              progress=False)
        out[cls] = [h.values()["loss_sensitivity_h1"] for h in hooks]
    for a, b in zip(out[MLP], out[AutogradMLP]):
        assert np.all(a > 0)
        np.testing.assert_allclose(a, b, rtol=2e-5)


def test_probe_every_one_is_the_exact_proxy_and_k_reuses_v_with_a_measured_error(tiny_arrays):
    from sensprune.measures.loss_sensitivity.proxy import LossSensitivityHook

    probe = np.arange(0, 120, 2)
    exact, every1, every4 = (LossSensitivityHook(120, probe), LossSensitivityHook(120, probe, probe_every=1),
                             LossSensitivityHook(120, probe, probe_every=4))
    _tiny_run([exact, every1, every4], tiny_arrays)
    a, b, c = (h.values()["loss_sensitivity_h1"] for h in (exact, every1, every4))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c) and np.isfinite(c).all()
    assert np.corrcoef(a, c)[0, 1] > 0.5  # the same quantity, with v up to 3 steps stale (early training)
    meta = every4.meta()["loss_sensitivity_h1"]
    assert meta["probe_every"] == 4 and any("reused" in s for s in meta["approximations"])
    err = meta["probe_every_error"]
    assert err["refreshes_compared"] == 3  # 16 steps: refreshes at steps 1, 5, 9, 13; the first has no stale v
    assert 0 < err["v_rel_error_l2"]["mean"] <= err["v_rel_error_l2"]["max"]
    assert 0 < err["contribution_rel_error_l1"]["mean"] <= err["contribution_rel_error_l1"]["max"]
    assert "probe_every_error" not in exact.meta()["loss_sensitivity_h1"]


def test_probe_every_survives_a_checkpoint_resume(tiny_arrays, tmp_path):
    from sensprune.measures.loss_sensitivity.proxy import LossSensitivityHook
    from sensprune.train.hooks import Hook

    class Boom(Hook):
        def on_step(self, step, run):
            if step.epoch == 1:
                raise KeyboardInterrupt

    full = LossSensitivityHook(120, np.arange(120), probe_every=3)
    _tiny_run([full], tiny_arrays)
    with pytest.raises(KeyboardInterrupt):
        _tiny_run([LossSensitivityHook(120, np.arange(120), probe_every=3), Boom()], tiny_arrays, tmp_path)
    resumed = LossSensitivityHook(120, np.arange(120), probe_every=3)
    _tiny_run([resumed], tiny_arrays, tmp_path)
    np.testing.assert_allclose(resumed.values()["loss_sensitivity_h1"], full.values()["loss_sensitivity_h1"],
                               rtol=1e-6)
    assert resumed.meta() == full.meta()


@pytest.mark.parametrize("kw", [{"probe_every": 2, "horizon": 2},
                                {"probe_every": 2, "include_direct": True},
                                {"probe_every": 2, "probe_mode": "next-batch"}])
def test_probe_every_is_refused_where_it_does_not_apply(kw):
    from sensprune.measures.loss_sensitivity.proxy import LossSensitivityHook

    with pytest.raises(ValidationError, match="--probe-every"):
        LossSensitivityHook(10, np.arange(10), **kw)


def test_weighted_run_h1_uses_the_weighted_batch_loss(tiny_arrays):
    """With sample weights the update of step s is on sum(w_i l_i)/|B|: one step, checked by hand."""
    from sensprune.config import TrainConfig
    from sensprune.measures.loss_sensitivity.proxy import LossSensitivityHook
    from sensprune.train.hooks import Hook
    from sensprune.train.loop import train
    from sensprune.train.models import MLP
    from sensprune.train.sources import ArraySource

    class Rec(Hook):
        def on_step(self, step, run):
            self.theta = [p.detach().clone() for p in run.model.parameters()]

        def after_step(self, step, run):
            self.v = torch.autograd.grad(F.cross_entropy(run.model(run.train.x), run.train.y),
                                         list(run.model.parameters()))

    x, y = tiny_arrays[0], tiny_arrays[1]
    w = np.where(np.arange(120) < 60, 2.0, 0.5)
    hook, rec = LossSensitivityHook(120, np.arange(120)), Rec()
    res = train(lambda: MLP(4, (6,), widths=(8,)), ArraySource(x, y, torch.device("cpu")),
                TrainConfig(epochs=1, batch_size=120, lr=0.1), hooks=[hook, rec], weights=w, progress=False)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    want = _h1_input_grad(res.model, rec.theta, xt, yt, rec.v, 0.1, torch.as_tensor(w, dtype=torch.float32))
    unweighted = _h1_input_grad(res.model, rec.theta, xt, yt, rec.v, 0.1)
    got = hook.values()["loss_sensitivity_h1"]
    np.testing.assert_allclose(got, want.abs().sum(1).double().numpy(), rtol=1e-5)
    assert not np.allclose(got, unweighted.abs().sum(1).double().numpy(), rtol=1e-2)


def test_probe_every_reuses_exactly_the_v_of_its_last_refresh(tiny_arrays):
    """Reference by hand: v = grad L_P at theta_1 (after the first update) for every step when k > T."""
    from sensprune.measures.loss_sensitivity.proxy import LossSensitivityHook
    from sensprune.train.hooks import Hook

    class Rec(Hook):
        def __init__(self):
            self.steps, self.v0 = [], None

        def on_step(self, step, run):
            self.steps.append(([p.detach().clone() for p in run.model.parameters()], step.idx.clone(), step.lr))

        def after_step(self, step, run):
            if self.v0 is None:
                xp, yp = run.train.x[::2], run.train.y[::2]
                params = list(run.model.parameters())
                self.v0 = torch.autograd.grad(F.cross_entropy(run.model(xp), yp), params)
                self.model, self.x, self.y = run.model, run.train.x, run.train.y

    hook, rec = LossSensitivityHook(120, np.arange(0, 120, 2), probe_every=10 ** 6), Rec()
    res = _tiny_run([hook, rec], tiny_arrays)
    want = np.zeros(120)
    final = [p.detach().clone() for p in res.model.parameters()]
    for theta, b, lr in rec.steps:
        g = _h1_input_grad(res.model, theta, rec.x[b], rec.y[b], rec.v0, lr)
        want[b.numpy()] += g.abs().flatten(1).sum(1).double().numpy()
    assert all(torch.equal(p, q) for p, q in zip(res.model.parameters(), final))
    np.testing.assert_allclose(hook.values()["loss_sensitivity_h1"], want / len(rec.steps), rtol=1e-5)  # float32
    assert hook.meta()["loss_sensitivity_h1"]["probe_every_error"]["refreshes_compared"] == 0


def test_step_every_scores_exactly_every_sth_step(tiny_arrays):
    from sensprune.measures.loss_sensitivity.proxy import LossSensitivityHook

    class Spy(LossSensitivityHook):
        def _add(self, idx, norms):
            self.seen = getattr(self, "seen", []) + [(idx.clone(), norms.clone())]
            super()._add(idx, norms)

    probe = np.arange(0, 120, 2)
    every, sub = Spy(120, probe), LossSensitivityHook(120, probe, step_every=3)
    _tiny_run([every, sub], tiny_arrays)  # 16 steps: 0, 3, ..., 15 scored
    assert int(every.steps) == 16 and int(sub.steps) == 6
    want = np.zeros(120)
    for s in range(0, 16, 3):
        idx, norms = every.seen[s]
        want[idx.numpy()] += norms.numpy()
    np.testing.assert_allclose(sub.values()["loss_sensitivity_h1"], want / 6, rtol=1e-12)
    meta = sub.meta()["loss_sensitivity_h1"]
    assert meta["step_every"] == 3 and any("subsampled" in a for a in meta["approximations"])
    with pytest.raises(ValidationError, match="--step-every"):
        LossSensitivityHook(10, np.arange(10), step_every=2, horizon=2)
