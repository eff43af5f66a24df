"""Degenerate data is refused or stated (issue 13, item 5): one training class, test labels never seen in
training, gaps in the class ids, and sample weights the training loop cannot use."""

import re

import numpy as np
import pytest
import torch
from cli_helpers import assert_one_line_error, run_cli

from sensprune.config import TrainConfig
from sensprune.data import load_dataset, make_dataset
from sensprune.data.base import DataWarning
from sensprune.errors import ValidationError
from sensprune.train.loop import train
from sensprune.train.models import MLP
from sensprune.train.sources import ArraySource


def _x(n, f=3, seed=0):
    return np.random.default_rng(seed).normal(size=(n, f)).astype(np.float32)


def test_single_training_class_is_refused():
    with pytest.raises(ValidationError, match=r"^data: the training split has a single class \(label 2\); "
                                              r"at least 2 classes are needed"):
        make_dataset(_x(6), np.full(6, 2), _x(2), np.full(2, 2), spec="t")


def test_test_labels_unseen_in_training_are_listed():
    y = np.array([0, 1, 0, 1, 0, 1])
    with pytest.raises(ValidationError, match=r"^data: test labels 2, 4 never occur in the training split"):
        make_dataset(_x(6), y, _x(4), np.array([0, 2, 4, 1]), spec="t")
    # with K given, a test label below K but absent from training is refused the same way
    with pytest.raises(ValidationError, match=r"test labels 3 never occur"):
        make_dataset(_x(6), y, _x(2), np.array([3, 0]), spec="t", num_classes=5)


def test_gaps_in_the_labels_are_stated():
    y = np.array([0, 1, 3, 0, 1, 3])
    with pytest.warns(DataWarning, match=r"^data: class ids 2 of 0\.\.3 have no training example; the model still "
                                         r"has 4 outputs\."):
        ds = make_dataset(_x(6), y, _x(3), np.array([0, 1, 3]), spec="t")
    assert ds.num_classes == 4 and ds.info["classes_without_training_examples"] == [2]
    assert ds.describe()["classes_without_training_examples"] == [2]


def test_csv_with_one_class_is_one_line_error(tmp_path):
    path = tmp_path / "one.csv"
    path.write_text("a,b,label\n" + "".join(f"{i},{i * 2},cat\n" for i in range(10)))
    with pytest.raises(ValidationError, match="single class"):
        load_dataset(f"csv:{path}")
    out = tmp_path / "out"
    r = run_cli(["score", "--dataset", f"csv:{path}", "--epochs", "1", "--out", out])
    assert_one_line_error(r, "the training split has a single class")
    assert not out.exists()


def test_csv_split_column_with_unseen_test_label_is_refused(tmp_path):
    path = tmp_path / "s.csv"
    rows = [f"{i},{i % 2},train" for i in range(8)] + ["1,2,test", "2,0,test"]
    path.write_text("f,label,split\n" + "\n".join(rows) + "\n")
    with pytest.raises(ValidationError, match=re.escape(f"csv:{path}: test labels 2 never occur")):
        load_dataset(f"csv:{path}")


# -- sample weights given to the training loop ------------------------------------------------------------

@pytest.mark.parametrize("weights, match", [
    (np.r_[0.0, np.ones(9)], r"found 1 zero "),
    (np.r_[np.nan, np.ones(9)], r"found 1 NaN or inf "),
    (np.r_[np.inf, np.ones(9)], r"found 1 NaN or inf "),
    (np.r_[-1.0, -2.0, np.ones(8)], r"found 2 negative "),
    (np.ones(9), r"an array of 10 real numbers .*shape \(9,\)"),
    (np.ones((10, 1)), r"an array of 10 real numbers .*shape \(10, 1\)"),
    (np.array(["a"] * 10), r"an array of 10 real numbers"),
])
def test_bad_sample_weights_are_refused(weights, match):
    y = np.arange(10) % 2
    src = ArraySource(_x(10), y, torch.device("cpu"))
    built = []

    def build():
        built.append(1)
        return MLP(2, (3,), widths=(4,))

    with pytest.raises(ValidationError, match=r"^The sample weights must be (finite and > 0; )?" + match):
        train(build, src, TrainConfig(epochs=1, batch_size=4), weights=weights, progress=False)
    assert not built  # refused at entry, before any model is built


def test_good_sample_weights_train():
    y = np.arange(10) % 2
    src = ArraySource(_x(10), y, torch.device("cpu"))
    res = train(lambda: MLP(2, (3,), widths=(4,)), src, TrainConfig(epochs=1, batch_size=4),
                weights=np.linspace(0.1, 2, 10), progress=False)
    assert len(res.history) == 1 and np.isfinite(res.history[0]["train_loss"])


def test_gap_warning_is_one_line_on_the_cli(tmp_path):
    path = tmp_path / "gap.csv"
    rng = np.random.default_rng(0)
    path.write_text("a,b,label\n" + "".join(f"{rng.random()},{rng.random()},{(0, 1, 3)[i % 3]}\n" for i in range(60)))
    r = run_cli(["score", "--dataset", f"csv:{path}", "--epochs", "1", "--widths", "4", "--measures", "loss",
                 "--quiet", "--out", tmp_path / "s"])
    assert r.exit_code == 0, r.output
    warn = [ln for ln in r.output.splitlines() if "no training example" in ln]
    assert warn == [f"Warning: csv:{path}: class ids 2 of 0..3 have no training example; the model still has "
                    "4 outputs."], r.output
