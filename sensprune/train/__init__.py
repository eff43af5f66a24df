"""The training loop every stage uses, and what plugs into it.

- :mod:`~sensprune.train.loop`: :func:`train` (one paired, resumable training run) and its helpers;
- :mod:`~sensprune.train.sources`: the data it reads (:class:`ArraySource`, :class:`LoaderSource`);
- :mod:`~sensprune.train.hooks`: the hook contract measures implement (:class:`Hook`, :class:`StepInfo`, :class:`Run`);
- :mod:`~sensprune.train.checkpoint`, :mod:`~sensprune.train.distributed`: resuming, data-parallel ranks;
- :mod:`~sensprune.train.models`: the built-in models (MLP, CNN, ResNet-18).

The names below are re-exported lazily: importing this package loads no torch by itself.
"""

from sensprune.plugins import lazy_exports

_NAMES = {
    "train": "loop", "TrainResult": "loop", "resolve_device": "loop", "epoch_order": "loop",
    "Hook": "hooks", "StepInfo": "hooks", "Run": "hooks",
    "ArraySource": "sources", "LoaderSource": "sources", "evaluate": "sources", "predict_logits": "sources",
    "build_model": "models",
}
__all__ = sorted(_NAMES)
__getattr__, __dir__ = lazy_exports(__name__, _NAMES)
