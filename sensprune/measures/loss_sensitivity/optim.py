"""The functional optimizer of the loss_sensitivity engine (the formula: the package docstring).

Pure, differentiable re-implementations of one update of ``torch.optim.SGD``, ``Adam`` and ``AdamW``, so that
a training run can be replayed and differentiated (``create_graph=True``) through its updates, including
through every optimizer state: SGD's momentum buffer ``buf``, Adam's first and second moments ``m``, ``v`` and
AMSGrad's running maximum ``vmax``. The arithmetic mirrors the *single-tensor* code path of torch 2.14
operation by operation (the path torch takes on CPU by default), so float32 replays agree with torch to
rounding and float64 ones to ~1e-15.

State layout: ``{"buf": {name: Tensor}}`` (momentum SGD), ``{"m": {...}, "v": {...}[, "vmax": {...}]}``
(Adam/AdamW), ``{}`` (plain SGD); every tensor has the shape of its parameter.
"""

from __future__ import annotations

import inspect
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

from sensprune.errors import ValidationError

SUPPORTED = ("sgd", "adam", "adamw")
_SUPPORTED_MSG = "loss_sensitivity replays torch.optim.SGD, Adam and AdamW"


@dataclass(frozen=True)
class GroupSpec:
    """The hyperparameters of one param group, except the learning rate (given per step).

    ``kind`` is ``"sgd"`` (``momentum``, ``dampening``, ``nesterov``, ``weight_decay`` as an L2 term), ``"adam"``
    (``betas``, ``eps``, ``amsgrad``, ``weight_decay`` as an L2 term) or ``"adamw"`` (the same with decoupled
    weight decay); ``maximize`` flips the gradient's sign for every kind.
    """

    kind: str
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    amsgrad: bool = False
    maximize: bool = False

    def __post_init__(self):
        if self.kind not in SUPPORTED:
            raise ValidationError(f"`--optimizer` must be one of {', '.join(SUPPORTED)}; got {self.kind}.")
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ValidationError("Nesterov momentum needs a positive `--momentum` and zero dampening; "
                                  f"got momentum {self.momentum}, dampening {self.dampening}.")

    def to_dict(self) -> dict:
        """The fields as a JSON-able dict (``betas`` as a list)."""
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d


def _scalar(x) -> float:
    return float(x.item()) if isinstance(x, Tensor) else float(x)


def _torch_kind(opt) -> tuple[str, type]:
    """``("sgd", SGD)``, ``("adamw", AdamW)`` or ``("adam", Adam)`` for an optimizer whose ``step`` is torch's;
    else a ValidationError (AdamW first: before torch 2.9 it is not a subclass of Adam)."""
    for kind, base in (("sgd", torch.optim.SGD), ("adamw", torch.optim.AdamW), ("adam", torch.optim.Adam)):
        if isinstance(opt, base):
            if inspect.unwrap(type(opt).step) is not inspect.unwrap(base.step):
                raise ValidationError(f"{_SUPPORTED_MSG}; got {type(opt).__name__}, a subclass of "
                                      f"{base.__name__} with its own step().")
            return kind, base
    raise ValidationError(f"{_SUPPORTED_MSG}; got {type(opt).__name__}.")


def specs_from_optimizer(opt: torch.optim.Optimizer) -> list[GroupSpec]:
    """One :class:`GroupSpec` per param group of a live ``torch.optim.SGD``, ``Adam`` or ``AdamW``.

    ``Adam(decoupled_weight_decay=True)`` gives kind ``"adamw"``. ``foreach``, ``fused``, ``capturable`` and
    ``differentiable`` compute the same update (in float32 to rounding). Refused with a one-line
    ValidationError: any other optimizer or a subclass overriding ``step``; step pre/post hooks (they may change
    the update); complex parameters (torch updates them as real pairs).
    """
    kind, _ = _torch_kind(opt)
    if getattr(opt, "_optimizer_step_pre_hooks", None) or getattr(opt, "_optimizer_step_post_hooks", None):
        raise ValidationError(f"{type(opt).__name__} has step hooks, which a replay of its updates cannot "
                              "reproduce; remove them.")
    specs = []
    for group in opt.param_groups:
        if any(torch.is_complex(p) for p in group["params"]):
            raise ValidationError("loss_sensitivity does not replay optimizers of complex parameters.")
        common = dict(weight_decay=_scalar(group["weight_decay"]), maximize=bool(group.get("maximize", False)))
        if kind == "sgd":
            specs.append(GroupSpec("sgd", momentum=_scalar(group["momentum"]), dampening=_scalar(group["dampening"]),
                                   nesterov=bool(group["nesterov"]), **common))
        else:
            b1, b2 = group["betas"]
            decoupled = kind == "adamw" or group.get("decoupled_weight_decay", False)
            specs.append(GroupSpec("adamw" if decoupled else "adam",
                                   betas=(_scalar(b1), _scalar(b2)), eps=_scalar(group["eps"]),
                                   amsgrad=bool(group["amsgrad"]), **common))
    return specs


