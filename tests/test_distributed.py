"""Data-parallel training (torch.distributed, gloo, 2 CPU processes) equals a single-process run; every tensor
handed to a collective is on a device the process group's backend takes (NCCL takes CUDA tensors only)."""

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sensprune.config import TrainConfig
from sensprune.data import make_dataset
from sensprune.errors import ValidationError
from sensprune.scoring.stage import ScoreConfig, build_hooks, collect, model_builder
from sensprune.train import distributed as D
from sensprune.train.loop import train
from sensprune.train.sources import ArraySource

MEASURES = ("input_grad", "loss", "el2n", "forgetting", "aum", "confidence", "variability", "correctness")


def _data(model="mlp"):
    rng = np.random.default_rng(0)
    y = np.repeat(np.arange(3), 23)  # 69 examples: the last global batch (69 % 16 = 5) splits unevenly
    if model == "cnn":  # 6×6 images
        x = rng.normal(size=(69, 6, 6)) + y[:, None, None]
    else:
        centers = rng.normal(size=(3, 5)) * 2
        x = centers[y] + rng.normal(size=(69, 5))
    return make_dataset(x.astype(np.float32), y, x[:9].astype(np.float32), y[:9], spec="ddp-test")


def _run(weights=None, model="mlp"):
    data = _data(model)
    cfg = ScoreConfig(dataset="ddp-test", model=model, widths=(8,), measures=MEASURES,
                      train=TrainConfig(epochs=3 if model == "mlp" else 2, batch_size=16))
    measure_hooks, hooks = build_hooks(data, cfg)
    res = train(model_builder(data, cfg), ArraySource(data.x_train, data.y_train, torch.device("cpu")), cfg.train,
                weights=weights, hooks=hooks, progress=False)
    params = torch.cat([p.detach().flatten() for p in res.model.parameters()]).numpy()
    return collect(measure_hooks), params, res.history


def _worker(rank, world, init_file, out_file, model="mlp"):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    # every collective is recorded with its tensor's device and checked against the backend that a CUDA run
    # starts (D.CUDA_BACKEND): a CPU tensor would be fine there, a CPU tensor under plain "nccl" would not
    calls, real_all_reduce = [], dist.all_reduce

    def recording_all_reduce(tensor, *args, **kwargs):
        calls.append((tensor.device.type, dist.get_backend()))
        return real_all_reduce(tensor, *args, **kwargs)

    dist.all_reduce = recording_all_reduce
    try:
        values, params, hist = _run(np.linspace(0.5, 1.5, 69), model)
        msg = ""
        try:  # a world larger than the dataset is refused on every rank, before any collective call
            one = ArraySource(np.zeros((1, 2), np.float32), np.array([0]), torch.device("cpu"))
            train(lambda: torch.nn.Linear(2, 2), one, TrainConfig(epochs=1), progress=False)
        except ValidationError as exc:
            msg = str(exc)
        if rank == 0:
            np.savez(out_file, params=params, train_acc=[h["train_acc"] for h in hist], msg=msg,
                     devices=np.array([c[0] for c in calls]), backends=np.array([c[1] for c in calls]),
                     **{f"m_{k}": v for k, v in values.items()})
    finally:
        dist.all_reduce = real_all_reduce
        dist.destroy_process_group()


def test_two_process_gloo_equals_single_process(tmp_path, monkeypatch):
    """Weighted loss, uneven last batch, every online measure: the 2-rank run matches 1 rank."""
    out = tmp_path / "ddp.npz"
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(out)), nprocs=2, join=True)
    got = np.load(out)
    values, params, hist = _run(np.linspace(0.5, 1.5, 69))
    np.testing.assert_allclose(got["params"], params, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(got["train_acc"], [h["train_acc"] for h in hist])
    for k, v in values.items():
        np.testing.assert_allclose(got[f"m_{k}"], v, rtol=1e-4, atol=1e-5, err_msg=k)
    assert "larger than the training set" in str(got["msg"])
    # 3 epochs: the epoch statistics and the hook accumulators went through collectives, on devices that the
    # backend here (gloo) takes and that the backend a CUDA run starts takes too (the same tensors are handed
    # over there: these are CPU tensors whatever the model's device; plain NCCL would reject them)
    cuda_backend = _backend_of_a_cuda_run(monkeypatch)
    assert len(got["devices"]) >= 6
    for dev, backend in zip(got["devices"], got["backends"]):
        assert dev in D.backend_devices(str(backend)), (dev, backend)
        assert dev in D.backend_devices(cuda_backend), (dev, cuda_backend)


@pytest.mark.parametrize("backend, device, want", [
    ("nccl", "cpu", "cuda"), ("nccl", "cuda", "cuda"), (D.CUDA_BACKEND, "cpu", "cpu"),
    (D.CUDA_BACKEND, "cuda", "cuda"), ("gloo", "cpu", "cpu"), ("mpi", "cuda", "cpu"),
])
def test_collective_device_follows_the_backend(backend, device, want):
    assert D.collective_device(torch.device(device), backend).type == want


def _backend_of_a_cuda_run(monkeypatch, device="cuda", bound=None) -> str:
    """The backend ``init_from_env(device)`` starts under torchrun on a machine with CUDA (faked here)."""
    started = []
    with monkeypatch.context() as m:
        m.setenv("WORLD_SIZE", "2")
        m.setenv("LOCAL_RANK", "1")
        m.setattr(torch.cuda, "is_available", lambda: True)
        m.setattr(torch.cuda, "set_device", (bound if bound is not None else []).append)
        m.setattr(dist, "is_initialized", lambda: False)
        m.setattr(dist, "init_process_group", lambda backend, **kw: started.append(backend))
        D.init_from_env(device)
    assert len(started) == 1
    return started[0]


def test_cuda_run_starts_gloo_for_cpu_tensors_and_nccl_for_cuda(monkeypatch):
    bound = []
    assert _backend_of_a_cuda_run(monkeypatch, "cuda", bound) == "cpu:gloo,cuda:nccl" and bound == [1]
    assert D.backend_devices("cpu:gloo,cuda:nccl") == {"cpu", "cuda"} and D.backend_devices("nccl") == {"cuda"}
    assert _backend_of_a_cuda_run(monkeypatch, "cpu") == "gloo"


def test_two_process_gloo_equals_single_process_for_the_channels_last_cnn(tmp_path):
    """DDP buckets the cnn's NHWC gradients; the first-layer input-gradient capture runs on every rank."""
    out = tmp_path / "ddp_cnn.npz"
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(out), "cnn"), nprocs=2, join=True)
    got = np.load(out)
    values, params, _ = _run(np.linspace(0.5, 1.5, 69), "cnn")
    np.testing.assert_allclose(got["params"], params, rtol=1e-4, atol=1e-5)
    for k, v in values.items():
        np.testing.assert_allclose(got[f"m_{k}"], v, rtol=1e-4, atol=1e-5, err_msg=k)
