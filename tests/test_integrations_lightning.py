"""sensprune.integrations.lightning: a Lightning fit writes the folder that a hand-written loop's Tracker writes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cli_helpers import run_cli

import sensprune as sp
from sensprune.errors import ValidationError

try:  # the package the adapter imports: lightning.pytorch when installed, else pytorch_lightning
    import lightning.pytorch as L
except ImportError:
    L = pytest.importorskip("pytorch_lightning", reason="PyTorch Lightning is not installed (the 'lightning' extra)")
from sensprune.integrations.lightning import SensPruneCallback  # noqa: E402

MEASURES = ["loss", "forgetting", "aum", "confidence", "variability", "correctness", "el2n"]


class _Rows(torch.utils.data.Dataset):
    """(x, y) arrays as dict rows that carry their index."""

    def __init__(self, x, y):
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return {"idx": i, "x": self.x[i], "y": self.y[i]}


class _Net(L.LightningModule):
    def __init__(self):
        super().__init__()
        self.net = torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        logits = self(batch["x"])
        return {"loss": F.cross_entropy(logits, batch["y"]), "logits": logits}

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.5)


def _loader(x, y):
    return torch.utils.data.DataLoader(_Rows(x, y), batch_size=16, shuffle=True,
                                       generator=torch.Generator().manual_seed(0))


def _fit(module, loader, callback, root, epochs=2):
    trainer = L.Trainer(max_epochs=epochs, callbacks=[callback], accelerator="cpu", devices=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        default_root_dir=root)
    trainer.fit(module, loader)


def _hand_loop(module, x, y, epochs=2):
    """The same run without Lightning: same init, same batch order, same SGD, the Tracker fed by hand."""
    t = sp.Tracker(n=len(y), labels=y, measures=MEASURES)
    opt = module.configure_optimizers()
    module.train()
    loader = _loader(x, y)
    for _ in range(epochs):
        for batch in loader:
            logits = module(batch["x"])
            t.step(batch["idx"], logits, batch["y"])
            opt.zero_grad()
            F.cross_entropy(logits, batch["y"]).backward()
            opt.step()
        t.epoch_end(model=module, eval_data=(x, y))
    return t


def test_callback_folder_equals_hand_loop_and_prunes(tiny_arrays, tmp_path):
    x, y, _, _ = tiny_arrays
    y = y.copy()
    y[::6] = (y[::6] + 1) % 4  # a sixth of the labels flipped: examples learned, then forgotten
    torch.manual_seed(0)
    module = _Net()
    twin = copy.deepcopy(module)
    cb = SensPruneCallback(tmp_path / "scores", n=len(y), labels=y, measures=MEASURES, eval_data=(x, y))
    _fit(module, _loader(x, y), cb, tmp_path)
    assert cb.path_ == tmp_path / "scores"
    got = sp.load_scores(cb.path_)
    want = _hand_loop(twin, x, y).values()
    assert want["forgetting"].max() >= 1  # a run with events to count, not a flat one
    for m in MEASURES:
        assert np.isfinite(got.scores[m]).all(), m
        np.testing.assert_allclose(got.scores[m], want[m], rtol=1e-6, atol=1e-9, err_msg=m)
    np.testing.assert_array_equal(got.label, y)
    assert got.meta["config"]["epochs"] == 2 and got.meta["config"]["steps"] == 16

    res = run_cli(["prune", "--scores", cb.path_, "--by", "aum", "--rule", "drop-high", "--fraction", "0.25",
                   "--per-class", "--out", tmp_path / "pruned"])
    assert res.exit_code == 0, res.output
    want_keep = sp.prune(got, by="aum", rule="drop-high", fraction=0.25, per_class=True).keep
    np.testing.assert_array_equal(np.load(tmp_path / "pruned" / "keep.npy"), want_keep)
    assert len(want_keep) < len(y)
    res = run_cli(["report", cb.path_, "--out", tmp_path / "report.html", "--quiet"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "report.html").stat().st_size > 1000


def test_tuple_batches_and_labels_from_the_callback(tiny_arrays, tmp_path):
    """(idx, x, y) batches by position; label_key=None takes the labels given to the callback."""
    x, y, _, _ = tiny_arrays

    class TupleNet(_Net):
        def training_step(self, batch, batch_idx):
            _, xb, yb = batch
            logits = self(xb)
            return {"loss": F.cross_entropy(logits, yb), "logits": logits}

    data = torch.utils.data.TensorDataset(torch.arange(len(y)), torch.from_numpy(x), torch.from_numpy(y))
    torch.manual_seed(0)
    module = TupleNet()
    cb = SensPruneCallback(tmp_path / "s", n=len(y), labels=y, measures=["aum", "loss"], index_key=0, label_key=None)
    _fit(module, torch.utils.data.DataLoader(data, batch_size=40), cb, tmp_path, epochs=1)
    assert np.isfinite(sp.load_scores(tmp_path / "s").scores["aum"]).all()


def test_bad_use_is_one_line(tiny_arrays, tmp_path):
    x, y, _, _ = tiny_arrays
    n = len(y)
    with pytest.raises(ValidationError, match=r"measures must be among .*; got 'loss_sensitivity' \(it records"):
        SensPruneCallback(tmp_path / "a", n=n, labels=y, measures=["aum", "loss_sensitivity"])
    with pytest.raises(ValidationError, match=r"got 'input_grad' \(it needs the input tensor"):
        SensPruneCallback(tmp_path / "a", n=n, measures=["input_grad"])
    with pytest.raises(ValidationError, match="eval_data must be the training set in index order"):
        SensPruneCallback(tmp_path / "a", n=n, measures=["el2n"])
    with pytest.raises(ValidationError, match="untrackable measure.*'grand'"):
        SensPruneCallback(tmp_path / "a", n=n, measures=["grand"])
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "f").write_text("x")
    with pytest.raises(ValidationError, match="already exists; pass --force"):
        SensPruneCallback(tmp_path / "taken", n=n)

    class LossOnly(_Net):
        def training_step(self, batch, batch_idx):
            return F.cross_entropy(self(batch["x"]), batch["y"])

    cb = SensPruneCallback(tmp_path / "b", n=n, labels=y)
    with pytest.raises(ValidationError, match=r"training_step must return a dict holding the batch's logits "
                                              r"under 'logits' .*; got a dict with keys 'loss'\."):
        _fit(LossOnly(), _loader(x, y), cb, tmp_path, epochs=1)
    cb = SensPruneCallback(tmp_path / "c", n=n, labels=y, index_key="index")
    with pytest.raises(ValidationError, match=r"index_key must name a field of the training batch; got 'index' "
                                              r"for a batch that is a dict with keys 'idx', 'x', 'y'"):
        _fit(_Net(), _loader(x, y), cb, tmp_path, epochs=1)
    for bad in ("b", "c"):
        assert not (tmp_path / bad).exists()
