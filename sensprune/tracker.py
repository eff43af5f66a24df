"""``sensprune.Tracker``: the training-dynamics measures inside *your own* training loop.

::

    tracker = sp.Tracker(n=len(train_set), labels=y, measures=["aum", "forgetting", "input_grad", "el2n"])
    for epoch in range(epochs):
        for idx, x, y in loader:                       # idx: positions in the training set
            x = x.requires_grad_()                     # input_grad needs it before the forward
            logits = model(x)
            tracker.step(idx, logits, y, x=x)          # before loss.backward()
            loss = F.cross_entropy(logits, y); opt.zero_grad(); loss.backward(); opt.step()
        tracker.epoch_end(model=model, eval_data=(x_train, y_train))   # el2n needs the model at its epoch
    tracker.save("runs/mine")                          # a score folder: sensprune prune / report / info

The arithmetic is that of sensprune's own loop — the very hooks :class:`~sensprune.measures.peers.DynamicsHook`,
:class:`~sensprune.measures.input_grad.InputGradHook` and :class:`~sensprune.measures.peers.EL2NHook` —
so the tracker fed the run that ``sp.score`` trains gives the same values.

What each measure needs
-----------------------
``loss``, ``forgetting``, ``aum``, ``confidence``, ``variability``, ``correctness``
    ``idx``, the logits of the batch *at presentation* (train mode, before the step's update) and the labels.
    Each example must appear at most once per epoch (one pass over the data, closed by ``epoch_end``), as in
    Toneva et al. 2019; ``step`` refuses a second presentation (with these measures or ``input_grad``).
``input_grad``
    ``x`` with ``requires_grad`` set **before the forward**, and ``step`` called before
    ``loss.backward()`` (or after ``backward(retain_graph=True)``): the tracker takes
    ‖∇ₓ Σᵢ ℓᵢ‖₁ per example with ``torch.autograd.grad`` (one extra backward to the input). With
    BatchNorm in train mode the examples of a batch are coupled, so this is not exactly per-example.
``el2n`` (Paul et al. 2021)
    ``epoch_end(model=..., eval_data=...)`` at epoch ``el2n_epoch`` (1-based, default 1 — sensprune score
    uses 10% of the epochs): the model is evaluated in eval mode on ``eval_data``, the whole training set
    in index order: ``(x, y)`` arrays/tensors or a map-style Dataset returning ``(x, y)``.

``loss_sensitivity`` (the paper's measure, Arpit et al. 2017 §3.2)
    ``model=``, ``optimizer=`` and ``data=`` (the training set in index order) given to the Tracker before the
    first step; the run is recorded and replayed at ``save()`` by the engine of ``sensprune score`` (same values
    on the same run). What the loop must do is in :mod:`sensprune.tracker_sensitivity`.

Data-parallel (DDP): pass *global* indices (e.g. from a dataset that returns its index, sharded by a
``DistributedSampler``); every rank calls ``step`` for its own examples and ``epoch_end`` (``el2n``
evaluates the whole training set on every rank); ``save`` must be called on every rank: the
accumulators are summed across ranks (the hook contract's ``sum`` keys), and rank 0 writes the folder.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.nn.functional as F

from sensprune.data.given import train_fingerprint
from sensprune.config import TrainConfig, check_seed
from sensprune.errors import ValidationError
from sensprune.io import fingerprint_arrays, prepare_out_dir
from sensprune.measures.gini import gini
from sensprune.measures.input_grad import InputGradHook
from sensprune.measures.peers import DYNAMICS, DynamicsHook, EL2NHook
from sensprune.scoring.table import ScoreTable, save_scores, score_meta
from sensprune.tracker_sensitivity import SensitivityRecorder
from sensprune.train import distributed as D
from sensprune.train.hooks import Run, StepInfo
from sensprune.train.sources import ArraySource, LoaderSource

#: Measures a tracker computes (those that need only what a training loop sees, and loss_sensitivity, which
#: records what the replay needs and computes at save()).
TRACKABLE = (*DYNAMICS, "input_grad", "el2n", "loss_sensitivity")
DEFAULT_TRACKED = ("loss", "forgetting", "aum", "confidence", "variability", "correctness")


def _tensor(a, name: str) -> torch.Tensor:
    if isinstance(a, torch.Tensor):
        return a
    try:
        return torch.as_tensor(np.asarray(a))
    except Exception:
        raise ValidationError(f"Tracker.step: {name} must be a tensor or an array; got {type(a).__name__}.") from None


class Tracker:
    """Per-example measures from your own training loop (see the module docstring).

    Parameters
    ----------
    n : int
        Size of the training set; ``idx`` passed to :meth:`step` are positions in ``0..n-1``.
    labels : array-like (N,) of int, optional
        The training labels in index order (also saved; without them the labels seen by ``step`` are used).
    measures : sequence of str
        From :data:`TRACKABLE`.
    num_classes : int, optional
        Default: ``max(labels) + 1`` when labels are given, else the logits' width.
    el2n_epoch : int
        1-based epoch at whose end EL2N is taken (default 1).
    dataset : sensprune Dataset, optional
        The data being trained on, when it is one sensprune can load (``sp.data.load_dataset(spec)``): its
        spec and fingerprint are saved, so ``prune --export-data``, ``report`` pictures and
        ``bench --selection`` can reload and check it. Without it the folder's dataset is ``python:tracker``.
    model, optimizer, data : for ``loss_sensitivity`` (see the module docstring)
        The model and the ``torch.optim.SGD``/``Adam``/``AdamW`` optimizer being trained, before the first step;
        ``data`` the training set in index order: ``(x, y)`` arrays or tensors, or a map-style Dataset returning
        ``(x, y)`` (the stored, un-augmented inputs).
    augment : "crop-flip", a function ``(x, seed) -> x'`` or None
        The loop's augmentation, applied through :meth:`augment` so that its seed is recorded.
    clip_grad_norm : float, optional
        The ``max_norm`` of ``torch.nn.utils.clip_grad_norm_`` if the loop clips (replayed).
    probe_times, probe_size, sensitivity_memory, seed
        loss_sensitivity's K (default 16), probe set size (default 2048), memory budget (bytes or "2GB"; default
        70% of free memory) and seed (sampling of the probe steps and of the augmentation).
    """

    def __init__(self, n: int, labels=None, measures: Sequence[str] = DEFAULT_TRACKED, *,
                 num_classes: int | None = None, el2n_epoch: int = 1, dataset=None, model=None, optimizer=None,
                 data=None, augment=None, clip_grad_norm: float | None = None, probe_times=None,
                 probe_size: int | None = None, sensitivity_memory=None, seed: int = 0):
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValidationError(f"Tracker: n must be a positive integer (the training set size); got {n!r}.")
        self.n = int(n)
        names = [measures] if isinstance(measures, str) else list(measures)
        bad = [m for m in names if m not in TRACKABLE]
        if bad or not names:
            what = ", ".join(map(repr, bad)) or "(none)"
            raise ValidationError(f"Tracker: unknown or untrackable measure(s) {what}. "
                                  f"A tracker computes: {', '.join(TRACKABLE)}; the others need sensprune's own "
                                  "loop (sp.score).")
        self.measures = list(dict.fromkeys(names))
        self.labels = None
        if labels is not None:
            lab = np.asarray(labels.detach().cpu() if isinstance(labels, torch.Tensor) else labels)
            if lab.shape != (self.n,) or not np.issubdtype(lab.dtype, np.integer) or (lab.size and lab.min() < 0):
                raise ValidationError(f"Tracker: labels must be {self.n} non-negative integers (one per training "
                                      f"example); got {lab.dtype} of shape {lab.shape}.")
            self.labels = lab.astype(np.int64)
        top = int(self.labels.max()) if self.labels is not None and self.labels.size else -1
        if num_classes is not None and (isinstance(num_classes, bool) or not isinstance(num_classes, (int, np.integer))
                                        or num_classes < max(1, top + 1)):
            raise ValidationError(f"Tracker: num_classes must be an integer >= {max(1, top + 1)} (above every label); "
                                  f"got {num_classes!r}.")
        self.num_classes = int(num_classes) if num_classes is not None else (top + 1 if top >= 0 else None)
        if isinstance(el2n_epoch, bool) or not isinstance(el2n_epoch, int) or el2n_epoch < 1:
            raise ValidationError(f"Tracker: el2n_epoch must be an integer >= 1; got {el2n_epoch!r}.")
        self.el2n_epoch = el2n_epoch
        check_seed(seed, "Tracker: seed")
        self.dataset_meta: dict[str, Any] = {"spec": "python:tracker", "n_train": self.n, "fingerprint": None}
        if dataset is not None:
            if not hasattr(dataset, "describe") or getattr(dataset, "n_train", None) != self.n:
                raise ValidationError(f"Tracker: dataset must be a sensprune Dataset of {self.n} training examples.")
            self.dataset_meta = dataset.describe()
            if hasattr(dataset, "x_train"):
                self.dataset_meta["train_fingerprint"] = fingerprint_arrays(dataset.x_train, dataset.y_train)
        self.hooks: list[Any] = []
        if any(m in DYNAMICS for m in self.measures):
            self.hooks.append(DynamicsHook(self.n))
        self._input_grad = "input_grad" in self.measures
        if self._input_grad:
            self.hooks.append(InputGradHook(self.n))
        self._el2n = EL2NHook(self.n, el2n_epoch) if "el2n" in self.measures else None
        if self._el2n is not None:
            self.hooks.append(self._el2n)
        self._sens = None
        if "loss_sensitivity" in self.measures:
            self._sens = SensitivityRecorder(self.n, self.labels, model, optimizer, data, augment=augment,
                                             clip_grad_norm=clip_grad_norm, probe_times=probe_times,
                                             probe_size=probe_size, memory=sensitivity_memory, seed=seed)
            self.hooks.append(self._sens.hook)
        self.seen_labels = np.full(self.n, -1, np.int64)
        self._presented = np.zeros(self.n, bool)  # this epoch, this rank
        # the per-presentation measures take one pass over the data per epoch (loss_sensitivity replays any batches)
        self._once_per_epoch = any(m in DYNAMICS or m == "input_grad" for m in self.measures)
        self.epoch = 0
        self.steps = 0
        self._t0 = time.perf_counter()  # the meta's wall_time_s: from construction to the table
        self.history: list[dict[str, Any]] = []
        self.gini_rows: list[list[float]] = []
        self._epoch_sums = np.zeros(3)  # loss sum, correct, seen (this rank, this epoch)
        self._synced = None

    # -- the loop's calls -----------------------------------------------------------------------------------

    def step(self, idx, logits: torch.Tensor, y=None, *, x: torch.Tensor | None = None) -> None:
        """Record one minibatch: ``idx`` (B,) positions, ``logits`` (B, K) at presentation, labels ``y`` (B,).

        Call it after the forward and before ``loss.backward()`` when ``input_grad`` is tracked (``x``
        must then be the input tensor, with ``requires_grad`` set before the forward). Everything is checked
        before anything is recorded: ``idx`` distinct integers in ``0..n-1`` (not yet presented this epoch when
        a per-presentation measure is tracked, i.e. any but ``el2n`` and ``loss_sensitivity``);
        ``logits`` a finite floating-point (B, K) tensor; ``y`` integer labels (an integer dtype: a float
        label is refused, even 1.0, as ``F.cross_entropy`` refuses it) equal to ``labels[idx]`` when the
        Tracker was given ``labels=``, else the same at every presentation of an example.
        """
        idx_t, idx_np, y_t = self._check_step(idx, logits, y)
        b = len(idx_np)
        idx_t = idx_t.to(logits.device).long()
        losses = F.cross_entropy(logits, y_t, reduction="none")
        gx = None
        if self._input_grad:
            gx = self._input_gradient(losses, x, b)
        if self._sens is not None:
            self._sens.on_batch(idx_t, x, y_t)
        # checked: from here on the step is recorded
        if self.num_classes is None:
            self.num_classes = int(logits.shape[1])
        self._presented[idx_np] = True
        self.seen_labels[idx_np] = y_t.cpu().numpy()
        hit = logits.argmax(1) == y_t  # integer ops: nothing recorded for autograd
        info = StepInfo(self.epoch, self.steps, idx_t, None if x is None else x.detach(), y_t, logits.detach(),
                        losses.detach(), gx, float("nan"), hit)
        for h in self.hooks:
            if h is not getattr(self._sens, "hook", None):
                h.on_step(info, None)
        with torch.no_grad():
            self._epoch_sums += [float(losses.sum()), float(hit.sum()), b]
        self.steps += 1

    def _check_step(self, idx, logits, y) -> tuple[torch.Tensor, np.ndarray, torch.Tensor]:
        """``(idx tensor, idx (B,) int64 on the host, y (B,) long on the logits' device)``, or a ValidationError."""
        idx_t = _tensor(idx, "idx").detach()
        if idx_t.dim() != 1 or idx_t.dtype.is_floating_point or idx_t.dtype.is_complex or idx_t.dtype == torch.bool:
            raise ValidationError(f"Tracker.step: idx must be a 1-D integer tensor of positions; got "
                                  f"{idx_t.dtype} of shape {tuple(idx_t.shape)}.")
        idx_np = idx_t.cpu().numpy().astype(np.int64)
        b = len(idx_np)
        if b and (idx_np.min() < 0 or idx_np.max() >= self.n):
            raise ValidationError(f"Tracker.step: indices must be in 0..{self.n - 1} (n={self.n}); got "
                                  f"{idx_np.min()}..{idx_np.max()}.")
        uniq, first, counts = np.unique(idx_np, return_index=True, return_counts=True)
        if len(uniq) < b:
            i = int(np.argmin(np.where(counts > 1, first, b)))
            raise ValidationError(f"Tracker.step: the indices of a batch must be distinct (each example once per "
                                  f"epoch); got index {uniq[i]} {counts[i]} times.")
        again = np.flatnonzero(self._presented[idx_np]) if self._once_per_epoch else ()
        if len(again):
            raise ValidationError(f"Tracker.step: each example must be presented at most once per epoch (call "
                                  f"tracker.epoch_end() after each pass over the data); got index "
                                  f"{idx_np[again[0]]} a second time in epoch {self.epoch + 1}.")
        if not isinstance(logits, torch.Tensor):
            raise ValidationError(f"Tracker.step: logits must be a torch tensor; got {type(logits).__name__}.")
        if not logits.is_floating_point():
            raise ValidationError(f"Tracker.step: logits must be a floating-point tensor (the model's raw outputs); "
                                  f"got {logits.dtype}.")
        k = self.num_classes
        if logits.dim() != 2 or logits.shape[0] != b or (k is not None and logits.shape[1] != k):
            want = f"({b}, {k if k is not None else 'K'})"
            raise ValidationError(f"Tracker.step: logits must have shape {want} (one row per index, one column "
                                  f"per class); got {tuple(logits.shape)}.")
        finite = torch.isfinite(logits.detach()).all(1)
        if not bool(finite.all()):
            row = int(torch.nonzero(~finite)[0, 0])
            bad = logits.detach()[row][~torch.isfinite(logits.detach()[row])][0].item()
            raise ValidationError(f"Tracker.step: logits must be finite; got {bad} in the row of index "
                                  f"{idx_np[row]} (the training diverged or the model's output is broken).")
        if y is None:
            if self.labels is None:
                raise ValidationError("Tracker.step: pass the labels y (or labels= to Tracker).")
            y_np = self.labels[idx_np]
        else:
            y_t = _tensor(y, "y").detach()
            if y_t.dtype.is_floating_point or y_t.dtype.is_complex or y_t.dtype == torch.bool:
                raise ValidationError(f"Tracker.step: y must hold integer class ids (an integer dtype, as "
                                      f"F.cross_entropy takes); got {y_t.dtype}.")
            if y_t.numel() != b or y_t.dim() > 2 or (y_t.dim() == 2 and y_t.shape[1] != 1):
                raise ValidationError(f"Tracker.step: y must hold one label per index, shape ({b},); got shape "
                                      f"{tuple(y_t.shape)}.")
            y_np = y_t.reshape(-1).cpu().numpy().astype(np.int64)
        if b and (y_np.min() < 0 or y_np.max() >= logits.shape[1]):
            raise ValidationError(f"Tracker.step: labels must be in 0..{logits.shape[1] - 1}; got "
                                  f"{y_np.min()}..{y_np.max()}.")
        known = self.labels[idx_np] if self.labels is not None else self.seen_labels[idx_np]
        differ = np.flatnonzero((known >= 0) & (known != y_np))
        if len(differ):
            j = differ[0]
            whose = "the labels= the Tracker was given" if self.labels is not None else "its label at an earlier step"
            raise ValidationError(f"Tracker.step: y must equal {whose}; got y={y_np[j]} for index {idx_np[j]}, "
                                  f"whose label is {known[j]}.")
        return idx_t, idx_np, torch.as_tensor(y_np, device=logits.device)

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """The batch ``x`` after the tracker's ``augment=``, with this step's seed recorded for the replay of
        loss_sensitivity; call it on the stored inputs of ``data[idx]`` before the forward."""
        if self._sens is None:
            raise ValidationError("Tracker.augment: give augment= (and loss_sensitivity) to the Tracker.")
        return self._sens.augment(x)

    def _input_gradient(self, losses: torch.Tensor, x, b: int) -> torch.Tensor:
        if not isinstance(x, torch.Tensor) or x.shape[:1] != (b,):
            raise ValidationError("Tracker.step: input_grad needs x=, the batch's input tensor (B, ...).")
        if not x.requires_grad or not losses.requires_grad:
            raise ValidationError("Tracker.step: input_grad needs x with requires_grad set before the forward "
                                  "(x.requires_grad_()) and logits still attached to the graph.")
        try:
            (g,) = torch.autograd.grad(losses.sum(), x, retain_graph=True)
        except RuntimeError as exc:
            raise ValidationError("Tracker.step: the input gradient could not be taken; call tracker.step "
                                  f"before loss.backward() ({' '.join(str(exc).split())[:120]}).") from None
        return g.detach().float()

    def epoch_end(self, *, model: torch.nn.Module | None = None, eval_data=None, batch_size: int = 256,
                  **metrics) -> None:
        """Close the epoch: fold the step buffers, take EL2N at ``el2n_epoch``, record Gini and history.

        ``model`` and ``eval_data`` (the training set in index order) are needed at the EL2N epoch;
        extra ``metrics`` (e.g. ``test_acc=0.91``) go into the saved history.
        """

        run = None
        if self._el2n is not None and self.epoch + 1 == self.el2n_epoch:
            run = self._eval_run(model, eval_data, batch_size)
        for h in self.hooks:
            if h is not getattr(self._sens, "hook", None):
                h.on_epoch_end(self.epoch, run)
        if D.world_size() > 1:  # every rank then holds the values of the whole training set
            self._synced = D.sync_hooks(self.hooks, self._synced)
            sums = torch.from_numpy(self._epoch_sums.copy())
            torch.distributed.all_reduce(sums)
            self._epoch_sums = sums.numpy()
        loss_sum, correct, seen = self._epoch_sums
        rec = {"epoch": self.epoch + 1, "train_loss": loss_sum / max(seen, 1), "train_acc": correct / max(seen, 1),
               **{k: float(v) for k, v in metrics.items()}}
        self.history.append(rec)
        vals = self._values()
        self.gini_rows.append([gini(vals[m]) for m in self.measures])  # NaN while no value is finite
        self._epoch_sums = np.zeros(3)
        self._presented[:] = False
        self.epoch += 1

    def _eval_run(self, model, eval_data, batch_size: int) -> Run:
        if not isinstance(model, torch.nn.Module) or eval_data is None:
            raise ValidationError(f"Tracker.epoch_end: el2n is taken at the end of epoch {self.el2n_epoch}; pass "
                                  "model= and eval_data= (the training set in index order).")
        device = next(iter(model.parameters()), torch.zeros(())).device
        if isinstance(eval_data, (tuple, list)) and len(eval_data) == 2:
            x, y = (v.detach().cpu().numpy() if isinstance(v, torch.Tensor) else np.asarray(v) for v in eval_data)
            src = ArraySource(x.astype(np.float32), y.astype(np.int64), device)
            if "train_fingerprint" not in self.dataset_meta and len(y) == self.n:

                self.dataset_meta["train_fingerprint"] = train_fingerprint((x, y))
        else:
            src = LoaderSource(eval_data, device, num_workers=0)
        if len(src) != self.n:
            raise ValidationError(f"Tracker.epoch_end: eval_data has {len(src)} examples, the tracker {self.n}; "
                                  "pass the whole training set in index order.")
        return Run(model, None, TrainConfig(eval_batch_size=batch_size), src, device)

    # -- results ------------------------------------------------------------------------------------------------

    def _values(self) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        for h in self.hooks:
            out.update(h.values())
        return {m: np.asarray(out[m], np.float64) for m in self.measures}

    def values(self) -> dict[str, np.ndarray]:
        """``{measure: (N,) float64}`` so far on this rank (NaN for examples not seen yet), higher = harder."""
        return self._values()

    def table(self):
        """The :class:`~sensprune.scoring.table.ScoreTable` that :meth:`save` writes (after reducing across ranks)."""

        if self.steps == 0:
            raise ValidationError("Tracker: no step was recorded; call tracker.step(idx, logits, y) in your "
                                  "training loop before saving.")
        if self._sens is not None and not self._sens.done:
            self._sens.finish()
        if D.world_size() > 1:
            self._synced = D.sync_hooks(self.hooks, self._synced)
            seen = torch.from_numpy(self.seen_labels.copy())
            torch.distributed.all_reduce(seen, op=torch.distributed.ReduceOp.MAX)
            self.seen_labels = seen.numpy()
        vals = self._values()
        label = self.labels if self.labels is not None else self.seen_labels
        meta = score_meta(config={"tracker": True, "measures": self.measures, "el2n_epoch": self.el2n_epoch,
                                  "epochs": self.epoch, "steps": self.steps},
                          seeds=[0], dataset={**self.dataset_meta, "num_classes": self.num_classes}, values=vals,
                          gini_rows=self.gini_rows, history={"0": self.history},
                          notes={k: v for h in self.hooks for k, v in h.meta().items()},
                          note="computed by sensprune.Tracker in the user's own training loop; examples never "
                               "presented have NaN.", wall_time_s=time.perf_counter() - self._t0)
        idx = np.arange(self.n, dtype=np.int64)
        return ScoreTable(idx, label.astype(np.int64), vals, {m: v[None] for m, v in vals.items()}, meta)

    def save(self, out: str | Path, *, force: bool = False) -> Path:
        """Write a score folder (``scores.npz``, ``scores.csv``, ``meta.json``) that ``sensprune prune``,
        ``report``, ``info`` and ``bench --selection`` accept; under DDP call it on every rank (rank 0 writes).
        """

        table = self.table()
        out = Path(out)
        if D.is_main():
            prepare_out_dir(out, force=force)
            save_scores(table, out)
        D.barrier()
        return out
