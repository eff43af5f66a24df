"""The training configuration, without torch: ``TrainConfig`` and the choices of its fields.

Kept apart from :mod:`sensprune.train` so that the command line (``--help``, usage errors) and the
commands that train nothing (``bench-merge``, ``report``, ``info``, ``prune``) start without importing torch.
:mod:`sensprune.train` re-exports everything here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sensprune.errors import ValidationError

OPTIMIZERS = ("sgd", "adam")
SCHEDULES = ("constant", "cosine", "step")
AMP_MODES = ("none", "bf16", "fp16")
MODEL_NAMES = ("mlp", "cnn", "resnet18")  # built by sensprune.models (besides plugin:module:callable)


@dataclass(frozen=True)
class TrainConfig:
    """Everything that decides a training run; stored inside every artifact.

    ``seed`` drives three independent streams: weight init (``seed``), batch order
    (``seed`` and the epoch) and dropout (``seed + 1``).
    """

    epochs: int = 20
    batch_size: int = 128
    optimizer: str = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    weight_decay: float = 5e-4
    schedule: str = "cosine"
    seed: int = 0
    device: str = "cpu"
    eval_batch_size: int = 256
    amp: str = "none"
    compile: bool = False

    def __post_init__(self):
        _check(isinstance(self.epochs, int) and self.epochs >= 1, "epochs", "an integer >= 1", self.epochs)
        _check(isinstance(self.batch_size, int) and self.batch_size >= 1, "batch_size", "an integer >= 1",
               self.batch_size)
        _check(self.optimizer in OPTIMIZERS, "optimizer", f"one of {OPTIMIZERS}", self.optimizer)
        _check(self.schedule in SCHEDULES, "schedule", f"one of {SCHEDULES}", self.schedule)
        _check(self.lr > 0 and math.isfinite(self.lr), "lr", "a positive float", self.lr)
        _check(0 <= self.momentum < 1, "momentum", "a float in [0, 1)", self.momentum)
        _check(self.weight_decay >= 0, "weight_decay", "a float >= 0", self.weight_decay)
        _check(self.amp in AMP_MODES, "amp", f"one of {AMP_MODES}", self.amp)

    def lr_at(self, epoch: int) -> float:
        """Learning rate for 0-based ``epoch``: constant, cosine to 0, or ×0.1 at 50% and 75%."""
        if self.schedule == "cosine":
            return self.lr * 0.5 * (1 + math.cos(math.pi * epoch / self.epochs))
        if self.schedule == "step":
            return self.lr * 0.1 ** (int(epoch >= self.epochs * 0.5) + int(epoch >= self.epochs * 0.75))
        return self.lr


def _check(ok: bool, name: str, what: str, got: Any) -> None:
    if not ok:
        raise ValidationError(f"The '{name}' parameter must be {what}. Got {got!r} instead.")
