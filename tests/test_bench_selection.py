"""Tests of ``sensprune bench --selection``: the user's prune folders against matched random and full."""

from __future__ import annotations

import csv
import json
import shutil

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_cli

from sensprune.benchmark import selection as BS
from sensprune.benchmark.config import BenchConfig
from sensprune.errors import ArtifactMismatchError, ValidationError

SCORE = ["--measures", "el2n", "--epochs", "2", "--widths", "16", "--quiet"]


def read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("sel")
    for name, sub in (("s", "300"), ("s2", "200")):
        r = run_cli(["score", "--dataset", "digits", "--subsample", sub, *SCORE, "--out", root / name])
        assert r.exit_code == 0, r.output
    for args in (["--scores", root / "s", "--by", "el2n", "--rule", "drop-high", "--fraction", "0.2", "--out",
                  root / "P"],
                 ["--scores", root / "s", "--by", "el2n", "--reweight", "clip", "--fraction", "0.2", "--out",
                  root / "W"],
                 ["--scores", root / "s2", "--by", "el2n", "--rule", "drop-low", "--fraction", "0.1", "--out",
                  root / "Q"]):
        r = run_cli(["prune", *args])
        assert r.exit_code == 0, r.output
    return root


def test_cli_end_to_end(folders, tmp_path):
    out = tmp_path / "B"
    r = run_cli(["bench", "--selection", folders / "P", folders / "W", "--seeds", "3", "--epochs", "2",
                 "--out", out, "--quiet"])
    assert r.exit_code == 0, r.output
    assert "# Verdict" in r.output and "Your selections" in r.output
    rows = read(out / "results.csv")
    assert len(rows) == 3 * 5 and all(x["status"] == "ok" for x in rows)
    assert [(x["measure"], x["rule"]) for x in rows[:5]] == [
        ("full", "none"), ("P", "selection:drop-high"), ("random", "matched:P"),
        ("W", "selection:reweight:clip"), ("random", "matched:W")]
    keep = np.load(folders / "P" / "keep.npy")
    assert {x["n_train"] for x in rows if x["measure"] in ("P", "random") and x["rule"] != "matched:W"} == {
        str(len(keep))}
    assert {x["n_train"] for x in rows if x["measure"] == "W"} == {"300"}
    summary = {x["key"]: x for x in read(out / "summary.csv")}
    p = next(x for x in summary.values() if x["measure"] == "P")
    assert p["vs"] == "random" and p["d_random_n"] == "3" and p["d_full_n"] == "3" and p["q_bh"] not in ("", "nan")
    meta = json.loads((out / "meta.json").read_text())
    assert meta["kind"] == "bench" and meta["mode"] == "selection" and meta["bh"]["tested"] == 2
    assert [s["name"] for s in meta["selections"]] == ["P", "W"]
    text = (out / "verdict.md").read_text()
    assert "across all 2 tested cells" in text and f"[`{p['key']}`]" in text


def test_matched_random_has_the_selections_class_counts(folders):
    data, corr, sels = BS.load_selections([folders / "P", folders / "W"])
    assert corr == "none" and data.n_train == 300
    p, w = sels
    y = data.y_train
    m0, none = BS.matched_random(p, y, 0)
    m1, _ = BS.matched_random(p, y, 1)
    assert none is None and not np.array_equal(m0, m1)  # a fresh draw per seed
    for c in np.unique(y):
        assert m0[y == c].sum() == p.mask[y == c].sum() == m1[y == c].sum()
    mw, ww = BS.matched_random(w, y, 0)
    assert mw.all() and not np.array_equal(ww, w.weights)
    for c in np.unique(y):
        assert np.array_equal(np.sort(ww[y == c]), np.sort(w.weights[y == c]))


def test_selection_from_other_data_refused(folders, tmp_path):
    r = run_cli(["bench", "--selection", folders / "P", folders / "Q", "--epochs", "1", "--out", tmp_path / "B"])
    assert_one_line_error(r, f"--selection {folders / 'Q'} was made from other data than {folders / 'P'}: dataset "
                             "'digits?subsample=200' (fingerprint")
    assert not (tmp_path / "B").exists()


def test_selection_whose_data_changed_refused(folders, tmp_path):
    bad = tmp_path / "P"
    shutil.copytree(folders / "P", bad)
    meta = json.loads((bad / "meta.json").read_text())
    meta["dataset"]["fingerprint"] = "0123456789abcdef"
    (bad / "meta.json").write_text(json.dumps(meta))
    r = run_cli(["bench", "--selection", bad, "--epochs", "1", "--out", tmp_path / "B"])
    assert_one_line_error(r, f"--selection {bad} was made from other data: The scores were made from dataset")
    assert "fingerprint 0123456789abcdef" in r.output and not (tmp_path / "B").exists()


