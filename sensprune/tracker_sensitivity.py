"""``loss_sensitivity`` in your own loop: what :class:`sensprune.Tracker` records for the replay, and how.

::

    tracker = sp.Tracker(n, labels=y, measures=["loss_sensitivity", "aum"], model=model, optimizer=opt,
                         data=(x, y), augment="crop-flip")           # before the first step
    for epoch in range(epochs):
        for idx in batches:                                          # idx: positions in data
            xb = tracker.augment(x[idx])                             # only with augment=
            logits = model(xb)
            tracker.step(idx, logits, y[idx])
            loss = F.cross_entropy(logits, y[idx]); opt.zero_grad(); loss.backward(); opt.step()
        tracker.epoch_end()
    tracker.save("runs/mine")                                        # replays and computes loss_sensitivity

The same engine as ``sensprune score`` (:class:`~sensprune.measures.loss_sensitivity.sampled.SampledSensitivityHook`)
records θ_0, the buffers and the optimizer state when the tracker is made, and per optimizer step (an
optimizer step post-hook) the batch given to ``step``, each param group's learning rate, the RNG state before the
step's first forward (a model forward pre-hook; only when the model has Dropout) and the augmentation seed.
What a loop must do to be replayed: one ``tracker.step`` per ``optimizer.step()``, the loss ``F.cross_entropy``
(mean over the batch) of ``model(x)`` on the batch ``data[idx]`` (through ``tracker.augment`` when augmented),
``torch.optim.SGD``/``Adam``/``AdamW`` with a fixed set of param groups (clipping by norm if
``clip_grad_norm=`` says so). The first optimizer step is replayed at once and compared with the model: a loop
that does something else (another loss, gradient accumulation, label smoothing) is refused there, not at save.
"""

from __future__ import annotations

import numpy as np
import torch

from sensprune.errors import ValidationError
from sensprune.measures.loss_sensitivity.exact import DRIFT_WARN, stratified_probe
from sensprune.measures.loss_sensitivity.replay import replay_drift, run_step
from sensprune.measures.loss_sensitivity.sampled import SampledSensitivityHook
from sensprune.train import distributed as D
from sensprune.train.augment import augment as builtin_augment
from sensprune.train.augment import step_seed
from sensprune.train.loop import rng_state


