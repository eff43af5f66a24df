"""``SensPruneCallback`` for the Hugging Face ``Trainer``: the Tracker's measures from ``trainer.train()``.

::

    from sensprune.integrations.transformers import SensPruneCallback

    train_ds = train_ds.map(lambda row, i: {"idx": i}, with_indices=True)   # each row's position
    args = TrainingArguments("out", remove_unused_columns=False, ...)       # so that "idx" reaches the model
    cb = SensPruneCallback("runs/mine", n=len(train_ds), labels=train_ds["label"])
    Trainer(model, args, train_dataset=train_ds, callbacks=[cb]).train()
    # runs/mine is a score folder: sensprune prune / report / info

A ``TrainerCallback`` sees neither the batch nor the logits, so the callback hooks the model itself when
training begins (text or image classification alike: any model whose output has ``.logits`` (B, K)):

- a forward pre-hook takes the ``index_column`` out of the model's keyword inputs (on every forward, so the
  model never sees it; evaluation too);
- a forward hook, on a training forward (train mode, gradients on), calls
  ``tracker.step(idx, output.logits, labels)`` with the ``labels`` the Trainer passed to the model (or,
  when it passed none, e.g. under label smoothing, the callback's ``labels=``);
- ``on_epoch_end``: ``tracker.epoch_end()``; ``on_train_end``: ``tracker.save(out)`` (on every process under
  DDP; rank 0 writes).

The rows must carry their position in the training set in ``index_column``, and
``TrainingArguments(remove_unused_columns=False)`` keeps it (the Trainer drops columns that ``forward`` does
not name): the other columns must then all be model inputs. ``input_grad``, ``loss_sensitivity`` and ``el2n``
are refused (see :mod:`sensprune.integrations`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch

from sensprune.errors import ValidationError
from sensprune.integrations import adapter_measures, require
from sensprune.io import prepare_out
from sensprune.measures.peers import DYNAMICS
from sensprune.tracker import DEFAULT_TRACKED, Tracker

TrainerCallback = require("transformers", "transformers").TrainerCallback

SUPPORTED = DYNAMICS


class SensPruneCallback(TrainerCallback):
    """Per-example measures of a ``Trainer`` run, saved as a score folder when training ends.

    Parameters
    ----------
    out : str or Path
        The score folder to write (checked now, written at the end of training).
    n : int
        Size of the training set; ``index_column`` holds positions in ``0..n-1``.
    labels : array-like (N,) of int, optional
        The training labels in index order (used when the Trainer passes the model no ``labels``).
    measures : sequence of str
        From ``loss, forgetting, aum, confidence, variability, correctness``.
    index_column : str
        The dataset column holding each row's position in the training set.
    num_classes, dataset, seed
        Passed to :class:`sensprune.Tracker`.
    force : bool
        Replace an existing score folder at ``out``.

    Attributes
    ----------
    tracker : sensprune.Tracker
        The tracker being fed.
    path_ : Path
        The folder written, once training has ended.
    """

    def __init__(self, out: str | Path, n: int, labels=None, measures: Sequence[str] = DEFAULT_TRACKED, *,
                 index_column: str = "idx", num_classes: int | None = None, dataset=None, seed: int = 0,
                 force: bool = False):
        names = adapter_measures(measures, SUPPORTED, "SensPruneCallback")
        if not isinstance(index_column, str) or not index_column:
            raise ValidationError(f"SensPruneCallback: index_column must be a column name; got {index_column!r}.")
        self.tracker = Tracker(n, labels, names, num_classes=num_classes, dataset=dataset, seed=seed)
        self.out = prepare_out(out, force=force, option="out")
        self.force = force
        self.index_column = index_column
        self.path_: Path | None = None
        self._hooked = None  # the model the hooks are on
        self._training = False
        self._idx = None

    # -- the model's hooks ------------------------------------------------------------------------------

    def _take_index(self, module, args, kwargs):
        idx = kwargs.pop(self.index_column, None)
        recording = self._training and module.training and torch.is_grad_enabled()
        if recording and idx is None:
            raise ValidationError(f"SensPruneCallback: the model's inputs have no {self.index_column!r} column; "
                                  "give each training row its position in the training set (index_column=).")
        self._idx = idx if recording else None
        return args, kwargs

    def _record(self, module, args, kwargs, output) -> None:
        if self._idx is None:
            return
        idx, self._idx = self._idx, None
        logits = getattr(output, "logits", None)
        if not isinstance(logits, torch.Tensor):
            raise ValidationError(f"SensPruneCallback: the model's output must have .logits (B, K); got "
                                  f"{type(output).__name__} (use a *ForSequenceClassification / "
                                  "*ForImageClassification model with return_dict=True).")
        self.tracker.step(idx, logits, kwargs.get("labels"))

    # -- the Trainer's hooks ------------------------------------------------------------------------------

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        if args.remove_unused_columns:
            raise ValidationError(f"SensPruneCallback: TrainingArguments(remove_unused_columns=...) must be False "
                                  f"so that the {self.index_column!r} column reaches the model (the callback takes "
                                  "it out before the forward); got True.")
        if self._hooked is not model:  # once per model, also across train() calls
            model.register_forward_pre_hook(self._take_index, with_kwargs=True)
            model.register_forward_hook(self._record, with_kwargs=True)
            self._hooked = model
        self._training = True

    def on_epoch_end(self, args, state, control, **kwargs):
        self.tracker.epoch_end()

    def on_train_end(self, args, state, control, **kwargs):
        self._training = False
        self.path_ = self.tracker.save(self.out, force=self.force)
