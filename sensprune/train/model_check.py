"""One forward pass before training: a model that does not map an example to the logits of its classes.

:func:`check_model` builds the model the run would build, passes it the first training example in eval mode
(so BatchNorm takes a batch of one) and refuses, naming the model and both shapes, an output that is not a
floating-point tensor of shape ``(1, num_classes)``: a wrong output width (the training loss would index a
missing class), a wrong input width (a matrix-shape error deep in the first step), or a module that returns a
tuple (``nn.LSTM`` returns ``(output, (h_n, c_n))``). ``sensprune score`` and ``sp.score`` call it before
anything is trained or written.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

from sensprune.errors import SensPruneError, ValidationError


def first_example(dataset) -> torch.Tensor | None:
    """``(1, *input_shape)`` float32: the first training input of an in-memory or streamed dataset (None if empty)."""
    if getattr(dataset, "n_train", 0) == 0:
        return None
    if hasattr(dataset, "x_train"):
        return torch.as_tensor(np.asarray(dataset.x_train[:1], dtype=np.float32))
    if hasattr(dataset, "train"):  # a streamed dataset: (x, y) items
        return torch.as_tensor(np.asarray(dataset.train[0][0], dtype=np.float32))[None]
    return None


def _one_line(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {' '.join(str(exc).split())[:200]}"


def check_model(build: Callable[[int, tuple], Any], dataset, name: str) -> None:
    """Refuse a model whose output on one training example is not float logits ``(1, dataset.num_classes)``.

    ``build(num_classes, input_shape)`` makes the model (``ScoreConfig.build_model``); the caller's random state is
    left as it was. ``name`` starts the message, e.g. ``"--model plugin:mine:net"``.
    """
    x = first_example(dataset)
    if x is None:
        return
    k, shape = int(dataset.num_classes), tuple(x.shape)
    want = f"{name} must map one example of shape {shape} to logits of shape (1, {k})"
    with torch.random.fork_rng(devices=[]):
        try:
            model = build(k, shape[1:])
        except SensPruneError:
            raise
        except Exception as exc:  # the user's factory failed: one line, not a traceback
            raise ValidationError(f"{name} must build from (num_classes={k}, input_shape={shape[1:]}); got "
                                  f"{_one_line(exc)}.") from None
        param = next(iter(model.parameters()), None)
        model.eval()
        try:
            with torch.no_grad():
                out = model(x.to(param.device if param is not None else "cpu"))
        except Exception as exc:
            raise ValidationError(f"{want}; got {_one_line(exc)}.") from None
    if isinstance(out, (tuple, list)):
        raise ValidationError(f"{want}; got a {type(out).__name__} of {len(out)} items (an nn.LSTM returns "
                              "(output, (h_n, c_n))): return the logits tensor.")
    if not isinstance(out, torch.Tensor):
        raise ValidationError(f"{want}; got a {type(out).__name__}.")
    if tuple(out.shape) != (1, k):
        raise ValidationError(f"{want}; got {tuple(out.shape)}.")
    if not out.is_floating_point():
        raise ValidationError(f"{want}; got {out.dtype} values (logits are floating point).")
