"""A prune folder made from a Tracker folder (no dataset=) is benched with --selection once the prune names the
data with --dataset (checked against the Tracker's training fingerprint); without it, the refusal says exactly
what is missing."""

import numpy as np
import torch

from cli_helpers import assert_one_line_error, run_cli

import sensprune as sp


def _tracker_folder(tmp_path):
    rng = np.random.default_rng(0)
    y, yt = np.arange(40) % 2, np.arange(10) % 2
    x = (rng.normal(size=(40, 4)) + y[:, None]).astype(np.float32)
    np.savez(tmp_path / "d.npz", x_train=x, y_train=y,
             x_test=(rng.normal(size=(10, 4)) + yt[:, None]).astype(np.float32), y_test=yt)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 2)
    t = sp.Tracker(n=40, labels=y, measures=["el2n"], el2n_epoch=1)
    for i in range(0, 40, 8):
        idx = torch.arange(i, i + 8)
        t.step(idx, model(torch.from_numpy(x[i:i + 8])), torch.from_numpy(y[i:i + 8]))
    t.epoch_end(model=model, eval_data=(x, y))
    return t.save(tmp_path / "T")


PRUNE = ["prune", "--by", "el2n", "--rule", "drop-high", "--fraction", "0.25"]


def test_bench_a_prune_of_a_tracker_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = _tracker_folder(tmp_path)
    r = run_cli([*PRUNE, "--scores", folder, "--out", "P0"])
    assert r.exit_code == 0, r.output
    r = run_cli(["bench", "--selection", "P0", "--seeds", "1", "--epochs", "1", "--quiet", "--out", "B0"])
    assert_one_line_error(r, "--selection P0 was pruned from a Tracker folder made without dataset=, so it does not "
                             "say which data it indexes; prune it again with `sensprune prune --dataset SPEC`")
    assert not (tmp_path / "B0").exists()
    r = run_cli([*PRUNE, "--scores", folder, "--out", "P", "--dataset", "npz:d.npz", "--export-data", "k.npz"])
    assert r.exit_code == 0, r.output
    assert np.load(tmp_path / "k.npz")["x_train"].shape == (30, 4)
    r = run_cli(["bench", "--selection", "P", "--seeds", "1", "--epochs", "1", "--quiet", "--out", "B"])
    assert r.exit_code == 0, r.output


def test_prune_dataset_must_be_the_tracked_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    folder = _tracker_folder(tmp_path)
    r = run_cli([*PRUNE, "--scores", folder, "--out", "P", "--dataset", "digits"])
    assert_one_line_error(r, "`--dataset` must be the data the Tracker scored (training fingerprint ")
    assert "got 'digits', whose training split has fingerprint" in r.output
    assert not (tmp_path / "P").exists()