def init_state(spec: GroupSpec | dict[str, GroupSpec], params: dict[str, Tensor]) -> dict[str, dict[str, Tensor]]:
    """Zero state of a fresh optimizer for ``params`` (name → tensor of any shape).

    ``spec`` is one :class:`GroupSpec` for all params, or a dict name → spec (several groups). Returns ``{}``
    (plain SGD), ``{"buf": {name: zeros}}`` (momentum SGD; unused at t = 1, where buf = d), or
    ``{"m": ..., "v": ...}`` plus ``"vmax"`` for AMSGrad params (Adam/AdamW); zeros shaped like each param.
    """
    state: dict[str, dict[str, Tensor]] = {}
    for name, p in params.items():
        s = spec[name] if isinstance(spec, dict) else spec
        keys = (("buf",) if s.momentum != 0 else ()) if s.kind == "sgd" else ("m", "v") + (("vmax",) * s.amsgrad)
        for key in keys:
            state.setdefault(key, {})[name] = torch.zeros_like(p)
    return state


def state_from_optimizer(opt, names_by_param: dict) -> tuple[dict[str, dict[str, Tensor]], int]:
    """The live optimizer's state (cloned, detached) in this module's layout, and its step count.

    ``names_by_param`` maps each parameter tensor of ``opt`` to its name. Adam/AdamW: the common
    ``state["step"]`` (0 for a fresh optimizer; refused when params differ, e.g. one never had a gradient).
    SGD records no step count: 0 without momentum buffers, else 1 (SGD's update depends on t only through
    "is there a buffer yet"); only the buffers that exist are returned.
    """
    kind, _ = _torch_kind(opt)
    specs = specs_from_optimizer(opt)
    state: dict[str, dict[str, Tensor]] = {}
    steps = set()
    for group, spec in zip(opt.param_groups, specs):
        for p in group["params"]:
            if p not in names_by_param:
                raise ValidationError(f"a parameter of shape {tuple(p.shape)} of the optimizer has no name in "
                                      "`names_by_param`.")
            name, st = names_by_param[p], opt.state.get(p, {})
            if kind == "sgd":
                if st.get("momentum_buffer") is not None:
                    state.setdefault("buf", {})[name] = st["momentum_buffer"].detach().clone()
                    steps.add(1)
                continue
            steps.add(int(_scalar(st["step"])) if "step" in st else 0)
            keys = (("m", "exp_avg"), ("v", "exp_avg_sq")) + ((("vmax", "max_exp_avg_sq"),) * spec.amsgrad)
            for key, tkey in keys:
                state.setdefault(key, {})[name] = st[tkey].detach().clone() if tkey in st else torch.zeros_like(p)
    if kind != "sgd" and len(steps) > 1:
        raise ValidationError(f"the optimizer's parameters have taken different numbers of steps {sorted(steps)} "
                              "(some had no gradient); loss_sensitivity replays one step count for all.")
    return state, max(steps, default=0)


def safe_sqrt(v: Tensor) -> Tensor:
    """``torch.sqrt(v)`` (same values, same shape) whose derivative at ``v == 0`` is 0 instead of inf.

    A weight whose gradient is exactly 0 at every step (a dead ReLU unit) has ``v = m = 0``; the infinite
    derivative of sqrt at 0 would make the vector-Jacobian product 0·inf = NaN.
    """
    pos = v > 0
    return torch.where(pos, torch.where(pos, v, torch.ones_like(v)).sqrt(), torch.zeros_like(v))


def clip_grads(grads: dict[str, Tensor], max_norm: float) -> dict[str, Tensor]:
    """``torch.nn.utils.clip_grad_norm_(…, max_norm)`` (torch 2.14), out of place and differentiable.

    Total 2-norm over all grads (per-tensor norms, then the norm of their stack, in dict order),
    coef = max_norm / (norm + 1e-6) clamped to 1, every grad times coef. Shapes are kept.
    """
    if not grads:
        return {}
    norms = [torch.linalg.vector_norm(g, 2.0) for g in grads.values()]
    total = torch.linalg.vector_norm(torch.stack(norms), 2.0)
    coef = torch.clamp(float(max_norm) / (total + 1e-6), max=1.0)
    return {name: g * coef for name, g in grads.items()}