def _training_set(data, n: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """(x (N, ...) float, y (N,) long) on ``device`` from arrays/tensors ``(x, y)`` or a map-style Dataset."""
    if isinstance(data, (tuple, list)) and len(data) == 2:
        x, y = (torch.as_tensor(np.asarray(v.detach().cpu()) if torch.is_tensor(v) else np.asarray(v))
                for v in data)
    elif hasattr(data, "__getitem__") and hasattr(data, "__len__"):
        items = [data[i] for i in range(len(data))]
        x = torch.stack([torch.as_tensor(np.asarray(a)) for a, _ in items])
        y = torch.as_tensor([int(b) for _, b in items])
    else:
        raise ValidationError(f"Tracker: data must be (x, y) arrays or tensors or a map-style Dataset of (x, y); "
                              f"got {type(data).__name__}.")
    if len(x) != n or len(y) != n:
        raise ValidationError(f"Tracker: data has {len(x)} examples, the tracker {n}; pass the whole training set "
                              "in index order.")
    return x.to(device=device, dtype=torch.float32), y.to(device=device, dtype=torch.long)


class SensitivityRecorder:
    """Drives a :class:`SampledSensitivityHook` from a user's loop (see the module docstring)."""

    def __init__(self, n: int, labels, model, optimizer, data, *, augment=None, clip_grad_norm=None,
                 probe_times=None, probe_size=None, memory=None, seed: int = 0):
        missing = [name for name, v in (("model", model), ("optimizer", optimizer), ("data", data)) if v is None]
        if missing:
            raise ValidationError(f"Tracker: loss_sensitivity replays your run and needs model=, optimizer= and data= "
                                  f"(the training set in index order); missing: {', '.join(missing)}.")
        if not isinstance(model, torch.nn.Module) or not isinstance(optimizer, torch.optim.Optimizer):
            raise ValidationError("Tracker: model= must be a torch.nn.Module and optimizer= a torch.optim optimizer.")
        if D.world_size() > 1:
            raise ValidationError("Tracker: loss_sensitivity does not support data-parallel runs yet; track it in a "
                                  "single process.")
        from sensprune.config import MeasureOptions

        opts = MeasureOptions.from_value({"probe_times": probe_times, "sensitivity_memory": memory,
                                          **({"probe_size": probe_size} if probe_size is not None else {})},
                                         source="Tracker option")
        device = next(iter(model.parameters()), torch.zeros(())).device
        x, y = _training_set(data, n, device)
        differ = np.flatnonzero(np.asarray(labels) != y.cpu().numpy()) if labels is not None else ()
        if len(differ):
            i = int(differ[0])
            raise ValidationError(f"Tracker: the labels of data= must equal labels= (the same training set); got "
                                  f"{int(y[i])} for index {i}, whose label is {int(labels[i])}.")
        if augment is not None and not (augment == "crop-flip" or callable(augment)):
            raise ValidationError(f"Tracker: augment= must be 'crop-flip' or a function (x, seed) -> x'; got "
                                  f"{augment!r}.")
        self.augment_fn = (lambda xb, s: builtin_augment("crop-flip", xb, s)) if augment == "crop-flip" else augment
        self.seed = int(seed)
        probe = stratified_probe(y.cpu().numpy(), opts.probe_size, seed=0)
        self.hook = SampledSensitivityHook(n, probe, opts.probe_times, seed=self.seed,
                                           memory=opts.sensitivity_memory)
        self.hook.augment = "crop-flip" if augment == "crop-flip" else ("user function" if augment else "none")
        self.hook.begin(model, optimizer, x, y, augment=self.augment_fn, clip_norm=clip_grad_norm)
        self.model, self.optimizer, self.x, self.y = model, optimizer, x, y
        self.groups = [len(g["params"]) for g in optimizer.param_groups]
        self.pending_idx = self.pending_rng = self.pending_seed = None
        self.opt_steps, self.done, self.replaying = 0, False, False
        self.clip = clip_grad_norm
        self.handles = [optimizer.register_step_post_hook(self._after_step),
                        model.register_forward_pre_hook(self._before_forward)]

    def _before_forward(self, module, args):
        if self.hook.needs_rng_state and self.pending_rng is None and module.training and not self.replaying:
            self.pending_rng = rng_state(self.x.device)

    def augment(self, xb: torch.Tensor) -> torch.Tensor:
        if self.augment_fn is None:
            raise ValidationError("Tracker.augment: the tracker was made without augment=.")
        self.pending_seed = step_seed(self.seed, self.opt_steps)
        return self.augment_fn(xb, self.pending_seed)

    def on_batch(self, idx: torch.Tensor, x, y: torch.Tensor) -> None:
        if self.pending_idx is not None:
            raise ValidationError("Tracker.step: two batches before one optimizer.step(); loss_sensitivity replays "
                                  "one batch per update (no gradient accumulation).")
        want = self.y[idx.to(self.y.device)]
        differ = torch.nonzero(y.to(self.y.device) != want)
        if len(differ):
            j = int(differ[0, 0])
            raise ValidationError(f"Tracker.step: y must equal the labels of data[idx] (idx indexes data= in order); "
                                  f"got y={int(y[j])} for index {int(idx[j])}, whose label is {int(want[j])}.")
        if x is not None and self.augment_fn is None:
            same = x.shape == self.x[idx].shape and torch.allclose(x.detach().to(self.x.dtype), self.x[idx])
            if not same:
                raise ValidationError("Tracker.step: x differs from data[idx]; idx must index data= in order (with "
                                      "augmentation, pass augment= and use tracker.augment).")
        self.pending_idx = idx.detach().cpu()

    def _after_step(self, optimizer, args, kwargs) -> None:
        if self.pending_idx is None:
            raise ValidationError("Tracker: optimizer.step() was called without tracker.step(idx, ...) for its batch; "
                                  "loss_sensitivity needs every update's batch.")
        if [len(g["params"]) for g in optimizer.param_groups] != self.groups:
            raise ValidationError("Tracker: the optimizer's parameter groups changed mid-run (a group was added or "
                                  "resized); loss_sensitivity replays a fixed set of groups.")
        if self.augment_fn is not None and self.pending_seed is None:
            raise ValidationError("Tracker: augment= was given but tracker.augment(x) was not called for this step.")
        self.hook.record(self.pending_idx, [g["lr"] for g in optimizer.param_groups], self.pending_rng,
                         self.pending_seed)
        self.opt_steps += 1
        self.pending_idx = self.pending_rng = self.pending_seed = None
        if self.opt_steps == 1:
            self._check_first_step()

    def _check_first_step(self) -> None:
        """Replay the first update at once: a loop the engine cannot reproduce is refused here, not at save."""
        recipe, start, records = self.hook.replay_inputs()
        self.replaying = True  # the replay's forward is not a step of the loop
        try:
            _, rel, blame = replay_drift(run_step(recipe, start, 1, records[0]), self.model)
        finally:
            self.replaying = False
        if rel > DRIFT_WARN:
            raise ValidationError(f"Tracker: the first optimizer step does not replay (relative difference {rel:.1e} "
                                  f"at {blame!r}); loss_sensitivity needs the loss F.cross_entropy(model(x), y) "
                                  "(batch mean) on data[idx], one tracker.step per optimizer.step(), and the "
                                  "tracker's augment/clip_grad_norm for what the loop does.")

    def finish(self) -> None:
        for handle in self.handles:
            handle.remove()
        if self.opt_steps:
            self.hook.finish(self.model)
        self.done = True
