"""sensprune.Tracker in a user's own loop: same values as sp.score, a folder the CLI accepts, one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from cli_helpers import assert_one_line_error, run_cli
from train_helpers import user_loop

import sensprune as sp
from sensprune.errors import ValidationError

MEASURES = ["loss", "forgetting", "aum", "confidence", "variability", "correctness", "input_grad", "el2n"]


def _net():
    return torch.nn.Sequential(torch.nn.Linear(6, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))


def _user_loop(x, y, epochs=3, bs=32, seed=0):
    """A plain PyTorch loop, fed the run sp.score trains: same init seed, same batch order, same SGD."""
    return user_loop(_net, x, y, MEASURES, epochs=epochs, bs=bs, seed=seed)


def test_tracker_equals_sp_score(tiny_arrays):
    x, y, _, _ = tiny_arrays
    table = sp.score((x, y), measures=MEASURES, model=_net, epochs=3, seed=0, batch_size=32, schedule="constant")
    tracker = _user_loop(x, y)
    got = tracker.values()
    for m in MEASURES:
        assert np.isfinite(got[m]).all(), m
        np.testing.assert_allclose(got[m], table.scores[m], rtol=1e-5, atol=1e-7, err_msg=m)
    assert table.meta["config"]["el2n_epoch"] == tracker.el2n_epoch == 1


def test_tracker_folder_accepted_by_prune_report_info(tiny_arrays, tmp_path):
    x, y, _, _ = tiny_arrays
    tracker = _user_loop(x, y, epochs=2)
    out = tracker.save(tmp_path / "mine")
    meta = json.loads((out / "meta.json").read_text())
    assert meta["kind"] == "scores" and meta["dataset"]["train_fingerprint"]
    table = sp.load_scores(out)
    np.testing.assert_array_equal(table.label, y)
    res = run_cli(["prune", "--scores", out, "--by", "aum", "--rule", "drop-high", "--fraction", "0.2",
                   "--per-class", "--out", tmp_path / "pruned"])
    assert res.exit_code == 0, res.output
    assert len(np.load(tmp_path / "pruned" / "keep.npy")) == 96
    res = run_cli(["report", out, "--out", tmp_path / "report.html", "--quiet"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "report.html").stat().st_size > 1000
    res = run_cli(["info", out])
    assert res.exit_code == 0 and "scores artifact" in res.output
    # the selection made from the tracker folder checks the training data's fingerprint
    sel = sp.prune(table, by="el2n", rule="drop-high", fraction=0.1)
    assert len(sel.subset((x, y))) == len(sel.keep)
    with pytest.raises(sp.SensPruneError, match="fingerprint"):
        sel.subset((x[::-1].copy(), y))


def test_tracker_bad_input_is_one_line(tiny_arrays, tmp_path):
    x, y, _, _ = tiny_arrays
    t = sp.Tracker(n=120, labels=y, measures=["aum", "input_grad"])
    with pytest.raises(ValidationError, match=r"no step was recorded"):
        t.save(tmp_path / "empty")
    assert not (tmp_path / "empty").exists()
    xb = torch.from_numpy(x[:4]).requires_grad_()
    logits = _net()(xb)
    with pytest.raises(ValidationError, match=r"indices must be in 0\.\.119 \(n=120\); got 118\.\.121"):
        t.step(torch.tensor([118, 119, 120, 121]), logits, torch.tensor(y[:4]), x=xb)
    with pytest.raises(ValidationError, match=r"logits must have shape \(4, 4\) .*; got \(4, 3\)\."):
        t.step(torch.arange(4), logits[:, :3], torch.tensor(y[:4]), x=xb)
    with pytest.raises(ValidationError, match=r"logits must have shape \(3, 4\) .*; got \(4, 4\)\."):
        t.step(torch.arange(3), logits, torch.tensor(y[:3]), x=xb)
    with pytest.raises(ValidationError, match="requires_grad"):
        t.step(torch.arange(4), logits.detach(), torch.tensor(y[:4]), x=xb.detach())
    with pytest.raises(ValidationError, match="untrackable measure.*'grand'"):
        sp.Tracker(n=10, measures=["aum", "grand"])
    with pytest.raises(ValidationError, match="labels must be 120"):
        sp.Tracker(n=120, labels=y[:5])
    for err in (ValidationError,):
        assert len(str(err("x")).splitlines()) == 1


def test_el2n_needs_model_at_its_epoch(tiny_arrays):
    x, y, _, _ = tiny_arrays
    t = sp.Tracker(n=120, labels=y, measures=["el2n"], el2n_epoch=1)
    model = _net()
    t.step(torch.arange(8), model(torch.from_numpy(x[:8])), torch.tensor(y[:8]))
    with pytest.raises(ValidationError, match="pass model= and eval_data="):
        t.epoch_end()
    with pytest.raises(ValidationError, match="eval_data has 8 examples, the tracker 120"):
        t.epoch_end(model=model, eval_data=(x[:8], y[:8]))


def test_save_refuses_tracker_cli_error_is_one_line(tiny_arrays, tmp_path):
    """A tracker folder with never-presented examples is refused by prune in one line (NaN scores)."""
    x, y, _, _ = tiny_arrays
    t = sp.Tracker(n=120, labels=y, measures=["aum"])
    t.step(torch.arange(8), _net()(torch.from_numpy(x[:8])), torch.tensor(y[:8]))
    t.epoch_end()
    t.save(tmp_path / "part")
    res = run_cli(["prune", "--scores", tmp_path / "part", "--by", "aum", "--rule", "drop-high", "--fraction",
                   "0.2", "--out", tmp_path / "p"])
    assert_one_line_error(res, "aum")
    assert not (tmp_path / "p").exists()


def test_tracker_folder_with_dataset_accepted_by_bench_selection(tmp_path):
    from sensprune.data import load_dataset

    ds = load_dataset("digits", subsample=200)
    X, Y = torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train)
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10))
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    t = sp.Tracker(n=ds.n_train, labels=ds.y_train, measures=["aum", "el2n"], dataset=ds)
    for idx in torch.randperm(ds.n_train).split(50):
        logits = model(X[idx])
        t.step(idx, logits, Y[idx])
        opt.zero_grad()
        F.cross_entropy(logits, Y[idx]).backward()
        opt.step()
    t.epoch_end(model=model, eval_data=(X, Y))
    t.save(tmp_path / "tr")
    assert run_cli(["prune", "--scores", tmp_path / "tr", "--by", "aum", "--rule", "drop-high", "--fraction", "0.2",
                    "--out", tmp_path / "sel"]).exit_code == 0
    res = run_cli(["bench", "--selection", tmp_path / "sel", "--out", tmp_path / "b", "--seeds", "1", "--epochs", "1",
                   "--quiet"])
    assert res.exit_code == 0, res.output
    rows = (tmp_path / "b" / "results.csv").read_text().splitlines()
    assert len(rows) == 4 and "selection:drop-high" in (tmp_path / "b" / "summary.csv").read_text()


def _ddp_feed(x, y, rank=0, world=1):
    """2 epochs over fixed global batches; rank r takes every world-th example of each batch (global idx).

    The model changes between epochs (seeded), so examples are forgotten and learned again.
    """
    torch.manual_seed(0)
    model = _net()
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    t = sp.Tracker(n=len(y), labels=y, measures=MEASURES)
    for epoch in range(2):
        gen = torch.Generator().manual_seed(epoch)
        for batch in torch.randperm(len(y), generator=gen).split(16):
            idx = batch[rank::world]
            xb = X[idx].requires_grad_()
            t.step(idx, model(xb), Y[idx], x=xb)
        t.epoch_end(model=model, eval_data=(x, y))
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn(p.shape, generator=gen))
    return t


def _ddp_worker(rank, world, init_file, out_dir, x, y):
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    try:
        _ddp_feed(x, y, rank, world).save(f"{out_dir}/ddp")
    finally:
        dist.destroy_process_group()


def test_tracker_under_ddp_equals_one_process(tiny_arrays, tmp_path):
    import torch.multiprocessing as mp

    x, y, _, _ = tiny_arrays
    mp.spawn(_ddp_worker, args=(2, str(tmp_path / "init"), str(tmp_path), x, y), nprocs=2, join=True)
    got = sp.load_scores(tmp_path / "ddp")
    want = _ddp_feed(x, y).values()
    assert want["forgetting"].max() >= 1  # the run has forgetting events to reduce
    for m in MEASURES:
        np.testing.assert_allclose(got.scores[m], want[m], rtol=1e-6, atol=1e-9, err_msg=m)


def test_tracker_and_score_folders_share_one_meta_builder(tiny_arrays, tmp_path):
    from sensprune.measures.gini import gini, lorenz

    x, y, _, _ = tiny_arrays
    tracker = _user_loop(x, y, epochs=2)
    sp.score((x, y), measures=MEASURES, model=_net, epochs=2, batch_size=32, out=tmp_path / "s")
    mine = json.loads((tracker.save(tmp_path / "t") / "meta.json").read_text())
    theirs = json.loads((tmp_path / "s" / "meta.json").read_text())
    assert set(mine) == set(theirs)
    # NaN handling: a Tracker that saw half of the examples; gini and lorenz over the finite values
    half = sp.Tracker(n=120, labels=y, measures=["loss", "aum"])
    logits = torch.randn(60, 4, generator=torch.Generator().manual_seed(0))
    half.step(torch.arange(60), logits, torch.from_numpy(y[:60]))
    half.epoch_end()
    meta = half.table().meta
    vals = half.values()
    assert np.isnan(vals["loss"][60:]).all() and np.isfinite(vals["loss"][:60]).all()
    assert meta["gini"]["loss"] == pytest.approx(gini(vals["loss"][:60]))
    np.testing.assert_allclose(meta["lorenz"]["loss"], lorenz(vals["loss"][:60]).round(6))
    assert meta["gini_per_epoch"]["loss"] == [pytest.approx(gini(vals["loss"][:60]))]
    from sensprune.scoring.table import score_meta

    none = score_meta(config={}, seeds=[0], dataset={}, values={"loss": np.full(3, np.nan)}, gini_rows=[[np.nan]],
                      history={}, notes={}, note="", wall_time_s=0.0)
    assert none["gini"] == {"loss": None} and none["lorenz"] == {} and none["gini_per_epoch"] == {"loss": [None]}
