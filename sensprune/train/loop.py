"""The one training loop, used by every stage (score, bench, reproduce).

Design (after airbench): the whole training set is one tensor on the device; each epoch draws
one permutation of **all** N examples from a generator seeded by ``(seed, epoch)``; a subset
mask filters that shared permutation, so a pruned run and the full run with the same seed see
their common examples in the same order and start from the same initial weights — their
difference is paired. Batches are index slices of the filtered permutation. Data that should
not sit in memory goes through a DataLoader that fetches the very same index batches.

Measures plug in as :class:`Hook` objects that see, for every step, the batch indices,
per-example losses, logits and (if asked for) per-example input gradients.
"""

from __future__ import annotations

import math
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from sensprune.progress import progress_bar

from sensprune.config import TrainConfig
from sensprune.errors import TrainingDivergedError, ValidationError
from sensprune.train import distributed as D
from sensprune.train.augment import augment, check_augment, step_seed
from sensprune.train.checkpoint import load_checkpoint, save_checkpoint
from sensprune.train.hooks import FirstLayerInputGrad, Hook, Run, StepInfo
from sensprune.train.sources import ArraySource, LoaderSource, evaluate, index_batches

#: None: check the loss for NaN/inf at every step on CPU and once per epoch elsewhere; True/False force it
DEFER_FINITE_CHECK: bool | None = None


def resolve_device(name: str) -> torch.device:
    """``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda``/``cuda:i`` or ``mps``; a missing device is an error."""
    mps = getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "mps" if mps else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValidationError("--device cuda was asked for but no CUDA device is available; use --device cpu.")
    if name == "mps" and not mps:
        raise ValidationError("--device mps was asked for but MPS is not available; use --device cpu.")
    if name not in ("cpu", "cuda", "mps") and not name.startswith("cuda:"):
        raise ValidationError(f"Unknown device {name!r}; use auto, cpu, cuda or mps.")
    return torch.device(name)


def autocast_dtype(cfg: TrainConfig, device: torch.device):
    if cfg.amp == "none":
        return None
    if cfg.amp == "fp16" and device.type != "cuda":
        raise ValidationError(f"--amp fp16 needs a CUDA device (this run is on {device.type}); "
                              "use --amp bf16 or leave --amp off.")
    return torch.bfloat16 if cfg.amp == "bf16" else torch.float16


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict[str, Any]]
    wall_time_s: float
    resumed_from_epoch: int = 0

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


def epoch_order(n: int, seed: int, epoch: int, mask: torch.Tensor | None) -> torch.Tensor:
    """The shared permutation of all ``n`` examples for ``epoch``, filtered by ``mask`` (N,) bool."""
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    perm = torch.randperm(n, generator=gen)
    return perm if mask is None else perm[mask[perm]]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    if cfg.optimizer == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def batch_loss(losses: torch.Tensor, weights: torch.Tensor | None = None, factor: float | None = None) -> torch.Tensor:
    """The loss one optimizer step descends, written once for the loop and the loss_sensitivity replay:
    Σ_i w_i·ℓ_i · factor over the batch's per-example losses ``losses`` (B,), with w = 1 without per-example
    ``weights`` (B,) and ``factor`` = 1/|B| by default (data-parallel training passes world/|B_global|)."""
    factor = 1.0 / max(len(losses), 1) if factor is None else factor
    return (losses if weights is None else losses * weights.to(losses.dtype)).sum() * factor


def train(build_model: Callable[[], nn.Module], train_data: ArraySource | LoaderSource, cfg: TrainConfig, *,
          test_data: ArraySource | LoaderSource | None = None, mask: np.ndarray | None = None,
          weights: np.ndarray | None = None, hooks: Sequence[Hook] = (), checkpoint_dir: Path | None = None,
          progress: bool = True, desc: str = "train",
          stop: Callable[[dict[str, Any], Run], bool] | None = None, max_steps: int | None = None) -> TrainResult:
    """Train a fresh model from ``build_model()`` and return it with its per-epoch history.

    Parameters
    ----------
    build_model : callable
        Returns a new ``nn.Module``; called with the global generator seeded by ``cfg.seed`` (inside
        :func:`private_rng`, so the caller's RNG state is restored afterwards) so that runs with the
        same seed start from the same weights.
    train_data, test_data : ArraySource or LoaderSource
    mask : ndarray (N,) bool, optional
        Which training examples take part; applied to the shared permutation (paired runs).
    weights : ndarray (N,) float, optional
        Per-example loss weights (mean 1 keeps the loss scale); the batch loss is
        ``sum(w_i * l_i) / |B|``.
    hooks : sequence of Hook
    checkpoint_dir : Path, optional
        A checkpoint is written there after every epoch; if one exists, training resumes from it.
    stop : callable, optional
        ``stop(record, run) -> bool`` after every epoch (its history record and the live Run); True ends
        training early (e.g. bench's ``fit`` budget). The learning-rate schedule still spans ``cfg.epochs``.
    max_steps : int, optional
        End training after exactly this many SGD steps (bench's equal-steps budgets): the last epoch
        may stop part-way through its batch order; it is then the last history record. ``cfg.epochs``
        must be at least the epochs that many steps need. Every history record carries ``steps``, the
        SGD steps taken so far.
    """
    if max_steps is not None and (isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 1):
        raise ValueError(f"max_steps must be an integer >= 1; got {max_steps!r}")
    device = resolve_device(cfg.device)
    with private_rng(device):  # the seeds below never leak into the caller's global RNG state
        return _train(build_model, train_data, cfg, device, test_data=test_data, mask=mask, weights=weights,
                      hooks=hooks, checkpoint_dir=checkpoint_dir, progress=progress, desc=desc, stop=stop,
                      max_steps=max_steps)


