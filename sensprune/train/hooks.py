"""The hook contract: what a measure computed online during training sees and reports.

:class:`StepInfo` is one optimisation step as a hook sees it, :class:`Run` the live state (model,
optimizer, config, data), :class:`Hook` the base class whose methods the loop
(:func:`sensprune.train.loop.loop.train`) calls. :class:`FirstLayerInputGrad` captures per-example input gradients
at the first layer in the training step's own backward pass, for the hooks that ask for them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from sensprune.config import TrainConfig
from sensprune.train.models import SmallCNN
from sensprune.train.sources import ArraySource, LoaderSource, predict_logits


@dataclass
class StepInfo:
    """What a hook sees at one optimisation step (all tensors detached unless stated).

    idx (B,) long; x (B, ...) the batch inputs; y (B,) labels; logits (B, K); losses (B,)
    per-example cross-entropy; input_grad (B, ...) per-example ∇ₓℓ, or None when no hook asked;
    correct (B,) bool, ``logits.argmax(1) == y`` (the loop computes it for its accuracy anyway), or
    None when the caller did not; rng_state the global RNG state right before the forward (CPU state, CUDA
    state or None), only when a hook sets ``needs_rng_state``; aug_seed the seed of the step's augmentation
    (:mod:`sensprune.train.augment`), None without one. ``x`` is the stored (un-augmented) batch.
    """

    epoch: int
    step: int
    idx: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    logits: torch.Tensor
    losses: torch.Tensor
    input_grad: torch.Tensor | None
    lr: float
    correct: torch.Tensor | None = None
    rng_state: tuple | None = None
    aug_seed: int | None = None


#: How a state key of a hook combines across data-parallel ranks (see :meth:`Hook.reduction`).
SUM, REPLICATED = "sum", "replicated"


class Hook:
    """Base class of a measure computed online during training: the hook contract.

    The loop calls ``on_train_begin``, then per step ``on_step`` (after backward, parameters θ_s) and
    ``after_step`` (after the update, θ_{s+1}), and ``on_epoch_end``. A measure hook reports

    - ``values()``: per-example arrays ``{measure: ndarray (N,)}`` (higher = harder), in index order;
    - ``extras()``: non-per-example arrays, e.g. the (K, K) per-class matrix or a per-epoch curve;
    - ``meta()``: JSON-able notes stored in ``meta.json``;
    - ``state_dict()`` / ``load_state_dict()``: numpy arrays that checkpoints save and restore.

    **Across ranks** (data-parallel training, :func:`sensprune.train.distributed.sync_hooks`) every state key
    combines one of two ways, declared by :meth:`reduction`:

    - ``"sum"``: the key accumulates what the examples of *this* rank contributed (sums, counts, the last
      value of an example only its rank touched); the ranks' changes since the last sync are added up;
    - ``"replicated"``: every rank computes the same value (e.g. from the whole training set at an
      epoch end); it is left as it is.

    Declare it per key with the class mapping ``reduce = {"key": "sum" | "replicated"}``; keys not listed
    follow the class flag ``replicated`` (False → ``"sum"``). Every default below does nothing.
    """

    needs_input_grad = False
    #: True when the hook needs ``StepInfo.rng_state`` (the replay of dropout masks)
    needs_rng_state = False
    #: True when every rank computes the same state, so data-parallel training must not add the ranks'
    #: states up; the default reduction of every state key not listed in :attr:`reduce`.
    replicated = False
    #: Per-key reduction across ranks: ``{state key: "sum" | "replicated"}`` (see :meth:`reduction`).
    reduce: dict[str, str] = {}

    def on_train_begin(self, run: "Run") -> None: ...

    def on_step(self, step: StepInfo, run: "Run") -> None:
        """Called after backward and before the optimizer update (parameters are θ_s)."""

    def after_step(self, step: StepInfo, run: "Run") -> None:
        """Called after the optimizer update (parameters are θ_{s+1})."""

    def on_epoch_end(self, epoch: int, run: "Run") -> None: ...

    def values(self) -> dict[str, np.ndarray]:
        """Per-example measure values ``{name: (N,) float64}``, higher = harder (none by default)."""
        return {}

    def extras(self) -> dict[str, np.ndarray]:
        """Non-per-example arrays (e.g. ``per_class`` (K, K), ``csr`` (epochs,)); none by default."""
        return {}

    def meta(self) -> dict[str, Any]:
        """JSON-able notes for ``meta.json``; none by default."""
        return {}

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None: ...

    def reduction(self, key: str) -> str:
        """How state key ``key`` combines across ranks: ``"sum"`` or ``"replicated"``."""
        how = self.reduce.get(key, REPLICATED if self.replicated else SUM)
        if how not in (SUM, REPLICATED):
            raise ValueError(f"{type(self).__name__}.reduce[{key!r}] must be 'sum' or 'replicated'; got {how!r}.")
        return how


@dataclass
class Run:
    """Live state handed to hooks: the model, optimizer, config and data."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    train: ArraySource | LoaderSource
    device: torch.device
    history: list[dict[str, Any]] = field(default_factory=list)
    #: per-example loss weights (N,) on the device, or None: the batch loss is sum(w_i * l_i) / |B|
    weights: torch.Tensor | None = None

    def logits(self, source: ArraySource | LoaderSource) -> torch.Tensor:
        """Eval-mode logits (N, K) of every example of ``source``, in index order."""
        return predict_logits(self.model, source, self.config.eval_batch_size)


