"""Closed forms for the built-in MLP (:class:`sensprune.train.models.MLP`) used by the horizon-1 proxy.

:func:`mlp_h1_input_grads` is the quantity of :func:`sensprune.measures.truncated.h1_input_grads`,
−η·∇_{x_i}[∇_θ L_B(θ_s)·v] (Arpit et al., ICML 2017, §3.2, truncated to one update), written out as
forward-over-reverse instead of autograd's reverse-over-reverse. With z_k = a_{k−1}W_kᵀ + b_k, a_k = relu(z_k),
p = softmax(z_L) and s_i = w_i/|B| (w_i = 1 without weights):

- tangent forward in the direction v = (V_k, c_k): ż_k = (m_{k−1}⊙ż_{k−1})W_kᵀ + a_{k−1}V_kᵀ + c_k, with
  m_k = [z_k > 0];
- δ_L = s⊙(p − onehot(y)) = ∂L_B/∂z_L, its tangent δ̇_L = s⊙p⊙(ż_L − p·ż_L);
- δ_{k−1} = m_{k−1}⊙(δ_k W_k), δ̇_{k−1} = m_{k−1}⊙(δ̇_k W_k + δ_k V_k);
- the result −η·(δ̇_1 W_1 + δ_1 V_1), reshaped like x.

ReLU's second derivative is 0, as autograd has it, so the value is the same (float rounding only: 1e-15
relative in float64, 3e-7 in float32). Why: no graph is built or walked, and the forward pass, the masks and
the δ's are shared by all the v's. Measured with one torch thread, batch 128, one v: 1.06 ms instead of
1.62 ms (digits, MLP 64-256-128-10) and 0.27 ms instead of 0.67 ms (the paper setting, 196-16-16-10); ten v's
(the per-class matrix): 6.8 ms instead of 9.9 ms and 1.2 ms instead of 4.0 ms. :func:`mlp_linears` says when
the closed form applies; everything else (other models, Dropout in train mode, frozen parameters, mixed dtypes
or devices, ...) keeps autograd.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.modules import module as _module

from sensprune.train.models import MLP


_NO_PARAMS = (nn.Flatten, nn.ReLU, nn.Dropout)


def _plain(m: nn.Module) -> bool:
    return not (m._forward_hooks or m._forward_pre_hooks)


def _autocast_on(device_type: str) -> bool:
    try:
        return torch.is_autocast_enabled(device_type)
    except TypeError:  # torch < 2.4: no device argument
        return torch.is_autocast_enabled() or torch.is_autocast_cpu_enabled()


def mlp_linears(model: nn.Module, values: list, like: torch.Tensor) -> list[nn.Linear] | None:
    """The Linear layers of the built-in MLP, first to last, or None when the closed forms do not apply to
    ``model`` evaluated at ``values`` (its parameters' values: weight, bias of each Linear in turn, the
    ``parameters()`` order) on inputs ``like``.

    They apply when ``type(model) is MLP`` (no subclass, no wrapper) with its own layout (Flatten over all
    but the batch dimension, then Linear with bias, ReLU, and Dropout only in eval mode — in train mode it
    would draw a mask, and random numbers — and a last Linear), no forward hooks, no other parameters, every
    parameter trainable, and ``values`` shaped like the parameters with the dtype and device of ``like``
    (floating point); autocast must be off.
    """
    if type(model) is not MLP or model._parameters or len(model._modules) != 1 or not _plain(model) \
            or _global_hooks() or like.dim() < 2 or not like.is_floating_point() or _autocast_on(like.device.type):
        return None
    net = model._modules.get("net")
    if type(net) is not nn.Sequential or net._parameters or not _plain(net) or len(net) < 2:
        return None
    flat = net[0]
    if type(flat) is not nn.Flatten or flat.start_dim != 1 or flat.end_dim not in (-1, like.dim() - 1) \
            or not _plain(flat):
        return None
    out, want_linear = [], True
    for m in list(net)[1:]:
        t = type(m)
        if not _plain(m) or m._modules:
            return None
        if t is nn.Linear:
            if not want_linear or m.bias is None or len(m._parameters) != 2:
                return None
            out.append(m)
            want_linear = False
        elif m._parameters or t not in _NO_PARAMS:
            return None
        elif t is nn.ReLU and not want_linear:
            want_linear = True
        elif not (t is nn.Dropout and want_linear and out and not m.training):
            return None
    if want_linear or len(values) != 2 * len(out):  # it ends with a Linear
        return None
    dtype, dev = like.dtype, like.device
    params = [p for m in out for p in (m.weight, m.bias)]
    for p, t in zip(params, values):
        if not (p.requires_grad and isinstance(t, torch.Tensor) and t.shape == p.shape and t.dtype == dtype
                and t.device == dev):
            return None
    if len(set(map(id, params))) != len(params):
        return None
    return out


def _global_hooks() -> bool:
    return bool(getattr(_module, "_global_forward_hooks", None) or getattr(_module, "_global_forward_pre_hooks", None))


def _tensor_like(t, ref: torch.Tensor) -> bool:
    return isinstance(t, torch.Tensor) and t.shape == ref.shape and t.dtype == ref.dtype and t.device == ref.device


def mlp_h1(model: nn.Module, theta_s: list, xb: torch.Tensor, yb: torch.Tensor, vs: list, lr: float,
           wb: torch.Tensor | None = None) -> list[torch.Tensor] | None:
    """:func:`mlp_h1_input_grads` for ``model`` at ``theta_s`` (values of its trainable parameters, in
    ``parameters()`` order), or None when the closed form does not apply (see :func:`mlp_linears`; also: labels
    that are not a (B,) int64 tensor, an empty batch, weights not of shape (B,), a v with a part that is None
    or not shaped, typed and placed like θ_s)."""
    if mlp_linears(model, theta_s, xb) is None:
        return None
    n = len(xb)
    if n == 0 or not isinstance(yb, torch.Tensor) or yb.dtype != torch.long or yb.shape != (n,) \
            or yb.device != xb.device:
        return None
    if wb is not None and (not isinstance(wb, torch.Tensor) or wb.shape != (n,) or wb.device != xb.device):
        return None
    for v in vs:
        if len(v) != len(theta_s) or not all(_tensor_like(vi, t) for vi, t in zip(v, theta_s)):
            return None
    layers = [(theta_s[i].detach(), theta_s[i + 1].detach()) for i in range(0, len(theta_s), 2)]
    dirs = [[(v[i].detach(), v[i + 1].detach()) for i in range(0, len(v), 2)] for v in vs]
    return mlp_h1_input_grads(layers, xb.detach(), yb, dirs, lr, wb)


def _forward(layers: list, x: torch.Tensor):
    """Activations a_0 = flatten(x), …, a_{L−1}, the ReLU masks m_1 … m_{L−1} (0/1 in x's dtype: multiplying by
    them is several times cheaper than by booleans) and the logits."""
    a, masks = [x.flatten(1)], []
    for k, (w, b) in enumerate(layers):
        z = torch.addmm(b, a[-1], w.t())
        if k == len(layers) - 1:
            return a, masks, z
        masks.append((z > 0).to(z.dtype))
        a.append(torch.relu_(z))


@torch.no_grad()
def mlp_h1_input_grads(layers: list, x: torch.Tensor, y: torch.Tensor, vs: list, lr: float,
                       w: torch.Tensor | None = None) -> list[torch.Tensor]:
    """−η·∇_{x_i}[∇_θ L_B·v] for each v in ``vs`` (see the module docstring).

    ``layers`` lists (W_k, b_k) at θ_s, ``vs`` lists, for each v, its parts (V_k, c_k) in the same order;
    L_B = Σ_i w_i·ℓ_i / |B| (the mean without ``w``). Returns (B, ...) tensors like ``x``.
    """
    n, last = len(y), len(layers) - 1
    a, masks, logits = _forward(layers, x)
    p = torch.softmax(logits, 1)
    s = torch.full((n, 1), 1.0 / n, dtype=p.dtype, device=p.device) if w is None \
        else (w.to(p.dtype) / n).unsqueeze(1)
    ps = p * s
    ds = [ps.clone().scatter_add_(1, y.unsqueeze(1), -s)]  # δ_L = s⊙(p − onehot), then δ_{L−1}, …, δ_1
    for k in range(last, 0, -1):
        ds.append((ds[-1] @ layers[k][0]).mul_(masks[k - 1]))
    ds.reverse()  # ds[k] = ∂L_B/∂z of layer k
    out = []
    for v in vs:
        zd = torch.addmm(v[0][1], a[0], v[0][0].t())  # the tangent ż in the direction v
        for k in range(1, last + 1):
            zd = torch.addmm(v[k][1], a[k], v[k][0].t()).addmm_(zd.mul_(masks[k - 1]), layers[k][0].t())
        dd = zd.sub_((p * zd).sum(1, keepdim=True)).mul_(ps)  # δ̇_L = s⊙p⊙(ż − p·ż)
        for k in range(last, 0, -1):
            dd = (dd @ layers[k][0]).addmm_(ds[k], v[k][0]).mul_(masks[k - 1])
        gx = (dd @ layers[0][0]).addmm_(ds[0], v[0][0])
        out.append(gx.mul_(-lr).reshape(x.shape))
    return out
