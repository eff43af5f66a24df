"""The functional optimizer of loss_sensitivity (sensprune.measures.loss_sensitivity.optim) against torch.optim."""

import json

import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from sensprune.errors import ValidationError
from sensprune.measures.loss_sensitivity import optim as fopt

LR_FACTORS = [1.0, 0.5, 2.0, 0.3, 1.5, 0.8]
TORCH_KEYS = {"buf": "momentum_buffer", "m": "exp_avg", "v": "exp_avg_sq", "vmax": "max_exp_avg_sq"}
TOL = {torch.float32: 1e-6, torch.float64: 1e-12}


def make_model(dtype=torch.float32, act=nn.ReLU, seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(5, 7), act(), nn.Linear(7, 3)).to(dtype)


def batch(t, dtype, n=8):
    g = torch.Generator().manual_seed(100 + t)
    return torch.randn(n, 5, generator=g).to(dtype), torch.randint(0, 3, (n,), generator=g)


def groups(model, *per_group):
    """The model's two Linear layers as two param groups with the given options each."""
    return [dict(params=list(model[i].parameters()), **kw) for i, kw in zip((0, 2), per_group)]


CASES = {
    "sgd": lambda m: torch.optim.SGD(m.parameters(), lr=0.1),
    "sgd_momentum_wd": lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, weight_decay=5e-4),
    "sgd_dampening": lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, dampening=0.1),
    "sgd_nesterov": lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, nesterov=True),
    "sgd_maximize": lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.5, maximize=True),
    "adam": lambda m: torch.optim.Adam(m.parameters(), lr=0.01),
    "adam_wd": lambda m: torch.optim.Adam(m.parameters(), lr=0.01, weight_decay=1e-2),
    "adam_amsgrad": lambda m: torch.optim.Adam(m.parameters(), lr=0.01, amsgrad=True, maximize=True),
    "adamw": lambda m: torch.optim.AdamW(m.parameters(), lr=0.01, weight_decay=0.05),
    "adamw_amsgrad": lambda m: torch.optim.AdamW(m.parameters(), lr=0.01, weight_decay=0.05, amsgrad=True),
    "sgd_two_groups": lambda m: torch.optim.SGD(groups(
        m, dict(lr=0.1, momentum=0.9), dict(lr=0.03, momentum=0.5, weight_decay=1e-3, nesterov=True)), lr=0.1),
    "adam_two_groups": lambda m: torch.optim.Adam(groups(
        m, dict(lr=0.01, betas=(0.8, 0.99)), dict(lr=0.003, amsgrad=True, weight_decay=1e-2, eps=1e-6))),
    "sgd_clip": (lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9), 0.05),
    "adam_clip": (lambda m: torch.optim.Adam(m.parameters(), lr=0.01), 0.05),
    # other torch code paths, the same update up to rounding
    "adam_foreach": lambda m: torch.optim.Adam(m.parameters(), lr=0.01, amsgrad=True, foreach=True),
    "adamw_fused": lambda m: torch.optim.AdamW(m.parameters(), lr=0.01, weight_decay=0.05, fused=True),
    "sgd_foreach": lambda m: torch.optim.SGD(m.parameters(), lr=0.1, momentum=0.9, foreach=True),
}
MAX_DIFF = {}  # (case, dtype) -> largest |Δ| seen over params and state, reported at the end of the session


def setup(model, opt):
    names = {p: n for n, p in model.named_parameters()}
    specs = {names[p]: s for g, s in zip(opt.param_groups, fopt.specs_from_optimizer(opt)) for p in g["params"]}
    return names, specs


def torch_step(model, opt, t, dtype, clip):
    x, y = batch(t, dtype)
    opt.zero_grad()
    F.cross_entropy(model(x), y).backward()
    if clip is not None:
        assert torch.nn.utils.clip_grad_norm_(model.parameters(), clip) > clip  # the clipping binds
    opt.step()


def functional_step(model, params, state, t, dtype, lrs, specs, clip, batch_index=None):
    """fopt.step on the batch torch_step uses, grads by autograd at ``params``; no graph is kept."""
    x, y = batch(t if batch_index is None else batch_index, dtype)
    params = {n: p.detach().requires_grad_() for n, p in params.items()}
    loss = F.cross_entropy(functional_call(model, params, (x,)), y)
    grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()))))
    with torch.no_grad():
        return fopt.step(params, grads, state, t, lrs, specs, clip_norm=clip)


