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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from tqdm.auto import tqdm

from sensprune.checkpoint import load_checkpoint, save_checkpoint
from sensprune.errors import TrainingDivergedError, ValidationError
from sensprune.train_config import AMP_MODES, OPTIMIZERS, SCHEDULES, TrainConfig, _check  # noqa: F401 (re-exported)

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


def _amp_dtype(cfg: TrainConfig, device: torch.device):
    if cfg.amp == "none":
        return None
    if cfg.amp == "fp16" and device.type != "cuda":
        raise ValidationError(f"--amp fp16 needs a CUDA device (this run is on {device.type}); "
                              "use --amp bf16 or leave --amp off.")
    return torch.bfloat16 if cfg.amp == "bf16" else torch.float16


@dataclass
class StepInfo:
    """What a hook sees at one optimisation step (all tensors detached unless stated).

    idx (B,) long; x (B, ...) the batch inputs; y (B,) labels; logits (B, K); losses (B,)
    per-example cross-entropy; input_grad (B, ...) per-example ∇ₓℓ, or None when no hook asked.
    """

    epoch: int
    step: int
    idx: torch.Tensor
    x: torch.Tensor
    y: torch.Tensor
    logits: torch.Tensor
    losses: torch.Tensor
    input_grad: torch.Tensor | None
    lr: float


#: How a state key of a hook combines across data-parallel ranks (see :meth:`Hook.reduction`).
SUM, REPLICATED = "sum", "replicated"


class Hook:
    """Base class of a measure computed online during training: the hook contract.

    The loop calls ``on_train_begin``, then per step ``on_step`` (after backward, parameters θ_s) and
    ``after_step`` (after the update, θ_{s+1}), and ``on_epoch_end``. A measure hook reports

    - ``values()``: per-example arrays ``{measure: ndarray (N,)}`` (higher = harder), in index order;
    - ``extras()``: non-per-example arrays, e.g. the (K, K) per-class matrix or a per-epoch curve;
    - ``meta()``: JSON-able notes stored in ``meta.json``;
    - ``state_dict()`` / ``load_state_dict()``: numpy arrays that checkpoints save and restore.

    **Across ranks** (data-parallel training, :func:`sensprune.distributed.sync_hooks`) every state key
    combines one of two ways, declared by :meth:`reduction`:

    - ``"sum"``: the key accumulates what the examples of *this* rank contributed (sums, counts, the last
      value of an example only its rank touched); the ranks' changes since the last sync are added up;
    - ``"replicated"``: every rank computes the same value (e.g. from the whole training set at an
      epoch end); it is left as it is.

    Declare it per key with the class mapping ``reduce = {"key": "sum" | "replicated"}``; keys not listed
    follow the class flag ``replicated`` (False → ``"sum"``). Every default below does nothing.
    """

    needs_input_grad = False
    #: True when every rank computes the same state, so data-parallel training must not add the ranks'
    #: states up; the default reduction of every state key not listed in :attr:`reduce`.
    replicated = False
    #: Per-key reduction across ranks: ``{state key: "sum" | "replicated"}`` (see :meth:`reduction`).
    reduce: dict[str, str] = {}

    def on_train_begin(self, run: "Run") -> None: ...

    def on_step(self, step: StepInfo, run: "Run") -> None:
        """Called after backward and before the optimizer update (parameters are θ_s)."""

    def after_step(self, step: StepInfo, run: "Run") -> None:
        """Called after the optimizer update (parameters are θ_{s+1})."""

    def on_epoch_end(self, epoch: int, run: "Run") -> None: ...

    def values(self) -> dict[str, np.ndarray]:
        """Per-example measure values ``{name: (N,) float64}``, higher = harder (none by default)."""
        return {}

    def extras(self) -> dict[str, np.ndarray]:
        """Non-per-example arrays (e.g. ``per_class`` (K, K), ``csr`` (epochs,)); none by default."""
        return {}

    def meta(self) -> dict[str, Any]:
        """JSON-able notes for ``meta.json``; none by default."""
        return {}

    def state_dict(self) -> dict[str, np.ndarray]:
        return {}

    def load_state_dict(self, state: dict[str, np.ndarray]) -> None: ...

    def reduction(self, key: str) -> str:
        """How state key ``key`` combines across ranks: ``"sum"`` or ``"replicated"``."""
        how = self.reduce.get(key, REPLICATED if self.replicated else SUM)
        if how not in (SUM, REPLICATED):
            raise ValueError(f"{type(self).__name__}.reduce[{key!r}] must be 'sum' or 'replicated', got {how!r}.")
        return how