def test_selection_covering_other_n_refused(folders, tmp_path):
    bad = tmp_path / "P"  # P's 300 indices, but labelled as made from Q's data (200 examples)
    shutil.copytree(folders / "P", bad)
    meta = json.loads((bad / "meta.json").read_text())
    meta["dataset"] = json.loads((folders / "Q" / "meta.json").read_text())["dataset"]
    (bad / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ArtifactMismatchError, match=r"was made from other data: it covers 300 training examples "
                                                    r"but 'digits\?subsample=200' has 200"):
        BS.load_selections([bad])


@pytest.mark.parametrize("which, match", [
    ("s", "is a 'scores' artifact, not a 'selection' artifact"),
    ("plain", "is not a sensprune artifact (no meta.json)"),
])
def test_not_a_prune_folder_refused(folders, tmp_path, which, match):
    d = folders / "s" if which == "s" else tmp_path / "plain"
    d.mkdir(exist_ok=True)
    r = run_cli(["bench", "--selection", d, "--epochs", "1", "--out", tmp_path / "B"])
    assert_one_line_error(r, f"--selection {d} is not a prune folder (made by `sensprune prune --out`): ")
    assert match in r.output and not (tmp_path / "B").exists()


def test_out_existing_needs_force_and_is_replaced_whole(folders, tmp_path):
    out = tmp_path / "B"
    cfg = BenchConfig().with_overrides(seeds=1, epochs=1)
    BS.run_selections([folders / "P"], out, cfg, progress=False)
    with pytest.raises(ValidationError, match="already exists; pass --force"):
        BS.run_selections([folders / "W"], out, cfg, progress=False)
    BS.run_selections([folders / "W"], out, cfg, progress=False, force=True)
    assert {x["measure"] for x in read(out / "results.csv")} == {"full", "W", "random"}
    with pytest.raises(ValidationError, match="is the input .*; choose another --out"):
        BS.run_selections([folders / "P"], folders / "P", cfg, progress=False, force=True)


@pytest.mark.parametrize("args, match", [
    (["--out", "o"], "Pass --config GRID.toml (a grid) or --selection DIR"),
    (["extra", "--out", "o", "--config", "g.toml"], "unexpected extra argument"),
    (["--selection", "p", "--resume", "--out", "o"], "--resume, --shard and --jobs apply to --config grids"),
])
def test_cli_usage_errors(tmp_path, monkeypatch, args, match):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "g.toml").write_text("")
    r = run_cli(["bench", *args])
    assert r.exit_code == 2 and match in r.output, r.output
    assert not (tmp_path / "o").exists()


def test_config_without_grid_gives_the_training_settings(folders, tmp_path):
    (tmp_path / "t.toml").write_text("[train]\nepochs = 1\nbatch_size = 64\n[score]\nwidths = [8]\n")
    r = run_cli(["bench", "--selection", folders / "P", "--config", tmp_path / "t.toml", "--seeds", "2",
                 "--out", tmp_path / "B", "--quiet"])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "B" / "meta.json").read_text())
    assert meta["config"]["train"]["batch_size"] == 64 and meta["config"]["score"]["widths"] == [8]
    assert {x["epochs"] for x in read(tmp_path / "B" / "results.csv")} == {"1"}
    assert len(read(tmp_path / "B" / "results.csv")) == 2 * 3


def test_sp_bench_runs_the_code_of_bench_selection(folders, tmp_path):
    import sensprune as sp

    r = run_cli(["bench", "--selection", folders / "P", folders / "W", "--seeds", "2", "--epochs", "1",
                 "--out", tmp_path / "cli", "--quiet"])
    assert r.exit_code == 0, r.output
    data, _, _ = BS.load_selections([folders / "P"])  # the data the folders were made from
    res = sp.bench(data, selections={"P": folders / "P", "W": sp.load_selection(folders / "W")}, seeds=2,
                   epochs=1, out=tmp_path / "api")
    cli, api = read(tmp_path / "cli" / "summary.csv"), read(tmp_path / "api" / "summary.csv")
    assert len(cli) == 5 and cli == api  # same rows, same numbers: baselines, random draws, tests, BH
    strip = [{k: v for k, v in x.items() if k != "wall_time_s"} for x in read(tmp_path / "cli" / "results.csv")]
    assert strip == [{k: v for k, v in x.items() if k != "wall_time_s"} for x in read(tmp_path / "api" / "results.csv")]
    p = next(x for x in api if x["measure"] == "P")
    assert res.summary["P"]["q_bh"] == float(p["q_bh"]) and res.out == tmp_path / "api"
    assert set(res.summary) == {"full", "P", "random[P]", "W", "random[W]"}


def test_fit_steps_budget_gives_every_arm_the_full_runs_steps(folders, tmp_path):
    (tmp_path / "t.toml").write_text('[bench]\nbudget = "fit-steps"\nmax_epochs = 2\n[score]\nwidths = [8]\n')
    r = run_cli(["bench", "--selection", folders / "P", folders / "W", "--config", tmp_path / "t.toml", "--seeds",
                 "1", "--out", tmp_path / "B", "--quiet"])
    assert r.exit_code == 0, r.output
    rows = read(tmp_path / "B" / "results.csv")
    assert all(x["status"] == "ok" for x in rows) and len({x["steps"] for x in rows}) == 1, rows