@contextmanager
def private_rng(device: torch.device):
    """Fork the global torch RNG (CPU, and ``device`` when it is CUDA) for the block; restore it after.

    ``nn.Module`` initialisation and dropout draw from the global generator (they take no
    ``torch.Generator``), so the loop seeds it — inside this scope, leaving the caller's state untouched.
    """
    cuda = device.type == "cuda"
    devices = [device.index if device.index is not None else torch.cuda.current_device()] if cuda else []
    with torch.random.fork_rng(devices=devices, device_type="cuda" if cuda else "cpu"):
        yield


def _seed(seed: int, device: torch.device) -> None:
    """Seed the global CPU generator and the run's accelerator (not every GPU, as torch.manual_seed would)."""
    torch.default_generator.manual_seed(int(seed))
    if device.type == "cuda":
        with torch.cuda.device(device):
            torch.cuda.manual_seed(int(seed))
    elif device.type == "mps":
        torch.mps.manual_seed(int(seed))


def _train(build_model, train_data, cfg: TrainConfig, device: torch.device, *, test_data, mask, weights, hooks,
           checkpoint_dir, progress, desc, stop=None, max_steps=None) -> TrainResult:

    t0 = time.perf_counter()
    amp_dtype = autocast_dtype(cfg, device)
    n = len(train_data)
    world, rank = D.world_size(), D.rank()
    D.check_world(n)
    mask_t = _as_mask(mask, n)
    w_t = _as_weights(weights, n, device)
    _seed(cfg.seed, device)
    model = build_model().to(device)
    opt = make_optimizer(model, cfg)
    _seed(cfg.seed + 1, device)
    fwd = model if world == 1 else nn.parallel.DistributedDataParallel(model)
    if cfg.compile:
        fwd = torch.compile(fwd)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    run = Run(model, opt, cfg, train_data, device, weights=w_t)
    for h in hooks:
        h.on_train_begin(run)
    start = load_checkpoint(checkpoint_dir, run, hooks) if checkpoint_dir else 0
    synced = [{k: np.array(v, copy=True) for k, v in h.state_dict().items()} for h in hooks] if world > 1 else None
    need_grad = any(h.needs_input_grad for h in hooks)
    need_rng = any(getattr(h, "needs_rng_state", False) for h in hooks)
    # with augmentation, input gradients are taken w.r.t. the stored (un-augmented) input: the leaf path
    layer = FirstLayerInputGrad.find(model) if need_grad and not cfg.compile and cfg.augment == "none" else None
    first = None if layer is None else FirstLayerInputGrad(layer)
    # on an accelerator, `if not isfinite(loss)` would stall the queue every step: check at the epoch end
    defer_check = device.type != "cpu" if DEFER_FINITE_CHECK is None else DEFER_FINITE_CHECK
    bar = progress_bar(range(start, cfg.epochs), desc=desc, enabled=progress and rank == 0, leave=False,
                       dynamic_ncols=True, initial=start, total=cfg.epochs)
    step = start * math.ceil(int(mask_t.sum()) / cfg.batch_size if mask_t is not None else n / cfg.batch_size)
    for epoch in bar:
        te = time.perf_counter()
        lr = cfg.lr_at(epoch)
        for g in opt.param_groups:
            g["lr"] = lr
        model.train()
        order = epoch_order(n, cfg.seed, epoch, mask_t).to(device)
        sizes = [min(cfg.batch_size, len(order) - i) for i in range(0, len(order), cfg.batch_size)]
        loss_sum = torch.zeros((), dtype=torch.float64, device=device)
        correct_sum = torch.zeros((), dtype=torch.int64, device=device)
        seen = 0
        step0, epoch_losses = step, []
        batches = train_data.batches_of(index_batches(order, cfg.batch_size, rank, world))
        for n_global, (idx, x, y) in zip(sizes, batches):
            if max_steps is not None and step >= max_steps:
                break
            if need_grad and first is None:
                x = x.detach().requires_grad_(True)
            x_in, aug_seed = x, None
            if cfg.augment != "none":
                if step == step0:  # guards callers that skipped the edge's check
                    check_augment(cfg.augment, tuple(x.shape[1:]))
                aug_seed = step_seed(cfg.seed, step)
                x_in = augment(cfg.augment, x, aug_seed)
            rng = rng_state(device) if need_rng else None
            if first is not None:
                first.active = True  # only the training forward: hooks' own passes must not be captured
            if amp_dtype is None:
                logits = fwd(x_in)
            else:
                with torch.autocast(device.type, dtype=amp_dtype):
                    logits = fwd(x_in).float()
            if first is not None:
                first.active = False
            losses = F.cross_entropy(logits, y, reduction="none")
            bw = None if w_t is None else w_t[idx]
            # sum / |B_global| per update; DDP averages over ranks, hence the factor world
            factor = world / n_global
            loss = batch_loss(losses, bw, factor)
            if defer_check:
                epoch_losses.append(loss.detach())
            elif not torch.isfinite(loss):
                _diverged(float(loss.detach()), epoch, step)
            opt.zero_grad(set_to_none=True)
            (scaler.scale(loss) if scaler.is_enabled() else loss).backward()
            gx = None
            if need_grad:
                scale = 1.0 / (factor * scaler.get_scale())
                if bw is not None:
                    scale = scale / bw.reshape(-1, *([1] * (x.dim() - 1)))
                # in place: x.grad (our own leaf's) and the captured gradient belong to nobody else
                gx = (x.grad.detach() if first is None else first.take(x)).float().mul_(scale)
            hit = logits.argmax(1) == y  # integer ops: nothing recorded for autograd
            if hooks:
                info = StepInfo(epoch, step, idx, x.detach(), y, logits.detach(), losses.detach(), gx, lr, hit,
                                rng_state=rng, aug_seed=aug_seed)
                for h in hooks:
                    h.on_step(info, run)
            if scaler.is_enabled():
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
            for h in hooks:
                h.after_step(info, run)
            with torch.no_grad():
                loss_sum += losses.sum()
                correct_sum += hit.sum()
            seen += len(idx)
            step += 1
        if epoch_losses:
            bad = ~torch.isfinite(torch.stack(epoch_losses))
            if bool(bad.any()):
                j = int(bad.nonzero()[0, 0])
                _diverged(float(epoch_losses[j]), epoch, step0 + j)
        stats = torch.tensor([float(loss_sum), float(correct_sum), seen], dtype=torch.float64)
        if world > 1:
            D.all_reduce(stats)  # CPU tensor: sent on a device the group's backend takes (NCCL: CUDA)
            synced = D.sync_hooks(hooks, synced)
        tot_loss, tot_correct, seen = stats.tolist()
        rec = {"epoch": epoch + 1, "lr": lr, "train_loss": tot_loss / max(seen, 1),
               "train_acc": tot_correct / max(seen, 1), "steps": step}
        if test_data is not None:
            ev = evaluate(model, test_data, cfg.eval_batch_size)
            rec.update(test_loss=ev["loss"], test_acc=ev["acc"])
        for h in hooks:
            h.on_epoch_end(epoch, run)
        rec["time_s"] = time.perf_counter() - te
        run.history.append(rec)
        bar.set_postfix({k: f"{v:.3f}" for k, v in rec.items() if k in ("train_acc", "test_acc")})
        if checkpoint_dir and rank == 0:
            save_checkpoint(checkpoint_dir, run, hooks, epoch + 1)
        D.barrier()
        if (stop is not None and stop(rec, run)) or (max_steps is not None and step >= max_steps):
            break
    bar.close()
    if first is not None:
        first.close()
    return TrainResult(model, run.history, time.perf_counter() - t0, start)


