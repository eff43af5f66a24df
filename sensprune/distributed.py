"""Data-parallel training with PyTorch's own engine (``torch.distributed``, launched by ``torchrun``).

``torchrun --nproc_per_node N -m sensprune score ...`` starts N processes with the usual
``RANK``/``WORLD_SIZE``/``MASTER_ADDR`` environment; :func:`init_from_env` joins the process group
(``nccl`` on CUDA, ``gloo`` on CPU). The training loop then gives rank r the examples
``batch[r::N]`` of every global batch and wraps the model in ``DistributedDataParallel``, so each
update equals the single-process update on the whole batch. Per-example accumulators live on every
rank; after each epoch :func:`sync_hooks` adds up what each rank contributed since the last sync,
so every rank — and rank 0, which alone writes artifacts — holds the single-process values.
"""

from __future__ import annotations

import os

import numpy as np
import torch
import torch.distributed as dist

from sensprune.errors import ValidationError


def world_size() -> int:
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def is_main() -> bool:
    return rank() == 0


def barrier() -> None:
    if world_size() > 1:
        dist.barrier()


def init_from_env(device: str = "cpu") -> int:
    """Join the process group described by torchrun's environment; returns the world size (1 if none)."""
    n = int(os.environ.get("WORLD_SIZE", "1"))
    if n <= 1 or (dist.is_available() and dist.is_initialized()):
        return world_size()
    backend = "nccl" if device.startswith("cuda") and torch.cuda.is_available() else "gloo"
    dist.init_process_group(backend)
    if backend == "nccl":
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    return world_size()


def check_world(n_train: int) -> None:
    if world_size() > n_train:
        raise ValidationError(f"The world size ({world_size()} processes) is larger than the training set "
                              f"({n_train} examples); launch fewer processes (--nproc_per_node).")


def sync_hooks(hooks, synced: list[dict[str, np.ndarray]] | None) -> list[dict[str, np.ndarray]]:
    """Add up, across ranks, what each non-replicated hook's state gained since the last sync.

    Valid for accumulators where each example is touched by one rank per epoch (sums, counts, and
    "last value" arrays such as the previous correctness): the owner's change is the only non-zero
    delta. Hooks computed identically on every rank set ``replicated = True`` and are left alone.
    Returns the new synced states (pass them back at the next call).
    """
    out = []
    for i, h in enumerate(hooks):
        state = h.state_dict()
        summed = [k for k in state if h.reduction(k) == "sum"]  # the hook contract: sum or replicated per key
        if not summed:
            out.append({})
            continue
        base = synced[i] if synced else {}
        new = dict(state)
        for k in summed:
            v = state[k]
            arr = np.asarray(v)
            b = base.get(k, np.zeros_like(arr))
            delta = torch.from_numpy(arr.astype(np.float64) - b.astype(np.float64))
            dist.all_reduce(delta)
            new[k] = (b.astype(np.float64) + delta.numpy()).astype(arr.dtype)
        h.load_state_dict(new)
        out.append({k: new[k].copy() for k in summed})
    return out
