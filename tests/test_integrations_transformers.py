"""sensprune.integrations.transformers: a Trainer run writes the folder a hand-fed Tracker writes from its logits.

Tiny randomly initialised models (a BERT for text, a ViT for images), built from a config: nothing downloaded.
"""

from __future__ import annotations

import importlib
import subprocess
import sys

import numpy as np
import pytest
import torch
from cli_helpers import run_cli

import sensprune as sp
from sensprune.errors import ValidationError

transformers = pytest.importorskip("transformers", reason="transformers is not installed (the 'transformers' extra)")
pytest.importorskip("accelerate", reason="the Trainer needs accelerate (the 'transformers' extra)")
from sensprune.integrations.transformers import SensPruneCallback  # noqa: E402

N, K, BS, EPOCHS = 48, 3, 8, 2
MEASURES = ["loss", "forgetting", "aum", "confidence", "variability", "correctness"]


def _labels():
    return np.arange(N) % K


class _Rows(torch.utils.data.Dataset):
    """Rows of model inputs, ``labels`` and ``idx``; the class shows in the inputs, so there is something to learn."""

    def __init__(self, kind: str):
        g = torch.Generator().manual_seed(0)
        y = torch.from_numpy(_labels())
        if kind == "text":
            ids = torch.randint(3, 40, (N, 8), generator=g)
            ids[:, 0] = y  # the class as the first token
            self.inputs = [{"input_ids": ids[i], "attention_mask": torch.ones(8, dtype=torch.long)} for i in range(N)]
        else:
            px = torch.randn(N, 3, 8, 8, generator=g) + y[:, None, None, None]
            self.inputs = [{"pixel_values": px[i]} for i in range(N)]
        self.y = y

    def __len__(self):
        return N

    def __getitem__(self, i):
        return {**self.inputs[i], "labels": self.y[i], "idx": i}


def _model(kind: str):
    torch.manual_seed(0)
    if kind == "text":
        cfg = transformers.BertConfig(vocab_size=40, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                      intermediate_size=32, max_position_embeddings=16, num_labels=K)
        return transformers.BertForSequenceClassification(cfg)
    cfg = transformers.ViTConfig(image_size=8, patch_size=4, num_channels=3, hidden_size=16, num_hidden_layers=1,
                                 num_attention_heads=2, intermediate_size=32, num_labels=K)
    return transformers.ViTForImageClassification(cfg)


class _RecordingTrainer(transformers.Trainer):
    """Keeps (idx, logits, labels) of every training batch, read off compute_loss: not through the callback."""

    seen: list

    def compute_loss(self, model, inputs, return_outputs=False, **kwargs):
        loss, outputs = super().compute_loss(model, inputs, return_outputs=True, **kwargs)
        if model.training:
            self.seen.append((inputs["idx"].clone(), outputs.logits.detach().clone(), inputs["labels"].clone()))
        return (loss, outputs) if return_outputs else loss


def _train(kind, callback, root, **args):
    targs = transformers.TrainingArguments(
        str(root / "trainer"), per_device_train_batch_size=BS, num_train_epochs=EPOCHS, learning_rate=5e-3,
        report_to=[], use_cpu=True, save_strategy="no", logging_strategy="no", disable_tqdm=True, seed=0,
        **{"remove_unused_columns": False, **args})
    trainer = _RecordingTrainer(_model(kind), targs, train_dataset=_Rows(kind), callbacks=[callback])
    trainer.seen = []
    trainer.train()
    return trainer


@pytest.mark.parametrize("kind", ["text", "image"])
def test_callback_folder_equals_hand_fed_tracker(kind, tmp_path):
    cb = SensPruneCallback(tmp_path / "scores", n=N, labels=_labels(), measures=MEASURES)
    trainer = _train(kind, cb, tmp_path)
    assert cb.path_ == tmp_path / "scores"
    got = sp.load_scores(cb.path_)

    # the hand-written loop: the same logits, fed batch by batch, an epoch end every N / BS batches
    steps = N // BS
    assert len(trainer.seen) == EPOCHS * steps
    hand = sp.Tracker(n=N, labels=_labels(), measures=MEASURES)
    for epoch in range(EPOCHS):
        for idx, logits, y in trainer.seen[epoch * steps:(epoch + 1) * steps]:
            hand.step(idx, logits, y)
        hand.epoch_end()
    want = hand.values()
    for m in MEASURES:
        assert np.isfinite(got.scores[m]).all(), m
        np.testing.assert_array_equal(got.scores[m], want[m], err_msg=m)
    assert np.ptp(want["loss"]) > 0 and got.meta["config"]["epochs"] == EPOCHS
    assert sorted(torch.cat([s[0] for s in trainer.seen[:steps]]).tolist()) == list(range(N))  # one pass an epoch

    res = run_cli(["prune", "--scores", cb.path_, "--by", "forgetting", "--rule", "drop-high", "--fraction", "0.25",
                   "--out", tmp_path / "pruned"])
    assert res.exit_code == 0, res.output
    want_keep = sp.prune(got, by="forgetting", rule="drop-high", fraction=0.25).keep
    np.testing.assert_array_equal(np.load(tmp_path / "pruned" / "keep.npy"), want_keep)
    res = run_cli(["report", cb.path_, "--out", tmp_path / "report.html", "--quiet"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "report.html").stat().st_size > 1000


def test_bad_use_is_one_line(tmp_path):
    with pytest.raises(ValidationError, match=r"measures must be among loss, .*; got 'el2n' \(it evaluates"):
        SensPruneCallback(tmp_path / "a", n=N, measures=["aum", "el2n"])
    with pytest.raises(ValidationError, match=r"got 'loss_sensitivity' \(it records each batch before"):
        SensPruneCallback(tmp_path / "a", n=N, measures=["loss_sensitivity"])
    with pytest.raises(ValidationError, match="n must be a positive integer"):
        SensPruneCallback(tmp_path / "a", n=0)
    with pytest.raises(ValidationError, match=r"remove_unused_columns=\.\.\.\) must be False .*'idx'.*; got True"):
        _train("text", SensPruneCallback(tmp_path / "b", n=N), tmp_path, remove_unused_columns=True)

    class NoIndex(_Rows):
        def __getitem__(self, i):
            row = super().__getitem__(i)
            del row["idx"]
            return row

    targs = transformers.TrainingArguments(str(tmp_path / "t"), per_device_train_batch_size=BS, report_to=[],
                                           use_cpu=True, save_strategy="no", remove_unused_columns=False)
    cb = SensPruneCallback(tmp_path / "c", n=N)
    with pytest.raises(ValidationError, match=r"the model's inputs have no 'idx' column"):
        transformers.Trainer(_model("text"), targs, train_dataset=NoIndex("text"), callbacks=[cb]).train()
    for bad in ("b", "c"):
        assert not (tmp_path / bad).exists()


def test_missing_framework_is_one_line(monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    monkeypatch.delitem(sys.modules, "sensprune.integrations.transformers")
    with pytest.raises(ImportError, match=r"^sensprune\.integrations\.transformers needs transformers: "
                                          r"pip install 'sensprune\[transformers\]'$"):
        importlib.import_module("sensprune.integrations.transformers")


def test_import_sensprune_loads_no_framework():
    code = ("import sys, sensprune, sensprune.integrations; "
            "print(sorted(m for m in ('transformers', 'lightning', 'pytorch_lightning') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