class ArraySource:
    """Training or test data as tensors on the device; a batch is an index slice."""

    def __init__(self, x: np.ndarray, y: np.ndarray, device: torch.device):
        self.x = torch.as_tensor(x, device=device)
        self.y = torch.as_tensor(y, device=device)

    def __len__(self) -> int:
        return len(self.y)

    def batches(self, order: torch.Tensor, batch_size: int):
        return self.batches_of(_chunks(order, batch_size))

    def batches_of(self, chunks: list[torch.Tensor]):
        """Yield ``(idx, x, y)`` for each index tensor in ``chunks`` (an empty chunk gives empty tensors)."""
        for idx in chunks:
            yield idx, self.x[idx], self.y[idx]


class LoaderSource:
    """Data behind a map-style ``torch.utils.data.Dataset`` returning ``(x, y)``, read by a DataLoader
    with worker processes. Yields exactly the index batches :class:`ArraySource` would."""

    def __init__(self, dataset, device: torch.device, num_workers: int = 2):
        self.dataset, self.device, self.num_workers = dataset, device, num_workers

    def __len__(self) -> int:
        return len(self.dataset)

    def batches(self, order: torch.Tensor, batch_size: int):
        return self.batches_of(_chunks(order, batch_size))

    def batches_of(self, chunks: list[torch.Tensor]):
        from torch.utils.data import DataLoader

        lists = [c.tolist() for c in chunks]
        loader = iter(DataLoader(self.dataset, batch_sampler=[c for c in lists if c],
                                 num_workers=self.num_workers))
        for idx in lists:
            if not idx:
                x0, _ = self.dataset[0]
                yield (torch.zeros(0, dtype=torch.long, device=self.device),
                       torch.zeros((0, *torch.as_tensor(x0).shape), device=self.device),
                       torch.zeros(0, dtype=torch.long, device=self.device))
                continue
            x, y = next(loader)
            yield (torch.as_tensor(idx, device=self.device), x.to(self.device, torch.float32),
                   y.to(self.device, torch.long))


def _chunks(order: torch.Tensor, batch_size: int, rank: int = 0, world: int = 1) -> list[torch.Tensor]:
    """Split ``order`` into global batches of ``batch_size``; rank ``r`` of ``world`` keeps ``batch[r::world]``."""
    return [order[i:i + batch_size][rank::world] for i in range(0, len(order), batch_size)]


