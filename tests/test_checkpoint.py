"""Checkpoints keep every RNG the loop draws from: the CPU generator and, when CUDA is in use, each CUDA
device's generator (dropout on a GPU), so a resumed run is exact (issue 13, item 10). CUDA is faked here;
benchmarks/device_check/cuda_paths.py checks the same on a real GPU."""

import numpy as np
import pytest
import torch
from train_helpers import Killed, KillInSecondEpoch

from sensprune.config import TrainConfig
from sensprune.train.checkpoint import CKPT_NPZ
from sensprune.train.loop import train
from sensprune.train.models import MLP
from sensprune.train.sources import ArraySource


def _data():
    rng = np.random.default_rng(0)
    return rng.normal(size=(40, 5)).astype(np.float32), np.arange(40) % 2


def _fake_cuda(monkeypatch, states):
    """Two fake CUDA devices whose generator states are the byte tensors in ``states`` (set calls recorded)."""
    set_calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: len(states))
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: [s.clone() for s in states])
    monkeypatch.setattr(torch.cuda, "set_rng_state", lambda state, device: set_calls.append((device, state.clone())))
    return set_calls


def test_cuda_rng_states_are_saved_and_restored(tmp_path, monkeypatch):
    x, y = _data()
    states = [torch.arange(16, dtype=torch.uint8), torch.arange(16, 32, dtype=torch.uint8)]
    set_calls = _fake_cuda(monkeypatch, states)
    cfg = TrainConfig(epochs=1, batch_size=8, device="cpu")  # CPU training beside a (fake) CUDA device
    build = lambda: MLP(2, (5,), widths=(8,), dropout=0.5)  # noqa: E731
    train(build, ArraySource(x, y, torch.device("cpu")), cfg, checkpoint_dir=tmp_path, progress=False)
    with np.load(tmp_path / CKPT_NPZ) as z:
        for i, s in enumerate(states):
            np.testing.assert_array_equal(z[f"rng/cuda/{i}"], s.numpy())
    assert not set_calls
    # resuming (same config, more epochs is another config, so resume the finished one) restores both devices
    train(build, ArraySource(x, y, torch.device("cpu")), cfg, checkpoint_dir=tmp_path, progress=False)
    assert [d for d, _ in set_calls] == [0, 1]
    for (_, got), want in zip(set_calls, states):
        assert torch.equal(got, want)


def test_no_cuda_state_without_cuda(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    x, y = _data()
    train(lambda: MLP(2, (5,), widths=(8,)), ArraySource(x, y, torch.device("cpu")), TrainConfig(epochs=1),
          checkpoint_dir=tmp_path, progress=False)
    with np.load(tmp_path / CKPT_NPZ) as z:
        assert "rng/torch" in z.files and not [k for k in z.files if k.startswith("rng/cuda")]


def test_resume_with_dropout_is_exact_on_cpu(tmp_path):
    """What the GPU check repeats on CUDA: 2 epochs straight = killed in epoch 2, then resumed."""
    x, y = _data()
    build = lambda: MLP(2, (5,), widths=(8,), dropout=0.5)  # noqa: E731
    cfg = TrainConfig(epochs=2, batch_size=8)
    straight = train(build, ArraySource(x, y, torch.device("cpu")), cfg, progress=False)
    with pytest.raises(Killed):
        train(build, ArraySource(x, y, torch.device("cpu")), cfg, hooks=[KillInSecondEpoch()],
              checkpoint_dir=tmp_path, progress=False)
    torch.manual_seed(123)  # the resumed process starts with another RNG state
    resumed = train(build, ArraySource(x, y, torch.device("cpu")), cfg, checkpoint_dir=tmp_path, progress=False)
    assert resumed.resumed_from_epoch == 1
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)


def test_resume_of_the_channels_last_cnn_is_exact(tmp_path):
    """The cnn's NHWC weights and momentum go through the npz checkpoint (saved as plain arrays) and back."""
    from sensprune.train.models import SmallCNN

    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(24, 6, 6)).astype(np.float32), np.arange(24) % 3
    build = lambda: SmallCNN(3, (6, 6))  # noqa: E731
    cfg = TrainConfig(epochs=2, batch_size=8)
    straight = train(build, ArraySource(x, y, torch.device("cpu")), cfg, progress=False)
    with pytest.raises(Killed):
        train(build, ArraySource(x, y, torch.device("cpu")), cfg, hooks=[KillInSecondEpoch()],
              checkpoint_dir=tmp_path, progress=False)
    resumed = train(build, ArraySource(x, y, torch.device("cpu")), cfg, checkpoint_dir=tmp_path, progress=False)
    assert resumed.resumed_from_epoch == 1
    assert resumed.model.features[0].weight.is_contiguous(memory_format=torch.channels_last)
    for a, b in zip(straight.model.parameters(), resumed.model.parameters()):
        assert torch.equal(a, b)
