"""Data-parallel training (torch.distributed, gloo, 2 CPU processes) equals a single-process run."""

import numpy as np
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sensprune.data import make_dataset
from sensprune.errors import ValidationError
from sensprune.score import ScoreConfig, build_hooks, collect, model_builder
from sensprune.train import ArraySource, TrainConfig, train

MEASURES = ("input_grad", "loss", "el2n", "forgetting", "aum", "confidence", "variability", "correctness")


def _data():
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(3, 5)) * 2
    y = np.repeat(np.arange(3), 23)  # 69 examples: the last global batch (69 % 16 = 5) splits unevenly
    x = centers[y] + rng.normal(size=(69, 5))
    return make_dataset(x.astype(np.float32), y, x[:9].astype(np.float32), y[:9], spec="ddp-test")


def _run(weights=None):
    data = _data()
    cfg = ScoreConfig(dataset="ddp-test", widths=(8,), measures=MEASURES,
                      train=TrainConfig(epochs=3, batch_size=16))
    measure_hooks, hooks = build_hooks(data, cfg)
    res = train(model_builder(data, cfg), ArraySource(data.x_train, data.y_train, torch.device("cpu")), cfg.train,
                weights=weights, hooks=hooks, progress=False)
    params = torch.cat([p.detach().flatten() for p in res.model.parameters()]).numpy()
    return collect(measure_hooks), params, res.history


def _worker(rank, world, init_file, out_file):
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        values, params, hist = _run(np.linspace(0.5, 1.5, 69))
        msg = ""
        try:  # a world larger than the dataset is refused on every rank, before any collective call
            one = make_dataset(np.zeros((1, 2), np.float32), [0], np.zeros((1, 2), np.float32), [0], spec="one",
                               num_classes=2)
            train(lambda: torch.nn.Linear(2, 2), ArraySource(one.x_train, one.y_train, torch.device("cpu")),
                  TrainConfig(epochs=1), progress=False)
        except ValidationError as exc:
            msg = str(exc)
        if rank == 0:
            np.savez(out_file, params=params, train_acc=[h["train_acc"] for h in hist], msg=msg,
                     **{f"m_{k}": v for k, v in values.items()})
    finally:
        dist.destroy_process_group()


def test_two_process_gloo_equals_single_process(tmp_path):
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
