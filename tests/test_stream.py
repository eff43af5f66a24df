"""Streaming image folders (data larger than memory) give the same scores as the in-memory path."""

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from sensprune.cli import cli
from sensprune.data import load_dataset
from sensprune.errors import ValidationError
from sensprune.scoring.table import load_scores


@pytest.fixture
def folder(tmp_path):
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 3)):
        for c in range(3):
            d = tmp_path / "img" / split / f"class{c}"
            d.mkdir(parents=True)
            for i in range(n):
                px = np.clip(rng.normal(60 + 60 * c, 30, size=(8, 8)), 0, 255).astype(np.uint8)
                Image.fromarray(px, mode="L").save(d / f"{i:03d}.png")
    return tmp_path / "img"


def test_streamed_dataset_matches_in_memory(folder):
    mem = load_dataset(f"imagefolder:{folder}")
    st = load_dataset(f"imagefolder:{folder}", stream=True)
    assert st.n_train == mem.n_train == 36 and st.input_shape == mem.input_shape == (8, 8)
    np.testing.assert_array_equal(st.y_train, mem.y_train)
    x0, y0 = st.train[5]
    np.testing.assert_array_equal(x0.numpy(), mem.x_train[5])
    assert st.train_files == mem.train_files


@pytest.mark.parametrize("workers", ["0", "2"])
def test_streamed_scores_equal_in_memory_scores(folder, tmp_path, workers):
    common = ["score", "--dataset", f"imagefolder:{folder}", "--epochs", "2", "--batch-size", "8", "--widths", "16",
              "--quiet"]
    r1 = CliRunner().invoke(cli, [*common, "--out", str(tmp_path / "mem")])
    r2 = CliRunner().invoke(cli, [*common, "--stream", "--workers", workers, "--out", str(tmp_path / "st")])
    assert r1.exit_code == 0 and r2.exit_code == 0, r1.output + r2.output
    a, b = load_scores(tmp_path / "mem"), load_scores(tmp_path / "st")
    for m in a.measures:
        np.testing.assert_allclose(a.scores[m], b.scores[m], rtol=1e-5, atol=1e-6, err_msg=m)
    assert b.meta["dataset"]["streamed"] is True


def test_stream_refusals(folder, tmp_path):
    with pytest.raises(ValidationError, match="applies to imagefolder"):
        load_dataset("digits", stream=True)
    r = CliRunner().invoke(cli, ["score", "--dataset", f"imagefolder:{folder}", "--stream", "--measures",
                                 "loss_sensitivity", "--epochs", "1", "--out", str(tmp_path / "o")])
    assert r.exit_code == 1 and "in memory" in r.output and not (tmp_path / "o").exists()
