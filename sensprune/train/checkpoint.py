"""Checkpoints of the training loop: arrays in a deterministic ``.npz``, everything else in JSON.

Written after every epoch (atomically) and read back by ``--resume``: model parameters and buffers,
optimizer state, every hook's accumulators, the torch RNG states (dropout: the CPU generator and, when
CUDA is in use, every CUDA device's generator, so a resumed GPU run draws the same dropout masks) and
the history. Never pickle.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from sensprune.errors import ValidationError
from sensprune.io import atomic_write_text, read_json, read_npz, write_npz

CKPT_NPZ, CKPT_JSON = "checkpoint.npz", "checkpoint.json"


def save_checkpoint(folder: Path, run: Any, hooks: Sequence[Any], epochs_done: int) -> None:
    """Write ``run`` (a :class:`sensprune.train.hooks.Run`: model, optimizer, history) and every hook's
    ``state_dict()`` after ``epochs_done`` epochs (typed loosely so this module does not import the loop)."""
    arrays: dict[str, np.ndarray] = {}
    for k, v in run.model.state_dict().items():
        arrays[f"model/{k}"] = v.detach().cpu().numpy()
    opt_state = run.optimizer.state_dict()
    scalars: dict[str, Any] = {}
    for pid, st in opt_state["state"].items():
        for k, v in st.items():
            if torch.is_tensor(v):
                arrays[f"opt/{pid}/{k}"] = v.detach().cpu().numpy()
            else:
                scalars[f"{pid}/{k}"] = v
    for i, h in enumerate(hooks):
        for k, v in h.state_dict().items():
            arrays[f"hook{i}/{k}"] = np.asarray(v)
    arrays["rng/torch"] = torch.get_rng_state().numpy()
    for i, state in enumerate(_cuda_rng_states()):
        arrays[f"rng/cuda/{i}"] = state.numpy()
    write_npz(folder / CKPT_NPZ, arrays)
    meta = {"epochs_done": epochs_done, "history": run.history, "param_groups": opt_state["param_groups"],
            "opt_scalars": scalars, "config": asdict(run.config)}
    atomic_write_text(folder / CKPT_JSON, json.dumps(meta))


def load_checkpoint(folder: Path, run: Any, hooks: Sequence[Any]) -> int:
    if not (folder / CKPT_JSON).exists():
        return 0
    meta = read_json(folder / CKPT_JSON)
    if meta["config"] != json.loads(json.dumps(asdict(run.config))):
        raise ValidationError(f"The checkpoint in {folder} was made with another training config.")
    arrays = read_npz(folder / CKPT_NPZ)
    sd = {k[len("model/"):]: torch.from_numpy(v) for k, v in arrays.items() if k.startswith("model/")}
    run.model.load_state_dict(sd)
    state: dict[int, dict[str, Any]] = {}
    for k, v in arrays.items():
        if k.startswith("opt/"):
            _, pid, name = k.split("/", 2)
            state.setdefault(int(pid), {})[name] = torch.from_numpy(v).to(run.device)
    for k, v in meta["opt_scalars"].items():
        pid, name = k.split("/", 1)
        state.setdefault(int(pid), {})[name] = v
    run.optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    for i, h in enumerate(hooks):
        prefix = f"hook{i}/"
        h.load_state_dict({k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)})
    torch.set_rng_state(torch.from_numpy(arrays["rng/torch"]))
    cuda = {int(k.rsplit("/", 1)[1]): v for k, v in arrays.items() if k.startswith("rng/cuda/")}
    if cuda and torch.cuda.is_available():
        for i, state in sorted(cuda.items()):
            if i < torch.cuda.device_count():
                torch.cuda.set_rng_state(torch.from_numpy(state), i)
    run.history[:] = meta["history"]
    return int(meta["epochs_done"])


def _cuda_rng_states() -> list[torch.Tensor]:
    """The RNG state of every CUDA device, when CUDA has been used in this process (else none)."""
    if not (torch.cuda.is_available() and torch.cuda.is_initialized()):
        return []
    return [t.cpu() for t in torch.cuda.get_rng_state_all()]
