"""Model zoo: ``mlp``, ``cnn``, ``resnet18`` (CIFAR stem) and ``plugin:module:callable``.

Every builder takes ``(num_classes, input_shape)`` and returns an ``nn.Module`` that maps a batch
``(B, *input_shape)`` to logits ``(B, num_classes)``.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch
from torch import nn

from sensprune.config import MODEL_NAMES  # noqa: F401  (defined there without torch, for the bench config)
from sensprune.errors import ValidationError
from sensprune.plugins import resolve_plugin


class MLP(nn.Module):
    """Fully connected ReLU network on flattened inputs (the paper's model family, §3)."""

    def __init__(self, num_classes: int, input_shape: Sequence[int], widths: Sequence[int] = (256, 128),
                 dropout: float = 0.0):
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        d = math.prod(input_shape)
        for w in widths:
            layers += [nn.Linear(d, w), nn.ReLU()]
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            d = w
        layers.append(nn.Linear(d, num_classes))
        self.net = nn.Sequential(*layers)

    def forward(self, x):
        return self.net(x)


class SmallCNN(nn.Module):
    """Two conv blocks (32, 64 channels) and a linear head; 1-D inputs use Conv1d, 2-D/3-D use Conv2d.

    No BatchNorm, so per-example input gradients from a training batch are exact. The 2-D variant
    keeps its conv weights and activations in ``channels_last`` (NHWC) memory; NCHW max-pooling is
    slow on CPU: the same weights in NCHW take 1.27-1.43x as long to train
    and 2.4-3.2x as long for an eval-mode forward (``benchmarks/overhead_parts.txt``). The values
    are the same up to the float rounding of the convolution kernels.
    """

    def __init__(self, num_classes: int, input_shape: Sequence[int], dropout: float = 0.0):
        super().__init__()
        shape = tuple(input_shape)
        if len(shape) == 1:
            conv, pool, self._view = nn.Conv1d, nn.MaxPool1d, (1, shape[0])
        elif len(shape) == 2:
            conv, pool, self._view = nn.Conv2d, nn.MaxPool2d, (1, *shape)
        elif len(shape) == 3:
            conv, pool, self._view = nn.Conv2d, nn.MaxPool2d, shape
        else:
            raise ValidationError(f"cnn needs inputs of shape (L,), (H, W) or (C, H, W); got {shape}.")
        c = self._view[0]
        self.features = nn.Sequential(
            conv(c, 32, 3, padding=1), nn.ReLU(), pool(2),
            conv(32, 64, 3, padding=1), nn.ReLU(), pool(2),
        )
        with torch.no_grad():
            d = self.features(torch.zeros(1, *self._view)).numel()
        head: list[nn.Module] = [nn.Flatten(), nn.Linear(d, 128), nn.ReLU()]
        if dropout > 0:
            head.append(nn.Dropout(dropout))
        head.append(nn.Linear(128, num_classes))
        self.head = nn.Sequential(*head)
        self._nhwc = len(self._view) == 3
        if self._nhwc:
            self.features.to(memory_format=torch.channels_last)

    def forward(self, x):
        x = x.reshape(x.shape[0], *self._view)
        if self._nhwc:  # a no-op view for one input channel
            x = x.contiguous(memory_format=torch.channels_last)
        return self.head(self.features(x))


def resnet18(num_classes: int, input_shape: Sequence[int]) -> nn.Module:
    """torchvision ResNet-18 with the CIFAR stem (3×3 stride-1 first conv, no max-pool). Has BatchNorm."""
    from torchvision.models import resnet18 as tv_resnet18

    shape = tuple(input_shape)
    if len(shape) == 2:
        shape = (1, *shape)
    if len(shape) != 3:
        raise ValidationError(f"resnet18 needs image inputs (C, H, W) or (H, W); got {tuple(input_shape)}.")
    net = tv_resnet18(num_classes=num_classes)
    net.conv1 = nn.Conv2d(shape[0], 64, 3, 1, 1, bias=False)
    net.maxpool = nn.Identity()
    return _Reshape(net, shape)


class _Reshape(nn.Module):
    def __init__(self, net: nn.Module, shape: tuple[int, ...]):
        super().__init__()
        self.net, self.shape = net, shape

    def forward(self, x):
        return self.net(x.reshape(x.shape[0], *self.shape))


def build_model(name: str, num_classes: int, input_shape: Sequence[int], *, widths: Sequence[int] = (256, 128),
                dropout: float = 0.0) -> nn.Module:
    """Build the model named by ``--model`` (see module docstring); unknown names are a ValidationError."""
    if name == "mlp":
        return MLP(num_classes, input_shape, widths, dropout)
    if name == "cnn":
        return SmallCNN(num_classes, input_shape, dropout)
    if name == "resnet18":
        return resnet18(num_classes, input_shape)
    if name.startswith("plugin:"):
        return _plugin(name, num_classes, input_shape)
    raise ValidationError(f"Unknown model {name!r}. Choose one of: {', '.join(MODEL_NAMES)}, "
                          "or plugin:module:callable.")


def _plugin(name: str, num_classes: int, input_shape: Sequence[int]) -> nn.Module:
    parts = name.split(":")
    if len(parts) != 3 or not all(parts[1:]):
        raise ValidationError(f"Model plugin must look like plugin:module:callable; got {name!r}.")
    target = f"{parts[1]}:{parts[2]}"
    fn = resolve_plugin(target, "Model plugin")
    try:
        model = fn(num_classes, tuple(input_shape))
    except Exception as exc:  # the user's code failed: one line, not a traceback
        raise ValidationError(f"Model plugin '{target}' raised {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise ValidationError(f"Model plugin '{target}' returned {type(model).__name__}, "
                              "expected a torch.nn.Module.")
    return model


def has_batchnorm(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