def conv2d_input_grad(grad_out: torch.Tensor, conv: nn.Conv2d, in_hw: tuple[int, int]) -> torch.Tensor:
    """∂/∂input of a ``groups=1`` Conv2d from the gradient at its output: (B, C_out, H', W') → (B, C_in, H, W).

    The transposed convolution written as one batched matrix product, Wᵀ (C_in·k·k, C_out) times each
    example's (C_out, H'·W') gradient — no copy of the gradient — followed by ``F.fold`` (col2im).
    Same value as ``torch.nn.grad.conv2d_input``; on CPU about 4x faster for the thin first layers
    (C_in of 1 or 3) it is used for (2.95 ms instead of 13.3 ms for 128 Fashion-MNIST images, one thread;
    ``benchmarks/overhead_parts.txt``). A channels-last gradient takes :func:`_nhwc_input_grad`.
    """
    b, c_out = grad_out.shape[:2]
    w = conv.weight.detach()
    wt = w.reshape(c_out, -1).t()  # (C_in·k·k, C_out)
    g = grad_out.to(w.dtype)
    if g.dim() == 4 and not g.is_contiguous() and g.is_contiguous(memory_format=torch.channels_last):
        return _nhwc_input_grad(g, wt, conv, in_hw)
    cols = torch.matmul(wt, g.reshape(b, c_out, -1))
    return F.fold(cols, in_hw, conv.kernel_size, dilation=conv.dilation, padding=conv.padding, stride=conv.stride)


def _nhwc_input_grad(g: torch.Tensor, wt: torch.Tensor, conv: nn.Conv2d, in_hw: tuple[int, int]) -> torch.Tensor:
    """:func:`conv2d_input_grad` for a channels-last gradient (the built-in cnn's layout).

    The NHWC gradient is, without a copy, the transpose of a (B·H'·W', C_out) matrix: one product
    Wᵀ·Gᵀ gives the (C_in, k, k, B, H', W') columns, and col2im is k·k strided adds of whole
    (B, C_in, ·, ·) slices, each clipped to the input (no padded buffer, no cropping copy). On CPU,
    for the built-in cnn's first layer and 128 images, 2.75 ms against 2.95 ms for the NCHW path
    (``benchmarks/overhead_parts.txt``, map-back section).
    """
    b, c_out, ho, wo = g.shape
    (kh, kw), (sh, sw), (dh, dw), (ph, pw) = conv.kernel_size, conv.stride, conv.dilation, conv.padding
    c_in = wt.shape[0] // (kh * kw)
    cols = torch.mm(wt, g.permute(1, 0, 2, 3).reshape(c_out, -1)).view(c_in, kh, kw, b, ho, wo)
    h, w = in_hw
    out = g.new_zeros(b, c_in, h, w)
    taps_h = [_tap(i * dh - ph, sh, ho, h) for i in range(kh)]
    taps_w = [_tap(j * dw - pw, sw, wo, w) for j in range(kw)]
    for i, (to_h, from_h) in enumerate(taps_h):
        for j, (to_w, from_w) in enumerate(taps_w):
            if to_h is not None and to_w is not None:
                out[:, :, to_h, to_w] += cols[:, i, j, :, from_h, from_w].transpose(0, 1)
    return out


def _tap(offset: int, stride: int, n_out: int, n_in: int) -> tuple[slice | None, slice | None]:
    """For one kernel tap along one axis: the input positions it writes (offset + stride·t) and the
    output-gradient positions t that land inside 0..n_in-1 (``(None, None)`` if none)."""
    first = max(0, -(offset // stride))
    last = min(n_out - 1, (n_in - 1 - offset) // stride)
    if first > last:
        return None, None
    return slice(first * stride + offset, last * stride + offset + 1, stride), slice(first, last + 1)


class FirstLayerInputGrad:
    """∇ₓ of the training loss, read from the training backward at the model's first layer.

    Without this the loop makes the batch a leaf that requires grad and reads ``x.grad`` (also one
    backward pass, no second autograd product). For the built-in ``cnn`` — whose first layer, a
    Conv2d, is applied to a reshape of x and x enters nowhere else — a forward hook on that layer puts
    a tensor hook on its output; in the very same backward pass it receives the gradient G at the
    layer's output and maps it back to the input with :func:`conv2d_input_grad`, about 4x cheaper on
    CPU than autograd's own input gradient of a thin convolution. A Linear first layer (``mlp``)
    gains nothing (autograd computes the same ``G @ W``, and the Python hooks cost more than the leaf),
    so it, plugins, resnet18 and compiled models use the leaf path.
    """

    def __init__(self, layer: nn.Module):
        self.layer, self.active, self.grad, self.shape = layer, False, None, None
        self.handle = layer.register_forward_hook(self._forward)

    @staticmethod
    def find(model: nn.Module) -> nn.Module | None:
        """The first layer of the built-in cnn (a Conv2d applied to a reshape of x), else None."""

        if type(model) is SmallCNN:
            first = model.features[0]
            if isinstance(first, nn.Conv2d) and first.groups == 1 and first.padding_mode == "zeros" \
                    and not isinstance(first.padding, str):
                return first
        return None

    def _forward(self, module, inputs, out) -> None:
        if self.active and out.requires_grad:
            self.shape = inputs[0].shape
            out.register_hook(self._backward)

    def _backward(self, g: torch.Tensor) -> None:
        self.grad = conv2d_input_grad(g.float(), self.layer, tuple(self.shape[-2:]))

    def take(self, like: torch.Tensor) -> torch.Tensor:
        """The captured gradient, shaped like the batch ``like``; cleared for the next step."""
        g, self.grad = self.grad, None
        if g is None:  # the batch had no example (an empty shard)
            return torch.zeros_like(like, dtype=torch.float32)
        return g.reshape(like.shape)

    def close(self) -> None:
        self.handle.remove()