def max_diff(model, opt, names, params, state):
    worst = max((params[n] - p).abs().max().item() for n, p in model.named_parameters())
    for p, n in names.items():
        for key, tkey in TORCH_KEYS.items():
            if tkey in opt.state[p]:
                worst = max(worst, (state[key][n] - opt.state[p][tkey]).abs().max().item())
    return worst


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("case", list(CASES))
def test_matches_torch_optim(case, dtype):
    make_opt, clip = CASES[case] if isinstance(CASES[case], tuple) else (CASES[case], None)
    model = make_model(dtype)
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = make_opt(model)
    names, specs = setup(model, opt)
    state = fopt.init_state(specs, params)
    base_lrs = [g["lr"] for g in opt.param_groups]
    worst = 0.0
    for t in range(1, len(LR_FACTORS) + 1):
        for g, lr in zip(opt.param_groups, base_lrs):
            g["lr"] = lr * LR_FACTORS[t - 1]
        lrs = {names[p]: g["lr"] for g in opt.param_groups for p in g["params"]}
        params, state = functional_step(model, params, state, t, dtype, lrs, specs, clip)
        torch_step(model, opt, t, dtype, clip)
        diff = max_diff(model, opt, names, params, state)
        assert diff <= TOL[dtype], (t, diff)
        worst = max(worst, diff)
    moved = max((params[n] - p0).abs().max().item()
                for n, p0 in make_model(dtype).named_parameters())
    assert moved > 1e-3  # the run did something
    MAX_DIFF[case, str(dtype)] = worst


def test_report_max_diff(capsys):
    """Prints the largest differences of the parametrized comparison (run with -s to see them)."""
    with capsys.disabled():
        for dtype in ("torch.float32", "torch.float64"):
            vals = {c: d for (c, dt), d in MAX_DIFF.items() if dt == dtype}
            if vals:
                print(f"\n{dtype}: max |functional - torch.optim| = {max(vals.values()):.3g} "
                      f"({', '.join(f'{c} {d:.2g}' for c, d in vals.items())})")


def test_specs():
    m = make_model()
    assert [s.kind for s in fopt.specs_from_optimizer(torch.optim.AdamW(m.parameters()))] == ["adamw"]
    spec, = fopt.specs_from_optimizer(torch.optim.Adam(m.parameters(), decoupled_weight_decay=True,
                                                       weight_decay=0.1, betas=(0.8, 0.9)))
    assert spec == fopt.GroupSpec("adamw", weight_decay=0.1, betas=(0.8, 0.9))
    assert json.loads(json.dumps(spec.to_dict()))["betas"] == [0.8, 0.9]
    two = fopt.specs_from_optimizer(CASES["sgd_two_groups"](m))
    assert two == [fopt.GroupSpec("sgd", momentum=0.9),
                   fopt.GroupSpec("sgd", momentum=0.5, weight_decay=1e-3, nesterov=True)]
    with pytest.raises(ValidationError, match=r"^`--optimizer` must be one of sgd, adam, adamw; got rmsprop\.$"):
        fopt.GroupSpec("rmsprop")


class MySGD(torch.optim.SGD):
    def step(self, closure=None):
        return super().step(closure)


class PlainSubclass(torch.optim.Adam):
    pass


@pytest.mark.parametrize("make", [lambda p: torch.optim.LBFGS(p), lambda p: torch.optim.RMSprop(p),
                                  lambda p: MySGD(p, lr=0.1)], ids=["LBFGS", "RMSprop", "subclass"])
def test_refuses_other_optimizers(make):
    opt = make(make_model().parameters())
    with pytest.raises(ValidationError) as e:
        fopt.specs_from_optimizer(opt)
    msg = str(e.value)
    assert "\n" not in msg and "SGD, Adam and AdamW" in msg and type(opt).__name__ in msg


def test_accepts_subclass_without_own_step_and_refuses_hooks():
    m = make_model()
    assert fopt.specs_from_optimizer(PlainSubclass(m.parameters()))[0].kind == "adam"
    opt = torch.optim.SGD(m.parameters(), lr=0.1)
    opt.register_step_post_hook(lambda *a: None)
    with pytest.raises(ValidationError, match="hooks"):
        fopt.specs_from_optimizer(opt)


@pytest.mark.parametrize("case", ["sgd_dampening", "adam_two_groups", "adamw_amsgrad"])
def test_state_from_optimizer_resumes(case):
    dtype = torch.float64
    model = make_model(dtype)
    opt = CASES[case](model)
    names, specs = setup(model, opt)
    state, t0 = fopt.state_from_optimizer(opt, names)
    assert t0 == 0 and all(torch.equal(v, torch.zeros_like(v)) for d in state.values() for v in d.values())
    for t in range(1, 4):
        torch_step(model, opt, t, dtype, None)
    state, t0 = fopt.state_from_optimizer(opt, names)
    assert t0 == (1 if case.startswith("sgd") else 3)
    params = {n: p.detach().clone() for n, p in model.named_parameters()}
    lrs = {names[p]: g["lr"] for g in opt.param_groups for p in g["params"]}
    for t in range(4, 7):
        params, state = functional_step(model, params, state, t0 + t - 3, dtype, lrs, specs, None, batch_index=t)
        torch_step(model, opt, t, dtype, None)
        assert max_diff(model, opt, names, params, state) <= 1e-12


