"""``SensPruneCallback`` for PyTorch Lightning: the Tracker's measures from a ``Trainer.fit`` run.

::

    from sensprune.integrations.lightning import SensPruneCallback

    class Net(L.LightningModule):
        def training_step(self, batch, batch_idx):
            logits = self(batch["x"])
            loss = F.cross_entropy(logits, batch["y"])
            return {"loss": loss, "logits": logits}          # the logits at presentation

    cb = SensPruneCallback("runs/mine", n=len(train_set), labels=y_train)   # batches carry "idx" and "y"
    L.Trainer(max_epochs=10, callbacks=[cb]).fit(Net(), loader)
    # runs/mine is a score folder: sensprune prune / report / info

The hooks, translated (nothing else is computed here):

- ``on_train_batch_end``: ``tracker.step(batch[index_key], outputs[logits_key], batch[label_key])``, where
  ``outputs`` is what ``training_step`` returned: a dict holding the batch's logits (before the step's update).
- ``on_train_epoch_end``: ``tracker.epoch_end(model=pl_module, eval_data=eval_data)``; ``el2n`` evaluates
  ``pl_module(x)`` in eval mode on ``eval_data`` (the training set in index order) at ``el2n_epoch``.
- ``on_train_end``: ``tracker.save(out)`` (on every rank under DDP; rank 0 writes).

The batch's example indices are positions in the training set: a dataset that returns its index (under DDP the
*global* index, as a ``DistributedSampler`` shards it). ``input_grad`` and ``loss_sensitivity`` are refused
(see :mod:`sensprune.integrations`). Lightning is imported from ``lightning.pytorch`` when that package is
installed, else from ``pytorch_lightning`` (the extra installs the latter, which ``lightning`` itself depends
on); a Trainer of either package calls the callback's hooks.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Sequence

from sensprune.errors import ValidationError
from sensprune.integrations import adapter_measures, require
from sensprune.io import prepare_out
from sensprune.measures.peers import DYNAMICS
from sensprune.tracker import DEFAULT_TRACKED, Tracker

try:
    from lightning.pytorch import Callback
except ImportError:
    Callback = require("pytorch_lightning", "lightning").Callback

SUPPORTED = (*DYNAMICS, "el2n")


def _field(batch, key, option: str):
    try:
        return batch[key]
    except (KeyError, IndexError, TypeError):
        if isinstance(batch, Mapping):
            kind = f"a dict with keys {', '.join(map(repr, batch))}"
        elif isinstance(batch, (tuple, list)):
            kind = f"a {type(batch).__name__} of {len(batch)} (give positions, e.g. 0 and 2 for (idx, x, y))"
        else:
            kind = f"a {type(batch).__name__}"
        raise ValidationError(f"SensPruneCallback: {option} must name a field of the training batch; got {key!r} "
                              f"for a batch that is {kind}.") from None


class SensPruneCallback(Callback):
    """Per-example measures of a Lightning run, saved as a score folder at the end of ``fit``.

    Parameters
    ----------
    out : str or Path
        The score folder to write (checked now, written at the end of training).
    n : int
        Size of the training set; the batch's indices are positions in ``0..n-1``.
    labels : array-like (N,) of int, optional
        The training labels in index order (needed when ``label_key=None``).
    measures : sequence of str
        From ``loss, forgetting, aum, confidence, variability, correctness, el2n``.
    index_key, label_key : str or int
        The batch's fields holding the indices (B,) and the labels (B,): keys of a dict batch, positions of a
        tuple batch. ``label_key=None`` takes the labels from ``labels``.
    logits_key : str
        The key of ``training_step``'s returned dict holding the logits (B, K).
    eval_data : (x, y) arrays/tensors or a map-style Dataset of (x, y), optional
        The training set in index order, for ``el2n`` (required then).
    el2n_epoch, num_classes, dataset, seed
        Passed to :class:`sensprune.Tracker`.
    force : bool
        Replace an existing score folder at ``out``.

    Attributes
    ----------
    tracker : sensprune.Tracker
        The tracker being fed (``tracker.values()`` during training).
    path_ : Path
        The folder written, once training has ended.
    """

    def __init__(self, out: str | Path, n: int, labels=None, measures: Sequence[str] = DEFAULT_TRACKED, *,
                 index_key: str | int = "idx", label_key: str | int | None = "y", logits_key: str = "logits",
                 eval_data=None, el2n_epoch: int = 1, num_classes: int | None = None, dataset=None,
                 seed: int = 0, force: bool = False):
        super().__init__()
        names = adapter_measures(measures, SUPPORTED, "SensPruneCallback")
        if "el2n" in names and eval_data is None:
            raise ValidationError("SensPruneCallback: eval_data must be the training set in index order ((x, y) or "
                                  "a map-style Dataset of (x, y)) when el2n is tracked; got None.")
        self.tracker = Tracker(n, labels, names, num_classes=num_classes, el2n_epoch=el2n_epoch, dataset=dataset,
                               seed=seed)
        self.out = prepare_out(out, force=force, option="out")
        self.force = force
        self.index_key, self.label_key, self.logits_key = index_key, label_key, logits_key
        self.eval_data = eval_data
        self.path_: Path | None = None

    def on_train_batch_end(self, trainer, pl_module, outputs: Any, batch: Any, batch_idx: int) -> None:
        if not isinstance(outputs, Mapping) or self.logits_key not in outputs:
            got = f"a dict with keys {', '.join(map(repr, outputs))}" if isinstance(outputs, Mapping) else \
                type(outputs).__name__
            raise ValidationError(f"SensPruneCallback: training_step must return a dict holding the batch's logits "
                                  f"under {self.logits_key!r} (e.g. {{'loss': loss, 'logits': logits}}); got {got}.")
        y = None if self.label_key is None else _field(batch, self.label_key, "label_key")
        self.tracker.step(_field(batch, self.index_key, "index_key"), outputs[self.logits_key], y)

    def on_train_epoch_end(self, trainer, pl_module) -> None:
        self.tracker.epoch_end(model=pl_module, eval_data=self.eval_data)

    def on_train_end(self, trainer, pl_module) -> None:
        self.path_ = self.tracker.save(self.out, force=self.force)
