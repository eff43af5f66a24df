"""Data-parallel training with PyTorch's own engine (``torch.distributed``, launched by ``torchrun``).

``torchrun --nproc_per_node N -m sensprune score ...`` starts N processes with the usual
``RANK``/``WORLD_SIZE``/``MASTER_ADDR`` environment; :func:`init_from_env` joins the process group
(``cpu:gloo,cuda:nccl`` on CUDA — NCCL for the model's CUDA gradients, gloo for the small CPU
tensors of the epoch statistics and hook accumulators — and ``gloo`` on CPU). Every collective of
sensprune goes through :func:`all_reduce`, which hands the backend a tensor on a device it accepts
(a group the user started with plain ``nccl`` gets a CUDA copy of a CPU tensor).

The training loop gives rank r the examples ``batch[r::N]`` of every global batch and wraps the
model in ``DistributedDataParallel``, so each update equals the single-process update on the whole
batch. Per-example accumulators live on every rank; after each epoch :func:`sync_hooks` adds up
what each rank contributed since the last sync, so every rank — and rank 0, which alone writes
artifacts — holds the single-process values.
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


#: the backend of each device type when training on CUDA: NCCL rejects CPU tensors, gloo takes them
CUDA_BACKEND = "cpu:gloo,cuda:nccl"


def init_from_env(device: str = "auto") -> int:
    """Join the process group described by torchrun's environment; returns the world size (1 if none)."""
    n = int(os.environ.get("WORLD_SIZE", "1"))
    if n <= 1 or (dist.is_available() and dist.is_initialized()):
        return world_size()
    cuda = (device == "auto" or device.startswith("cuda")) and torch.cuda.is_available()  # as resolve_device
    if cuda:  # before the group starts, so NCCL binds this rank's GPU
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group(CUDA_BACKEND if cuda else "gloo")
    return world_size()


def backend_devices(backend: str) -> set[str]:
    """Device types a process-group backend takes: ``"nccl"`` -> {cuda}; ``"cpu:gloo,cuda:nccl"`` -> {cpu, cuda}."""
    backend = str(backend).lower()
    if ":" in backend:
        return {part.split(":", 1)[0].strip() for part in backend.split(",")}
    known = {"nccl": {"cuda"}, "gloo": {"cpu", "cuda"}, "mpi": {"cpu"}, "ucc": {"cpu", "cuda"}}
    return known.get(backend, {"cpu", "cuda"})


def collective_device(device: torch.device, backend: str) -> torch.device:
    """The device a tensor on ``device`` must be on to pass through a collective of ``backend``."""
    devices = backend_devices(backend)
    if device.type in devices:
        return device
    if "cuda" in devices:
        return torch.device("cuda", torch.cuda.current_device() if torch.cuda.is_available() else 0)
    return torch.device("cpu")


def all_reduce(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks in place (a no-op on one process), on a device the group's backend takes."""
    if world_size() <= 1:
        return tensor
    dev = collective_device(tensor.device, dist.get_backend())
    if dev == tensor.device:
        dist.all_reduce(tensor)
    else:
        buf = tensor.to(dev)
        dist.all_reduce(buf)
        tensor.copy_(buf.to(tensor.device))
    return tensor


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
            all_reduce(delta)
            new[k] = (b.astype(np.float64) + delta.numpy()).astype(arr.dtype)
        h.load_state_dict(new)
        out.append({k: new[k].copy() for k in summed})
    return out