def unrolled_objective(x, make_opt, clip=None, act=nn.Tanh, dead=0, steps=3, dtype=torch.float64):
    """A scalar probe loss at θ_steps, where every update trained on a batch containing the input x (2, 5).

    ``dead`` hidden units get a bias of -1e3: with ReLU their weights' gradients are exactly 0 at every step.
    """
    model = make_model(dtype, act=act)
    with torch.no_grad():
        model[0].bias[:dead] = -1e3
    opt = make_opt(model)
    names, specs = setup(model, opt)
    params = {n: p.detach().clone().requires_grad_() for n, p in model.named_parameters()}
    state = fopt.init_state(specs, params)
    lrs = {names[p]: g["lr"] for g in opt.param_groups for p in g["params"]}
    for t in range(1, steps + 1):
        xb, yb = batch(t, dtype)
        xb, yb = torch.cat([x, xb]), torch.cat([torch.tensor([1, 2]), yb])
        loss = F.cross_entropy(functional_call(model, params, (xb,)), yb)
        grads = dict(zip(params, torch.autograd.grad(loss, list(params.values()), create_graph=True)))
        params, state = fopt.step(params, grads, state, t, lrs, specs, clip_norm=clip)
    xp, yp = batch(99, dtype, n=16)
    return F.cross_entropy(functional_call(model, params, (xp,)), yp)


@pytest.mark.parametrize("case", ["adam", "adamw_amsgrad", "sgd_momentum_wd", "adam_clip"])
def test_gradient_through_updates_matches_finite_differences(case):
    make_opt, clip = CASES[case] if isinstance(CASES[case], tuple) else (CASES[case], None)
    x = torch.randn(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(7)).requires_grad_()
    (grad,) = torch.autograd.grad(unrolled_objective(x, make_opt, clip), x)
    h, fd = 1e-5, torch.zeros(x.numel(), dtype=x.dtype)
    for i in range(x.numel()):
        e = torch.zeros(x.numel(), dtype=x.dtype)
        e[i] = h
        e = e.view_as(x)
        fd[i] = (unrolled_objective(x + e, make_opt, clip) - unrolled_objective(x - e, make_opt, clip)).item() / (2 * h)
    fd = fd.view_as(x)
    assert grad.abs().max() > 1e-6
    assert ((fd - grad).norm() / grad.norm()).item() < 1e-6


def test_safe_sqrt():
    v = torch.tensor([0.0, 1e-30, 2.0, 4.0], dtype=torch.float64, requires_grad=True)
    r = fopt.safe_sqrt(v)
    assert torch.equal(r, v.detach().sqrt())
    (g,) = torch.autograd.grad(r.sum(), v)
    assert g[0] == 0 and torch.isfinite(g).all()


def test_zero_gradient_double_backward_is_finite(monkeypatch):
    x = torch.randn(2, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3)).requires_grad_()

    def objective():
        return unrolled_objective(x, lambda m: torch.optim.Adam(groups(m, dict(lr=0.01), dict(lr=0.01, amsgrad=True))),
                                  act=nn.ReLU, dead=3)

    (grad,) = torch.autograd.grad(objective(), x)
    assert torch.isfinite(grad).all() and grad.abs().max() > 0
    monkeypatch.setattr(fopt, "safe_sqrt", torch.sqrt)  # with the plain sqrt the same VJP is NaN: the test bites
    (grad,) = torch.autograd.grad(objective(), x)
    assert torch.isnan(grad).any()


def test_step_is_pure_and_differentiable_in_the_state():
    spec = fopt.GroupSpec("adam", amsgrad=True, weight_decay=0.1)
    torch.manual_seed(1)
    params = {"w": torch.randn(3, 2, dtype=torch.float64, requires_grad=True)}
    grads = {"w": torch.randn(3, 2, dtype=torch.float64, requires_grad=True)}
    state = {k: {"w": torch.rand(3, 2, dtype=torch.float64, requires_grad=True)} for k in ("m", "v", "vmax")}
    before = [t.detach().clone() for t in (params["w"], grads["w"], *(d["w"] for d in state.values()))]
    new_params, new_state = fopt.step(params, grads, state, 4, {"w": 0.1}, {"w": spec}, clip_norm=0.5)
    after = [params["w"], grads["w"], *(d["w"] for d in state.values())]
    assert all(torch.equal(a, b) for a, b in zip(before, after)) and new_params is not params
    assert not torch.equal(new_params["w"], params["w"]) and set(new_state) == {"m", "v", "vmax"}
    leaves = [params["w"], grads["w"], *(d["w"] for d in state.values())]
    assert all(g.abs().sum() > 0 for g in torch.autograd.grad(new_params["w"].sum(), leaves))
    with pytest.raises(ValidationError, match="same names"):
        fopt.step(params, {}, state, 1, {"w": 0.1}, {"w": spec})
    assert fopt.init_state(spec, params).keys() == {"m", "v", "vmax"}
    assert fopt.init_state(fopt.GroupSpec("sgd"), params) == {}
