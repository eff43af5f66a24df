"""GraNd via torch.func: equals a per-example loop, chunking is invisible, unsupported layers are named."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sensprune.config import TrainConfig
from sensprune.data import make_dataset
from sensprune.errors import ValidationError
from sensprune.measures.grand import GraNdHook, check_grand, grand_scores
from sensprune.scoring.stage import ScoreConfig, score
from sensprune.train.loop import train
from sensprune.train.sources import ArraySource


def _loop(model, x, y):
    out = []
    for i in range(len(y)):
        model.zero_grad()
        F.cross_entropy(model(x[i:i + 1]), y[i:i + 1]).backward()
        out.append(float(torch.sqrt(sum(p.grad.double().pow(2).sum() for p in model.parameters()))))
    return np.array(out)


def _data(n=20, d=5):
    g = torch.Generator().manual_seed(0)
    return torch.randn(n, d, generator=g), torch.randint(0, 3, (n,), generator=g)


def test_grand_equals_python_loop_and_ignores_chunking():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.ReLU(), nn.Linear(7, 3))
    x, y = _data()
    want = _loop(model, x, y)
    np.testing.assert_allclose(grand_scores(model, x, y), want, rtol=1e-5)
    np.testing.assert_allclose(grand_scores(model, x, y, chunk_size=3), want, rtol=1e-5)


def test_grand_of_the_channels_last_cnn_equals_python_loop():
    """torch.func's vmap through the built-in cnn's NHWC layout (its forward converts each batch)."""
    from sensprune.train.models import SmallCNN

    torch.manual_seed(0)
    model = SmallCNN(3, (6, 6))
    x, y = torch.randn(8, 6, 6), torch.randint(0, 3, (8,))
    np.testing.assert_allclose(grand_scores(model, x, y, chunk_size=3), _loop(model, x, y), rtol=1e-4)


def test_grand_with_batchnorm_in_eval_mode_is_per_example():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(5, 7), nn.BatchNorm1d(7), nn.ReLU(), nn.Linear(7, 3))
    x, y = _data()
    model.train()
    model(x)  # running statistics become non-trivial
    model.eval()
    np.testing.assert_allclose(grand_scores(model, x, y), _loop(model, x, y), rtol=1e-5)


class ItemLayer(nn.Module):
    def forward(self, x):
        return x * float(x.sum().item() > 0)


def test_layer_torch_func_cannot_batch_is_named():
    model = nn.Sequential(nn.Linear(5, 4), ItemLayer(), nn.Linear(4, 3))
    x, y = _data()
    with pytest.raises(ValidationError, match=r"layer '1' \(ItemLayer\)"):
        check_grand(model, x, y)


def test_grand_hook_averages_chosen_epochs(tiny_arrays):
    hook = GraNdHook(120, [1, 2])
    cfg = TrainConfig(epochs=2, batch_size=32)
    res = train(lambda: nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4)),
                ArraySource(tiny_arrays[0], tiny_arrays[1], torch.device("cpu")), cfg, hooks=[hook], progress=False)
    assert int(hook.count) == 2
    last = grand_scores(res.model.eval(), torch.as_tensor(tiny_arrays[0]), torch.as_tensor(tiny_arrays[1]))
    assert np.isfinite(hook.values()["grand"]).all()
    assert not np.allclose(hook.values()["grand"], last)  # mean of epochs 1 and 2, not the last only


def test_grand_epochs_outside_warmup_are_refused(tiny_arrays):
    ds = make_dataset(*tiny_arrays, spec="tiny")
    cfg = ScoreConfig(dataset="tiny", widths=(8,), measures=("grand",), measure_options={"grand_epochs": [5]},
                      train=TrainConfig(epochs=2))
    with pytest.raises(ValidationError, match="--grand-epochs must be in 1..2"):
        score(ds, cfg, progress=False)
