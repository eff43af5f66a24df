"""Thin adapters that feed :class:`sensprune.Tracker` from a framework's training hooks (optional extras).

- :mod:`sensprune.integrations.lightning`: ``SensPruneCallback`` for PyTorch Lightning
  (``pip install 'sensprune[lightning]'``).
- :mod:`sensprune.integrations.transformers`: ``SensPruneCallback`` for the Hugging Face ``Trainer``
  (``pip install 'sensprune[transformers]'``).

Each adapter only translates the framework's hooks into ``Tracker.step`` / ``epoch_end`` / ``save`` calls: the
values are the Tracker's, so a callback and a hand-written loop fed the same logits write the same folder.
``import sensprune`` never imports a framework; importing an adapter without its framework installed raises
an ``ImportError`` of one line that names the extra to install.

What a callback cannot compute, and refuses when it is made:

``input_grad``
    needs the batch's input tensor with ``requires_grad`` set before the forward and ``tracker.step`` before
    ``loss.backward()``; neither framework hands a callback that moment.
``loss_sensitivity``
    records each batch before its ``optimizer.step()`` for the replay, and both frameworks call their
    callbacks after the step: use ``sp.Tracker(model=, optimizer=, data=)`` in your own loop, or
    ``sensprune score``.
``el2n`` (Transformers only)
    evaluates ``model(x) -> logits`` on the whole training set in index order; a Transformers model takes a
    dict of columns and returns a ``ModelOutput``. The Lightning callback takes it with ``eval_data=``.
"""

from __future__ import annotations

import importlib
from typing import Sequence

from sensprune.errors import ValidationError

# why each trackable measure may be missing from an adapter (one line each, in the refusal)
_NEEDS = {
    "input_grad": "it needs the input tensor with requires_grad set before the forward and tracker.step "
                  "before backward; use sp.Tracker in your own loop",
    "loss_sensitivity": "it records each batch before optimizer.step() for the replay, and callbacks run "
                        "after it; use sp.Tracker(model=, optimizer=, data=) in your own loop, or sensprune score",
    "el2n": "it evaluates model(x) -> logits on the training set in index order, and a Transformers model "
            "takes a dict of columns and returns a ModelOutput; use the Lightning callback or sp.Tracker",
}


def require(module: str, extra: str):
    """Import ``module`` (the framework) or raise a one-line ``ImportError`` naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"sensprune.integrations.{extra} needs {module.split('.')[0]}: "
                          f"pip install 'sensprune[{extra}]'") from None


def adapter_measures(measures: str | Sequence[str], supported: Sequence[str], who: str) -> list[str]:
    """The measure names, refused in one line if the Tracker could compute them but this adapter cannot.

    Unknown names are left for the Tracker to refuse with its own message.
    """
    from sensprune.tracker import TRACKABLE

    names = [measures] if isinstance(measures, str) else list(measures)
    for m in names:
        if m in TRACKABLE and m not in supported:
            raise ValidationError(f"{who}: measures must be among {', '.join(supported)}; got {m!r} "
                                  f"({_NEEDS[m]}).")
    return names