def _sgd(p, d, buf, t, lr, s):
    """torch.optim.SGD.step (torch 2.14) single-tensor path, ``_single_tensor_sgd``, for one param."""
    if s.weight_decay != 0:
        d = torch.add(d, p, alpha=s.weight_decay)
    if s.momentum != 0:
        buf = d if (t == 1 or buf is None) else torch.add(buf * s.momentum, d, alpha=1 - s.dampening)
        d = torch.add(d, buf, alpha=s.momentum) if s.nesterov else buf
    return torch.add(p, d, alpha=-lr), buf


def _adam(p, d, m, v, vmax, t, lr, s):
    """torch.optim.Adam.step / AdamW.step (torch 2.14) single-tensor path, ``_single_tensor_adam``, float lr,
    ``capturable=differentiable=False``, for one param."""
    beta1, beta2 = s.betas
    if s.weight_decay != 0:
        if s.kind == "adamw":
            p = p * (1 - lr * s.weight_decay)
        else:
            d = torch.add(d, p, alpha=s.weight_decay)
    m = torch.lerp(m, d, 1 - beta1)
    v = torch.addcmul(v * beta2, d, d, value=1 - beta2)
    step = float(t)  # torch keeps t in a float32 tensor and reads it back with .item()
    bias_correction1 = 1 - beta1 ** step
    bias_correction2 = 1 - beta2 ** step
    step_size = lr / bias_correction1
    bias_correction2_sqrt = bias_correction2 ** 0.5
    if s.amsgrad:
        vmax = torch.maximum(vmax, v)
        denom = safe_sqrt(vmax) / bias_correction2_sqrt + s.eps
    else:
        denom = safe_sqrt(v) / bias_correction2_sqrt + s.eps
    return torch.addcdiv(p, m, denom, value=-step_size), m, v, vmax


def step(params: dict[str, Tensor], grads: dict[str, Tensor], state: dict[str, dict[str, Tensor]],
         t: int, lrs: dict[str, float], specs: dict[str, GroupSpec],
         clip_norm: float | None = None) -> tuple[dict[str, Tensor], dict[str, dict[str, Tensor]]]:
    """One optimizer update θ_{t-1} → θ_t of every param, pure and differentiable.

    Parameters
    ----------
    params, grads : dict name → Tensor
        θ_{t-1} and the loss gradient at θ_{t-1} (same names, same shape per name). Every param needs a grad:
        torch skips params whose ``.grad`` is None, which one common step count cannot replay.
    state : dict
        The optimizer state before the step in this module's layout (:func:`init_state`); a missing entry is
        a fresh one (zeros; for momentum SGD "no buffer yet", i.e. buf = d).
    t : int
        1-based step count of this update (Adam's bias correction, SGD's first-step rule buf = d).
    lrs, specs : dict name → float, dict name → GroupSpec
        The learning rate and hyperparameters of each param's group (several groups allowed).
    clip_norm : float, optional
        ``torch.nn.utils.clip_grad_norm_(all params, clip_norm)`` applied to the grads first (:func:`clip_grads`).

    Returns
    -------
    (params, state) : new dicts, θ_t and the state after the step; inputs are never modified in place and the
    results keep the autograd graph w.r.t. params, grads and state.
    """
    if set(grads) != set(params):
        missing = sorted(set(params) ^ set(grads))[:3]
        raise ValidationError(f"`grads` and `params` must have the same names; they differ in {missing}.")
    if int(t) != t or t < 1:
        raise ValidationError(f"`t` must be a step count ≥ 1; got {t}.")
    if clip_norm is not None:
        grads = clip_grads(grads, clip_norm)
    new_params: dict[str, Tensor] = {}
    new_state: dict[str, dict[str, Tensor]] = {}
    for name, p in params.items():
        s, lr = specs[name], _scalar(lrs[name])
        d = -grads[name] if s.maximize else grads[name]
        if s.kind == "sgd":
            new_params[name], buf = _sgd(p, d, state.get("buf", {}).get(name), t, lr, s)
            if buf is not None:
                new_state.setdefault("buf", {})[name] = buf
            continue
        m, v, vmax = (state.get(key, {}).get(name) for key in ("m", "v", "vmax"))
        m = torch.zeros_like(p) if m is None else m
        v = torch.zeros_like(p) if v is None else v
        vmax = torch.zeros_like(p) if (vmax is None and s.amsgrad) else vmax
        new_params[name], m, v, vmax = _adam(p, d, m, v, vmax, t, lr, s)
        new_state.setdefault("m", {})[name] = m
        new_state.setdefault("v", {})[name] = v
        if s.amsgrad:
            new_state.setdefault("vmax", {})[name] = vmax
    return new_params, new_state