@dataclass
class Run:
    """Live state handed to hooks: the model, optimizer, config and data."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    config: TrainConfig
    train: ArraySource | LoaderSource
    device: torch.device
    history: list[dict[str, Any]] = field(default_factory=list)
    #: per-example loss weights (N,) on the device, or None: the batch loss is sum(w_i * l_i) / |B|
    weights: torch.Tensor | None = None

    def logits(self, source: ArraySource | LoaderSource) -> torch.Tensor:
        """Eval-mode logits (N, K) of every example of ``source``, in index order."""
        return predict_logits(self.model, source, self.config.eval_batch_size)


@dataclass
class TrainResult:
    model: nn.Module
    history: list[dict[str, Any]]
    wall_time_s: float
    resumed_from_epoch: int = 0

    @property
    def final(self) -> dict[str, Any]:
        return self.history[-1] if self.history else {}


@contextmanager
def eval_mode(model: nn.Module):
    """Put ``model`` in eval mode inside the block and restore its previous mode after, even on error."""
    was = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was)


@torch.no_grad()
def predict_logits(model: nn.Module, source: ArraySource | LoaderSource, batch_size: int = 1024,
                   *, with_labels: bool = False, amp: torch.dtype | None = None):
    """Eval-mode logits (N, K) of every example of ``source`` in index order (and labels (N,) if asked).

    ``amp``: run the forward under autocast to that dtype (the logits are returned as float32).
    """
    device = _device_of(source)
    order = torch.arange(len(source), device=device)
    logits, labels = [], []
    with eval_mode(model):
        for _, x, y in source.batches(order, batch_size):
            if amp is None:
                logits.append(model(x))
            else:
                with torch.autocast(device.type, dtype=amp):
                    logits.append(model(x).float())
            labels.append(y)
    return (torch.cat(logits), torch.cat(labels)) if with_labels else torch.cat(logits)


def _device_of(source) -> torch.device:
    return source.y.device if isinstance(source, ArraySource) else source.device


@torch.no_grad()
def evaluate(model: nn.Module, source: ArraySource | LoaderSource, batch_size: int = 1024) -> dict[str, float]:
    """Accuracy and mean cross-entropy of ``model`` on ``source`` (eval mode)."""
    logits, y = predict_logits(model, source, batch_size, with_labels=True)
    return {"acc": float((logits.argmax(1) == y).float().mean()), "loss": float(F.cross_entropy(logits, y))}


def epoch_order(n: int, seed: int, epoch: int, mask: torch.Tensor | None) -> torch.Tensor:
    """The shared permutation of all ``n`` examples for ``epoch``, filtered by ``mask`` (N,) bool."""
    gen = torch.Generator().manual_seed(int(seed) * 1_000_003 + int(epoch))
    perm = torch.randperm(n, generator=gen)
    return perm if mask is None else perm[mask[perm]]


def make_optimizer(model: nn.Module, cfg: TrainConfig) -> torch.optim.Optimizer:
    if cfg.optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)


def train(build_model: Callable[[], nn.Module], train_data: ArraySource | LoaderSource, cfg: TrainConfig, *,
          test_data: ArraySource | LoaderSource | None = None, mask: np.ndarray | None = None,
          weights: np.ndarray | None = None, hooks: Sequence[Hook] = (), checkpoint_dir: Path | None = None,
          progress: bool = True, desc: str = "train",
          stop: Callable[[dict[str, Any], Run], bool] | None = None) -> TrainResult:
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
    """
    device = resolve_device(cfg.device)
    with private_rng(device):  # the seeds below never leak into the caller's global RNG state
        return _train(build_model, train_data, cfg, device, test_data=test_data, mask=mask, weights=weights,
                      hooks=hooks, checkpoint_dir=checkpoint_dir, progress=progress, desc=desc, stop=stop)


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


def conv2d_input_grad(grad_out: torch.Tensor, conv: nn.Conv2d, in_hw: tuple[int, int]) -> torch.Tensor:
    """∂/∂input of a ``groups=1`` Conv2d from the gradient at its output: (B, C_out, H', W') → (B, C_in, H, W).

    The transposed convolution written as one batched matrix product, Wᵀ (C_in·k·k, C_out) times each
    example's (C_out, H'·W') gradient — no copy of the gradient — followed by ``F.fold`` (col2im).
    Same value as ``torch.nn.grad.conv2d_input``; on CPU about 3x faster for the thin first layers
    (C_in of 1 or 3) it is used for (3 ms instead of 10 ms for 128 Fashion-MNIST images, one thread).
    """
    b, c_out = grad_out.shape[:2]
    w = conv.weight.detach()
    cols = torch.matmul(w.reshape(c_out, -1).t(), grad_out.reshape(b, c_out, -1).to(w.dtype))
    return F.fold(cols, in_hw, conv.kernel_size, dilation=conv.dilation, padding=conv.padding, stride=conv.stride)