def rng_state(device: torch.device) -> tuple:
    """The global RNG state a forward pass draws from (dropout): the CPU generator's, and the device's on CUDA."""
    cuda = torch.cuda.get_rng_state(device) if device.type == "cuda" else None
    return torch.get_rng_state(), cuda


def _diverged(value: float, epoch: int, step: int):
    raise TrainingDivergedError(f"The training loss became {value} at epoch {epoch + 1}, step {step + 1}; "
                                "lower the learning rate (--lr).")


def _as_mask(mask, n: int) -> torch.Tensor | None:
    if mask is None:
        return None
    m = torch.as_tensor(np.asarray(mask, dtype=bool))
    if m.shape != (n,):
        raise ValidationError(f"The subset mask has shape {tuple(m.shape)}, expected ({n},).")
    if not bool(m.any()):
        raise ValidationError("The subset mask keeps no training example.")
    return m


def _as_weights(weights, n: int, device: torch.device) -> torch.Tensor | None:
    """Per-example loss weights (N,) as a float32 tensor on ``device``; each must be finite and > 0."""
    if weights is None:
        return None
    w = np.asarray(weights)
    if w.shape != (n,) or not (np.issubdtype(w.dtype, np.number) and not np.iscomplexobj(w)):
        raise ValidationError(f"The sample weights must be an array of {n} real numbers (one per training "
                              f"example); got {w.dtype} of shape {w.shape}.")
    w = w.astype(np.float64)
    bad = {"NaN or inf": int((~np.isfinite(w)).sum()), "zero": int((w == 0).sum()), "negative": int((w < 0).sum())}
    bad = {k: v for k, v in bad.items() if v}
    if bad:
        raise ValidationError("The sample weights must be finite and > 0; found "
                              + ", ".join(f"{v} {k}" for k, v in bad.items()) + " (drop examples with a mask instead).")
    return torch.as_tensor(w.astype(np.float32), device=device)
