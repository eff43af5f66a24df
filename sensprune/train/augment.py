"""The built-in data augmentation of the training loop (``--augment``), as seeded torch operations on a batch.

``crop-flip`` is the CIFAR recipe: zero-pad each image by :data:`PAD` pixels on every side, crop an H×W window
at a random offset, and flip it horizontally with probability 1/2 — torchvision's ``RandomCrop(size, padding=4)``
(``padding_mode="constant"``, fill 0) followed by ``RandomHorizontalFlip()``. The fill is 0 *in the model's
input space*: the batch is augmented as the model receives it, after any normalisation, so a padded pixel is
0 after normalisation (the channel mean), not black.

Unlike torchvision's transforms it works on the whole batch at once, with all randomness drawn from one
integer seed (:func:`step_seed` gives the seed of an optimizer step), so that a step can be replayed exactly,
on any device, and differentiated with respect to the un-augmented input: the augmentation is part of the
path from ``x`` to the loss, and :func:`apply_crop_flip` is a single gather that autograd goes through.

**Contract of a user's own augmentation.** To be replayable, an augmentation must be a pure torch function
``fn(x, seed) -> x'`` of the batch ``x`` (B, \\*input_shape) and an integer seed: the same ``(x, seed)`` gives
the same ``x'``; it draws no other randomness (no global torch/numpy/``random`` state, no numpy or PIL
round-trip — seed a ``torch.Generator`` on the CPU from ``seed`` instead), and it is differentiable with respect
to ``x`` wherever ``x'`` depends on ``x`` (torch operations only; no ``.detach()``, ``.item()`` or
``.numpy()`` on the path). :func:`augment` is such a function.

Importing this module loads no torch; :func:`check_augment` and :func:`step_seed` run without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sensprune.config import AUGMENTS
from sensprune.errors import ValidationError

if TYPE_CHECKING:
    import torch

PAD = 4
#: Third word of the :func:`step_seed` entropy, so the augmentation stream differs from other uses of the run seed.
SALT = 0x61756720  # b"aug "


def check_augment(name: str, input_shape: tuple[int, ...]) -> str:
    """Validate ``--augment`` once, before training; return ``name``.

    ``crop-flip`` needs images: ``input_shape`` (C, H, W), or (H, W), which is augmented as one channel
    (the built-in models read (H, W) inputs as one-channel images too). Anything else is refused with a
    one-line :class:`~sensprune.errors.ValidationError`.
    """
    if name not in AUGMENTS:
        raise ValidationError(f"`--augment` must be one of {', '.join(AUGMENTS)}; got {name!r}.")
    shape = tuple(int(s) for s in input_shape)
    if name == "crop-flip" and (len(shape) not in (2, 3) or min(shape) < 1):
        raise ValidationError(f"`--augment crop-flip` needs image inputs of shape (C, H, W) or (H, W); "
                              f"this dataset's inputs have shape {shape}.")
    return name


def step_seed(run_seed: int, step: int) -> int:
    """The augmentation seed of optimizer step ``step`` (0-based) of a run seeded ``run_seed``.

    ``np.random.SeedSequence([run_seed % 2**64, step, SALT]).generate_state(1, dtype=np.uint64)[0]``, keeping
    the low 63 bits: a hash of the three words, the same on every platform and numpy version (SeedSequence's
    mixing is fixed by its specification), and statistically independent across steps and run seeds.
    A negative ``run_seed`` is taken modulo 2**64; ``step`` must be ≥ 0.

    Returns
    -------
    int
        In ``[0, 2**63)``: fits an int64 and seeds a ``torch.Generator``.
    """
    if int(step) < 0:
        raise ValidationError(f"The step of an augmentation seed must be >= 0; got {step}.")
    words = [int(run_seed) % 2**64, int(step), SALT]
    return int(np.random.SeedSequence(words).generate_state(1, dtype=np.uint64)[0]) & (2**63 - 1)


def crop_flip_params(batch_size: int, height: int, width: int, seed: int, device=None):
    """Random crop offsets and flips of one batch, drawn from a CPU ``torch.Generator`` seeded by ``seed``.

    Draws, in this order, ``dy``, ``dx`` (``randint(0, 2*PAD + 1, (B,))`` each) and ``flip``
    (``randint(0, 2, (B,)) == 1``) on the CPU, then moves them to ``device``: the same seed gives the same
    parameters on any device. ``height``/``width`` are the un-padded image size (the offsets do not depend on it).

    Returns
    -------
    dy, dx : Tensor (B,) int64
        Top and left of the H×W window in the padded (H + 2*PAD, W + 2*PAD) image, in ``0..2*PAD``.
    flip : Tensor (B,) bool
        Whether each cropped image is flipped horizontally.
    """
    import torch

    if int(height) < 1 or int(width) < 1:
        raise ValueError(f"crop_flip_params needs a positive image size; got {height}x{width}.")
    gen = torch.Generator(device="cpu").manual_seed(int(seed))
    dy = torch.randint(0, 2 * PAD + 1, (int(batch_size),), generator=gen)
    dx = torch.randint(0, 2 * PAD + 1, (int(batch_size),), generator=gen)
    flip = torch.randint(0, 2, (int(batch_size),), generator=gen) == 1
    return dy.to(device), dx.to(device), flip.to(device)


def apply_crop_flip(x: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Zero-pad ``x`` by :data:`PAD`, crop the H×W window at ``(dy, dx)`` and flip it horizontally where ``flip``.

    One gather (advanced indexing) from the padded batch, so it is differentiable with respect to ``x``: the
    gradient of an output pixel flows to the input pixel it was read from (none for padding). Keeps ``x``'s
    dtype and device; takes any memory format (channels_last included), the output may be contiguous.

    Parameters
    ----------
    x : Tensor (B, C, H, W)
    dy, dx : Tensor (B,) int64
        Window offsets in ``0..2*PAD`` (see :func:`crop_flip_params`).
    flip : Tensor (B,) bool

    Returns
    -------
    Tensor (B, C, H, W)
        ``out[i, c, r, k] = xp[i, c, dy[i] + r, dx[i] + (W - 1 - k if flip[i] else k)]``, where ``xp`` is ``x``
        zero-padded by PAD on all four sides.
    """
    import torch
    import torch.nn.functional as F

    if x.dim() != 4:
        raise ValueError(f"apply_crop_flip needs a batch of shape (B, C, H, W); got {tuple(x.shape)}.")
    b, c, h, w = x.shape
    dev = x.device
    dy, dx, flip = dy.to(dev, torch.long), dx.to(dev, torch.long), flip.to(dev, torch.bool)
    xp = F.pad(x, (PAD, PAD, PAD, PAD))  # constant 0
    rows = dy[:, None] + torch.arange(h, device=dev)  # (B, H)
    cols = torch.arange(w, device=dev)
    cols = dx[:, None] + torch.where(flip[:, None], w - 1 - cols, cols)  # (B, W)
    bi = torch.arange(b, device=dev)[:, None, None, None]
    ci = torch.arange(c, device=dev)[None, :, None, None]
    return xp[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]


