"""Tests of the pruning stage: rules, reweighting, the selection artifact and ``sensprune prune``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from sensprune.cli import cli
from sensprune.errors import ArtifactMismatchError, ValidationError
from sensprune.pruning.selection import Selection, as_sampler, as_subset, export_data, load_selection, save_selection
from sensprune.pruning.stage import allocate_budget, keep_mask, rank_average, reweight, select
from sensprune.scoring.table import ScoreTable, load_scores, save_scores

N, K = 300, 5


def _scores(n=N, seed=0):
    return np.random.default_rng(seed).normal(size=n)


def _labels(n=N, k=K):
    return np.arange(n) % k


def _removed(fraction, n):
    return int(np.floor(fraction * n + 0.5))


# ---------------------------------------------------------------- rules


@pytest.mark.parametrize("rule", ["drop-high", "drop-low", "keep-middle", "stratified", "random"])
@pytest.mark.parametrize("fraction", [0.1, 0.25, 0.5, 0.9])
def test_rule_exact_counts_and_partition(rule, fraction):
    s = _scores()
    m = keep_mask(s, rule, fraction=fraction)
    assert m.dtype == bool and m.shape == (N,)
    assert (~m).sum() == _removed(fraction, N)
    keep, drop = np.flatnonzero(m), np.flatnonzero(~m)
    assert len(np.intersect1d(keep, drop)) == 0 and len(keep) + len(drop) == N


def test_drop_high_and_low_remove_the_tails():
    s = _scores()
    m = keep_mask(s, "drop-high", fraction=0.2)
    assert s[~m].min() >= s[m].max()
    m = keep_mask(s, "drop-low", fraction=0.2)
    assert s[~m].max() <= s[m].min()


def test_ties_broken_by_index():
    s = np.zeros(10)
    np.testing.assert_array_equal(np.flatnonzero(~keep_mask(s, "drop-high", fraction=0.3)), [7, 8, 9])
    np.testing.assert_array_equal(np.flatnonzero(~keep_mask(s, "drop-low", fraction=0.3)), [0, 1, 2])


def test_keep_middle_low_high():
    s = np.arange(100.0)
    m = keep_mask(s, "keep-middle", low=0.1, high=0.2)
    np.testing.assert_array_equal(np.flatnonzero(m), np.arange(10, 80))
    m = keep_mask(s, "keep-middle", fraction=0.2)
    np.testing.assert_array_equal(np.flatnonzero(m), np.arange(10, 90))
    with pytest.raises(ValidationError, match="must equal low"):
        keep_mask(s, "keep-middle", fraction=0.5, low=0.1, high=0.2)


def test_threshold_forms():
    s = np.arange(100.0)
    np.testing.assert_array_equal(np.flatnonzero(~keep_mask(s, "threshold", above=94.5)), np.arange(95, 100))
    np.testing.assert_array_equal(np.flatnonzero(~keep_mask(s, "threshold", below=3)), [0, 1, 2])
    assert (~keep_mask(s, "threshold", above="q0.9")).sum() == 10  # above 89.1
    z = keep_mask(s, "threshold", above="z1.0", below="z-1.0")
    assert np.all(np.abs(s[z] - s.mean()) <= s.std())
    with pytest.raises(ValidationError, match="'above' parameter"):
        keep_mask(s, "threshold", above="x7")
    with pytest.raises(ValidationError, match="not 'fraction'"):
        keep_mask(s, "threshold", fraction=0.1, above=3)


def test_random_is_seeded():
    s = _scores()
    a, b = keep_mask(s, "random", fraction=0.3, seed=1), keep_mask(s, "random", fraction=0.3, seed=1)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, keep_mask(s, "random", fraction=0.3, seed=2))


@pytest.mark.parametrize("rule", ["drop-high", "drop-low", "keep-middle", "stratified", "random"])
@pytest.mark.parametrize("fraction", [0.1, 0.33, 0.7])
def test_per_class_fraction_within_one(rule, fraction):
    s, y = _scores(), np.random.default_rng(3).integers(0, K, N)
    m = keep_mask(s, rule, fraction=fraction, labels=y, per_class=True)
    for c in range(K):
        n_c = (y == c).sum()
        assert abs((~m[y == c]).sum() - fraction * n_c) <= 1


def test_stratified_covers_every_bin_and_drops_hardest_beta():
    s = np.random.default_rng(0).exponential(size=1000)
    m = keep_mask(s, "stratified", fraction=0.8, beta=0.1, bins=20, seed=0)
    assert m.sum() == 200
    order = np.argsort(s, kind="stable")
    assert not m[order[900:]].any()
    pool = order[:900]
    edges = np.linspace(s[pool].min(), s[pool].max(), 21)
    ids = np.clip(np.searchsorted(edges, s[pool], side="right") - 1, 0, 19)
    for b in np.unique(ids):
        assert m[pool[ids == b]].any(), f"bin {b} not covered"
    with pytest.raises(ValidationError, match="beta must not exceed fraction"):
        keep_mask(s, "stratified", fraction=0.1, beta=0.2)


def test_allocate_budget_follows_algorithm_1():
    # smallest first: 2 -> min(2, 12//4=3)=2; 3 -> min(3, 10//3)=3; 10 -> 7//2=3; 20 -> 4
    np.testing.assert_array_equal(allocate_budget(12, np.array([10, 2, 20, 3])), [3, 2, 4, 3])
    np.testing.assert_array_equal(allocate_budget(100, np.array([1, 2])), [1, 2])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=1, max_size=30), st.integers(0, 2000))
def test_allocate_budget_total(sizes, budget):
    out = allocate_budget(budget, np.array(sizes))
    assert out.sum() == min(budget, sum(sizes)) and np.all(out <= np.array(sizes)) and np.all(out >= 0)


def test_min_per_class_and_empty_class():
    s = np.r_[np.full(5, 10.0), np.zeros(95)]
    y = np.r_[np.zeros(5, int), np.ones(95, int)]
    with pytest.raises(ValidationError, match="every example of class 0"):
        keep_mask(s, "drop-high", fraction=0.05, labels=y)
    m = keep_mask(s, "drop-high", fraction=0.05, labels=y, min_per_class=2)
    assert m[:5].sum() == 2
    m = keep_mask(s, "drop-high", fraction=0.05, labels=y, allow_empty_class=True)
    assert m[:5].sum() == 0


@pytest.mark.parametrize("bad", [0.0, 1.0, 1.5, -0.1, float("nan"), "0.5", True])
def test_fraction_message(bad):
    with pytest.raises(ValidationError, match=r"The 'fraction' parameter must be a float in \(0, 1\); got"):
        keep_mask(_scores(), "drop-high", fraction=bad)


def test_nonfinite_scores_rejected():
    s = _scores()
    s[7] = np.nan
    with pytest.raises(ValidationError, match="NaN or infinite"):
        keep_mask(s, "drop-high", fraction=0.1)
    with pytest.raises(ValidationError, match="NaN or infinite"):
        reweight(np.r_[1.0, np.inf], "softmax")


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(-1e6, 1e6) | st.sampled_from([0.0, 1.0]), min_size=1, max_size=80),
       st.sampled_from(["drop-high", "drop-low", "keep-middle", "stratified", "random"]),
       st.floats(0.01, 0.99), st.integers(0, 3))
def test_property_random_scores(scores, rule, fraction, seed):
    s = np.array(scores)
    n = len(s)
    try:
        m = keep_mask(s, rule, fraction=fraction, seed=seed, bins=7, allow_empty_class=True)
    except ValidationError as exc:
        assert "every example" in str(exc) and _removed(fraction, n) >= n - 1 or \
            rule == "keep-middle" and "low + high" in str(exc)
        return
    assert m.shape == (n,) and m.any()
    assert (~m).sum() == _removed(fraction, n)
    np.testing.assert_array_equal(m, keep_mask(s, rule, fraction=fraction, seed=seed, bins=7))
    if rule == "drop-high" and (~m).any():
        assert s[~m].min() >= s[m].max()


# ---------------------------------------------------------------- reweighting


@settings(max_examples=150, deadline=None)
@given(st.lists(st.floats(-1e3, 1e3) | st.sampled_from([0.0, 1.0]), min_size=1, max_size=60),
       st.sampled_from(["inverse-rank", "softmax", "clip"]), st.floats(0.05, 20.0))
def test_reweight_properties(scores, method, temperature):
    s = np.array(scores)
    w = reweight(s, method, temperature=temperature, fraction=0.3)
    assert w.shape == s.shape and np.all(w > 0) and np.isfinite(w).all()
    assert abs(w.mean() - 1) < 1e-9
    order = np.argsort(s, kind="stable")
    assert np.all(np.diff(w[order]) <= 1e-12), "weights must not increase with the score"
    for v in np.unique(s):
        assert np.ptp(w[s == v]) < 1e-12


def test_reweight_shapes_of_each_method():
    s = np.arange(10.0)
    w = reweight(s, "clip", fraction=0.3)
    assert np.allclose(w[:7], w[0]) and np.all(np.diff(w[6:]) < 0)
    flat, sharp = reweight(s, "softmax", temperature=100), reweight(s, "softmax", temperature=0.5)
    assert np.ptp(flat) < np.ptp(sharp)
    with pytest.raises(ValidationError, match="'temperature' parameter must be a float > 0"):
        reweight(s, "inverse-rank", temperature=0)
    with pytest.raises(ValidationError, match="needs the 'fraction'"):
        reweight(s, "clip")


# ---------------------------------------------------------------- select / artifact


def _table(n=N, k=K, *, spec="digits", fingerprint="0" * 16, nan=False):
    rng = np.random.default_rng(0)
    scores = {"el2n": rng.random(n), "input_grad": rng.random(n)}
    if nan:
        scores["el2n"][3] = np.nan
    meta = {"dataset": {"spec": spec, "fingerprint": fingerprint, "n_train": n, "num_classes": k},
            "measures": {m: {"direction": "higher = harder"} for m in scores}}
    return ScoreTable(np.arange(n, dtype=np.int64), np.arange(n, dtype=np.int64) % k, scores, meta=meta)


def test_rank_average():
    t = _table()
    r = rank_average(t, ["el2n", "input_grad"])
    assert r.shape == (N,) and r.min() >= 0 and r.max() <= 1
    single = rank_average(t, ["el2n"])
    np.testing.assert_array_equal(np.argsort(single), np.argsort(t.scores["el2n"]))


def test_select_save_load_roundtrip(tmp_path):
    t = _table()
    sel = select(t, "el2n", "drop-high", fraction=0.2, per_class=True)
    out = save_selection(sel, tmp_path / "sel")
    back = load_selection(out)
    np.testing.assert_array_equal(back.keep, sel.keep)
    np.testing.assert_array_equal(back.drop, sel.drop)
    assert back.weights is None and back.keep.dtype == np.int64
    assert np.all(np.diff(back.keep) > 0) and back.n == N
    np.testing.assert_array_equal(np.loadtxt(out / "keep.txt", dtype=np.int64), back.keep)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["kind"] == "selection" and meta["rule"] == "drop-high" and meta["measure"] == ["el2n"]
    assert meta["direction"] == "higher = harder" and meta["dataset"]["spec"] == "digits"
    c = meta["counts"]
    assert c["removed"] == 60 and c["kept"] == 240 and c["removed_fraction"] == 0.2
    assert all(r["removed"] == 12 for r in c["per_class"].values())
    header = (out / "selection.csv").read_text().splitlines()[0]
    assert header == "index,source_row,label,score,kept,weight"


def test_select_reweight_and_helpers(tmp_path):
    import torch

    sel = select(_table(), "el2n,input_grad", reweight_method="inverse-rank", temperature=0.5)
    assert len(sel.drop) == 0 and abs(sel.weights.mean() - 1) < 1e-9
    back = load_selection(save_selection(sel, tmp_path / "w"))
    np.testing.assert_allclose(back.weights, sel.weights)
    sampler = as_sampler(back, generator=torch.Generator().manual_seed(0))
    assert len(list(sampler)) == N
    uniform = as_sampler(Selection(np.array([1, 3]), np.array([0, 2])))
    assert set(uniform) <= {1, 3}
    with pytest.raises(ValidationError, match="exactly one"):
        select(_table(), "el2n", "drop-high", reweight_method="clip", fraction=0.1)
    with pytest.raises(ValidationError, match="not in the score file"):
        select(_table(), "nope", "drop-high", fraction=0.1)


def test_as_subset_length_and_mismatch():
    import torch
    from torch.utils.data import TensorDataset

    ds = TensorDataset(torch.zeros(10, 2))
    sel = Selection(np.array([0, 4, 5]), np.array([1, 2, 3, 6, 7, 8, 9]))
    assert len(as_subset(ds, sel)) == 3
    with pytest.raises(ArtifactMismatchError):
        as_subset(TensorDataset(torch.zeros(9, 2)), sel)


def test_export_formats(tmp_path):
    from sensprune.data import load_dataset, make_dataset

    rng = np.random.default_rng(0)
    x, y = rng.random((20, 3)).astype(np.float32), np.arange(20) % 2
    sel = Selection(np.arange(0, 20, 2), np.arange(1, 20, 2))
    np.savez(tmp_path / "src.npz", x_train=x, y_train=y, x_test=x[:4], y_test=y[:4])
    ds = load_dataset(f"npz:{tmp_path / 'src.npz'}")
    assert export_data(ds, sel, tmp_path / "c.npz") == "npz"
    with np.load(tmp_path / "c.npz") as z:
        assert z["x_train"].shape == (10, 3) and z["x_test"].shape == (4, 3)
        np.testing.assert_array_equal(z["y_train"], y[::2])
    files = [f"train/{i % 2}/{i}.png" for i in range(20)]
    ds = make_dataset(x, y, x[:4], y[:4], spec="imagefolder:x", train_files=files)
    assert export_data(ds, sel, tmp_path / "files.txt") == "file-list"
    assert (tmp_path / "files.txt").read_text().splitlines() == files[::2]
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,label\n" + "".join(f"{i / 10},{i % 3},{i % 2}\n" for i in range(30)))

    ds = load_dataset(f"csv:{csv}")
    sel = Selection(np.arange(0, ds.n_train, 2), np.arange(1, ds.n_train, 2))
    assert export_data(ds, sel, tmp_path / "clean.csv") == "csv"
    lines = csv.read_text().splitlines(keepends=True)
    dropped = {int(r) + 1 for r in ds.source_rows()[sel.drop]}  # + 1: the header line
    assert (tmp_path / "clean.csv").read_text() == "".join(ln for i, ln in enumerate(lines) if i not in dropped)
    for bad in ("clean.npz", "clean.txt", "clean"):
        with pytest.raises(ValidationError, match=r"must end in \.csv"):
            export_data(ds, sel, tmp_path / bad)
        assert not (tmp_path / bad).exists()


# ---------------------------------------------------------------- CLI


@pytest.fixture(scope="module")
def digits_scores(tmp_path_factory):
    from sensprune.data import load_dataset

    ds = load_dataset("digits")
    root = tmp_path_factory.mktemp("scores")
    t = _table(ds.n_train, ds.num_classes, fingerprint=ds.fingerprint)
    t.label = ds.y_train.copy()
    save_scores(t, root / "scores")
    return root / "scores", ds


def _run(*args):
    return CliRunner().invoke(cli, ["prune", *map(str, args)])


def test_help():
    res = CliRunner().invoke(cli, ["prune", "--help"])
    assert res.exit_code == 0
    for word in ("--fraction", "drop-high", "stratified", "Zheng", "REMOVED", "Examples"):
        assert word in res.output


def test_cli_end_to_end(digits_scores, tmp_path):
    import torch
    from torch.utils.data import Subset, TensorDataset

    scores, ds = digits_scores
    out = tmp_path / "sel"
    res = _run("--scores", scores, "--by", "el2n", "--rule", "drop-high", "--fraction", 0.1,
               "--per-class", "--out", out, "--export-data", tmp_path / "clean.npz")
    assert res.exit_code == 0, res.output
    assert "removed" in res.output and "kept" in res.output
    keep = np.load(out / "keep.npy")
    train = TensorDataset(torch.from_numpy(ds.x_train), torch.from_numpy(ds.y_train))
    subset = Subset(train, keep.tolist())
    n_removed = sum(_removed(0.1, int((ds.y_train == c).sum())) for c in range(ds.num_classes))
    assert len(subset) == ds.n_train - n_removed
    assert len(np.load(out / "drop.npy")) == n_removed
    with np.load(tmp_path / "clean.npz") as z:
        assert len(z["x_train"]) == len(subset)
    res = _run("--scores", scores, "--by", "el2n,input_grad", "--reweight", "softmax", "--temperature", 2,
               "--out", tmp_path / "w")
    assert res.exit_code == 0, res.output
    w = np.load(tmp_path / "w" / "weights.npy")
    assert w.shape == (ds.n_train,) and abs(w.mean() - 1) < 1e-9


def _corrupt(scores, tmp_path):
    bad = tmp_path / "corrupt"
    bad.mkdir()
    (bad / "meta.json").write_bytes((scores / "meta.json").read_bytes())
    (bad / "scores.npz").write_bytes((scores / "scores.npz").read_bytes()[:500])
    return bad


def _nan_scores(tmp_path):
    save_scores(_table(nan=True), tmp_path / "nan")
    return tmp_path / "nan"


def _tiny_class(tmp_path):
    t = _table(20, 2)
    t.label = np.r_[np.zeros(19, np.int64), 1]
    save_scores(t, tmp_path / "tiny")
    return tmp_path / "tiny"


def _other_data(tmp_path):
    save_scores(_table(1257, 10, fingerprint="f" * 16), tmp_path / "other")
    return tmp_path / "other"


BAD = {
    "fraction>1": lambda s, p: ["--by", "el2n", "--rule", "drop-high", "--fraction", "1.5"],
    "fraction=0": lambda s, p: ["--by", "el2n", "--rule", "drop-high", "--fraction", "0"],
    "no measure": lambda s, p: ["--by", "loss_sensitivity", "--rule", "drop-high", "--fraction", "0.1"],
    "empty class": lambda s, p: ["--by", "el2n", "--rule", "drop-high", "--fraction", "0.6", "--per-class",
                                 "--scores", _tiny_class(p)],
    "no rule": lambda s, p: ["--by", "el2n", "--fraction", "0.1"],
    "nan": lambda s, p: ["--by", "el2n", "--rule", "drop-high", "--fraction", "0.1",
                         "--scores", _nan_scores(p)],
    "corrupt": lambda s, p: ["--by", "el2n", "--rule", "drop-high", "--fraction", "0.1",
                             "--scores", _corrupt(s, p)],
    "mismatch": lambda s, p: ["--by", "el2n", "--rule", "drop-high", "--fraction", "0.1",
                              "--scores", _other_data(p), "--export-data", p / "x.npz"],
}


@pytest.mark.parametrize("case", sorted(BAD))
def test_cli_bad_input(case, digits_scores, tmp_path):
    scores, _ = digits_scores
    args = BAD[case](scores, tmp_path)
    if "--scores" not in args:
        args = ["--scores", scores, *args]
    out = tmp_path / "out"
    res = _run(*args, "--out", out)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code != 0
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    assert "Traceback" not in res.output
    assert not out.exists() and not (tmp_path / "x.npz").exists()


def test_cli_out_exists_needs_force(digits_scores, tmp_path):
    scores, _ = digits_scores
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    args = ["--scores", scores, "--by", "el2n", "--rule", "random", "--fraction", 0.5, "--out", out]
    res = _run(*args)
    assert res.exit_code != 0 and res.output.strip().startswith("Error: ") and "--force" in res.output
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    res = _run(*args, "--force")  # --force never replaces a user's folder (issue 13)
    assert res.exit_code == 1 and "not a sensprune output" in res.output
    assert (out / "mine.txt").read_text() == "keep me" and [p.name for p in out.iterdir()] == ["mine.txt"]
    (out / "mine.txt").unlink()
    assert _run(*args).exit_code == 1  # an empty folder needs --force too
    assert _run(*args[:-2], "--out", out, "--force").exit_code == 0 and (out / "keep.npy").exists()
    first = (out / "meta.json").read_bytes()
    res = _run(*args[:-4], "--fraction", 0.25, "--out", out, "--force")  # an earlier prune output is replaced
    assert res.exit_code == 0, res.output
    assert (out / "meta.json").read_bytes() != first and not list(out.parent.glob(".out.*"))


def test_cli_score_then_prune(tmp_path):
    pytest.importorskip("sensprune.cli.score")
    runner = CliRunner()
    res = runner.invoke(cli, ["score", "--dataset", "digits", "--model", "mlp", "--epochs", "1", "--quiet",
                              "--out", str(tmp_path / "s")])
    assert res.exit_code == 0, res.output
    measure = load_scores(tmp_path / "s").measures[0]
    res = _run("--scores", tmp_path / "s", "--by", measure, "--rule", "stratified", "--fraction", 0.5,
               "--bins", 10, "--out", tmp_path / "p")
    assert res.exit_code == 0, res.output
    assert len(np.load(Path(tmp_path / "p" / "keep.npy"))) == 1257 - _removed(0.5, 1257)


def test_export_data_of_a_corrupted_score_folder_replays_the_corruption(tmp_path):
    """A folder scored with --corrupt reloads its data with the same (seeded) noise, so the fingerprint matches."""
    from click.testing import CliRunner

    from sensprune.cli import cli

    rng = np.random.default_rng(0)
    np.savez(tmp_path / "d.npz", x_train=rng.normal(size=(60, 4)), y_train=np.arange(60) % 3,
             x_test=rng.normal(size=(9, 4)), y_test=np.arange(9) % 3)
    r = CliRunner().invoke(cli, ["score", "--dataset", f"npz:{tmp_path / 'd.npz'}", "--corrupt", "randY:0.2",
                                 "--epochs", "1", "--widths", "8", "--quiet", "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(cli, ["prune", "--scores", str(tmp_path / "s"), "--by", "loss", "--rule", "drop-high",
                                 "--fraction", "0.2", "--out", str(tmp_path / "p"),
                                 "--export-data", str(tmp_path / "clean.npz")])
    assert r.exit_code == 0, r.output
    z = np.load(tmp_path / "clean.npz")
    keep = np.load(tmp_path / "p" / "keep.npy")
    assert z["x_train"].shape == (48, 4) and len(keep) == 48
    corrupted = set(np.load(tmp_path / "s" / "corrupted.npy").tolist())
    labels = np.arange(60) % 3
    assert corrupted
    # the export is a copy of the user's file: the original labels and inputs, not the corrupted ones
    np.testing.assert_array_equal(z["y_train"], labels[keep])
    with np.load(tmp_path / "d.npz") as src:
        np.testing.assert_array_equal(z["x_train"], src["x_train"][keep])
        assert z["x_train"].dtype == src["x_train"].dtype == np.float64