class FirstLayerInputGrad:
    """∇ₓ of the training loss, read from the training backward at the model's first layer.

    Without this the loop makes the batch a leaf that requires grad and reads ``x.grad`` (also one
    backward pass, no second autograd product). For the built-in ``cnn`` — whose first layer, a
    Conv2d, is applied to a reshape of x and x enters nowhere else — a forward hook on that layer puts
    a tensor hook on its output; in the very same backward pass it receives the gradient G at the
    layer's output and maps it back to the input with :func:`conv2d_input_grad`, about 3x cheaper on
    CPU than autograd's own input gradient of a thin convolution. A Linear first layer (``mlp``)
    gains nothing (autograd computes the same ``G @ W``, and the Python hooks cost more than the leaf),
    so it, plugins, resnet18 and compiled models use the leaf path.
    """

    def __init__(self, layer: nn.Module):
        self.layer, self.active, self.grad, self.shape = layer, False, None, None
        self.handle = layer.register_forward_hook(self._forward)

    @staticmethod
    def find(model: nn.Module) -> nn.Module | None:
        """The first layer of the built-in cnn (a Conv2d applied to a reshape of x), else None."""
        from sensprune.models import SmallCNN  # the model zoo imports no training code

        if type(model) is SmallCNN:
            first = model.features[0]
            if isinstance(first, nn.Conv2d) and first.groups == 1 and first.padding_mode == "zeros" \
                    and not isinstance(first.padding, str):
                return first
        return None

    def _forward(self, module, inputs, out) -> None:
        if self.active and out.requires_grad:
            self.shape = inputs[0].shape
            out.register_hook(self._backward)

    def _backward(self, g: torch.Tensor) -> None:
        self.grad = conv2d_input_grad(g.float(), self.layer, tuple(self.shape[-2:]))

    def take(self, like: torch.Tensor) -> torch.Tensor:
        """The captured gradient, shaped like the batch ``like``; cleared for the next step."""
        g, self.grad = self.grad, None
        if g is None:  # the batch had no example (an empty shard)
            return torch.zeros_like(like, dtype=torch.float32)
        return g.reshape(like.shape)

    def close(self) -> None:
        self.handle.remove()


def _train(build_model, train_data, cfg: TrainConfig, device: torch.device, *, test_data, mask, weights, hooks,
           checkpoint_dir, progress, desc, stop=None) -> TrainResult:
    from sensprune import distributed as D

    t0 = time.perf_counter()
    amp_dtype = _amp_dtype(cfg, device)
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
    layer = FirstLayerInputGrad.find(model) if need_grad and not cfg.compile else None
    first = None if layer is None else FirstLayerInputGrad(layer)
    # on an accelerator, `if not isfinite(loss)` would stall the queue every step: check at the epoch end
    defer_check = device.type != "cpu" if DEFER_FINITE_CHECK is None else DEFER_FINITE_CHECK
    bar = tqdm(range(start, cfg.epochs), desc=desc, disable=not progress or rank != 0, leave=False,
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
        for n_global, (idx, x, y) in zip(sizes, train_data.batches_of(_chunks(order, cfg.batch_size, rank, world))):
            if need_grad and first is None:
                x = x.detach().requires_grad_(True)
            if first is not None:
                first.active = True  # only the training forward: hooks' own passes must not be captured
            if amp_dtype is None:
                logits = fwd(x)
            else:
                with torch.autocast(device.type, dtype=amp_dtype):
                    logits = fwd(x).float()
            if first is not None:
                first.active = False
            losses = F.cross_entropy(logits, y, reduction="none")
            bw = None if w_t is None else w_t[idx]
            # sum / |B_global| per update; DDP averages over ranks, hence the factor world
            factor = world / n_global
            loss = (losses if bw is None else losses * bw).sum() * factor
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
                gx = (x.grad.detach() if first is None else first.take(x)).float() * scale
            if hooks:
                info = StepInfo(epoch, step, idx, x.detach(), y, logits.detach(), losses.detach(), gx, lr)
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
                correct_sum += (logits.argmax(1) == y).sum()
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
               "train_acc": tot_correct / max(seen, 1)}
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
        if stop is not None and stop(rec, run):
            break
    bar.close()
    if first is not None:
        first.close()
    return TrainResult(model, run.history, time.perf_counter() - t0, start)


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