def augment(name: str, x: torch.Tensor, seed: int) -> torch.Tensor:
    """The batch after augmentation ``name`` with all its randomness from ``seed``.

    Parameters
    ----------
    name : str
        One of :data:`AUGMENTS`; ``"none"`` returns ``x`` itself.
    x : Tensor (B, C, H, W) or (B, H, W)
        The batch as the model receives it (a (B, H, W) batch is augmented as one channel).
    seed : int
        E.g. ``step_seed(run_seed, step)``.

    Returns
    -------
    Tensor of ``x``'s shape, dtype and device.
    """
    if name == "none":
        return x
    if name != "crop-flip":
        raise ValidationError(f"`--augment` must be one of {', '.join(AUGMENTS)}; got {name!r}.")
    if x.dim() not in (3, 4):
        raise ValidationError(f"`--augment crop-flip` needs image inputs of shape (C, H, W) or (H, W); "
                              f"this batch has shape {tuple(x.shape)} (batch first).")
    x4 = x.unsqueeze(1) if x.dim() == 3 else x
    dy, dx, flip = crop_flip_params(x4.shape[0], x4.shape[2], x4.shape[3], seed, device=x.device)
    out = apply_crop_flip(x4, dy, dx, flip)
    return out.squeeze(1) if x.dim() == 3 else out
