"""Folders that travel: a score folder made in directory A is pruned with --export-data and benched with
--selection from directory B, and again after the data and the folders moved together elsewhere (the data
is found through the path relative to the folder, then checked by fingerprint)."""

import json
import shutil

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, run_cli


def _npz(path):
    rng = np.random.default_rng(0)
    y, yt = np.arange(40) % 2, np.arange(10) % 2
    np.savez(path, x_train=(rng.normal(size=(40, 4)) + y[:, None]).astype(np.float32), y_train=y,
             x_test=(rng.normal(size=(10, 4)) + yt[:, None]).astype(np.float32), y_test=yt)


def _prune_and_bench(scores, out_dir, **kw):
    r = run_cli(["prune", "--scores", scores, "--by", "el2n", "--rule", "drop-high", "--fraction", "0.2",
                 "--out", out_dir / "P", "--export-data", out_dir / "kept.npz", *kw.get("extra", [])])
    assert r.exit_code == 0, r.output
    kept = np.load(out_dir / "kept.npz")
    assert kept["x_train"].shape == (32, 4)  # 20% of 40 removed
    r = run_cli(["bench", "--selection", out_dir / "P", "--seeds", "1", "--epochs", "1", "--quiet",
                 "--out", out_dir / "B"])
    assert r.exit_code == 0, r.output
    assert "the selection P" in (out_dir / "B" / "verdict.md").read_text()


@pytest.fixture
def scored(tmp_path, monkeypatch):
    """Directory A holds data/d.npz and runs/S, scored from A with a relative spec."""
    a = tmp_path / "A"
    (a / "data").mkdir(parents=True)
    _npz(a / "data" / "d.npz")
    monkeypatch.chdir(a)
    r = run_cli(["score", "--dataset", "npz:data/d.npz", "--epochs", "1", "--widths", "8", "--measures",
                 "el2n", "--quiet", "--out", "runs/S"])
    assert r.exit_code == 0, r.output
    return a


def test_score_folder_records_where_its_data_is(scored):
    loc = json.loads((scored / "runs" / "S" / "meta.json").read_text())["dataset"]["location"]
    assert loc == {"absolute": str(scored / "data" / "d.npz"), "relative": "../../data/d.npz"}


def test_prune_and_bench_from_another_directory(scored, tmp_path, monkeypatch):
    b = tmp_path / "B"
    b.mkdir()
    monkeypatch.chdir(b)
    _prune_and_bench(scored / "runs" / "S", b)
    # the prune and bench folders record the data relative to themselves too
    assert json.loads((b / "P" / "meta.json").read_text())["dataset"]["location"]["absolute"] == str(
        scored / "data" / "d.npz")
    assert json.loads((b / "B" / "meta.json").read_text())["dataset"]["location"]["relative"] == \
        "../../A/data/d.npz"


def test_after_moving_data_and_folder_together(scored, tmp_path, monkeypatch):
    moved = tmp_path / "elsewhere" / "A2"
    moved.parent.mkdir()
    monkeypatch.chdir(tmp_path)
    shutil.move(str(scored), str(moved))  # the absolute path and the typed spec no longer exist
    b = tmp_path / "B"
    b.mkdir()
    monkeypatch.chdir(b)
    _prune_and_bench(moved / "runs" / "S", b)
    # and the prune folder moved with the data is benched from a third directory
    shutil.move(str(b / "P"), str(moved / "runs" / "P"))
    c = tmp_path / "C"
    c.mkdir()
    monkeypatch.chdir(c)
    r = run_cli(["bench", "--selection", moved / "runs" / "P", "--seeds", "1", "--epochs", "1", "--quiet",
                 "--out", "B2"])
    assert r.exit_code == 0, r.output


def test_data_root_finds_moved_data(scored, tmp_path, monkeypatch):
    shutil.move(str(scored / "data"), str(tmp_path / "store"))  # the data moved, the folder stayed
    b = tmp_path / "B"
    b.mkdir()
    monkeypatch.chdir(b)
    r = run_cli(["prune", "--scores", scored / "runs" / "S", "--by", "el2n", "--rule", "drop-high",
                 "--fraction", "0.2", "--out", "P", "--export-data", "kept.npz"])
    assert_one_line_error(r, "was not found; tried ")
    assert not (b / "P").exists() and not (b / "kept.npz").exists()
    _prune_and_bench(scored / "runs" / "S", b, extra=["--data-root", tmp_path / "store"])


def test_other_data_at_the_path_is_refused_by_fingerprint(scored, tmp_path, monkeypatch):
    d = np.load(scored / "data" / "d.npz")
    np.savez(scored / "data" / "d.npz", **{**d, "y_train": 1 - d["y_train"]})
    monkeypatch.chdir(tmp_path)
    r = run_cli(["prune", "--scores", scored / "runs" / "S", "--by", "el2n", "--rule", "drop-high",
                 "--fraction", "0.2", "--out", "P", "--export-data", "kept.npz"])
    assert_one_line_error(r, "(relative to ")
    assert "fingerprint" in r.output and not (tmp_path / "P").exists()


def test_report_gallery_finds_the_data_from_anywhere(scored, tmp_path, monkeypatch):
    from sensprune.reporting.scores import load_inputs

    b = tmp_path / "B"
    b.mkdir()
    monkeypatch.chdir(b)  # the spec as typed (npz:data/d.npz) no longer resolves from here
    meta = json.loads((scored / "runs" / "S" / "meta.json").read_text())
    x, why = load_inputs(meta, scored / "runs" / "S")
    assert why == "" and x.shape == (40, 4)
    moved = tmp_path / "C"
    shutil.move(str(scored), str(moved))  # data and folder moved together: found relative to the folder
    x, why = load_inputs(meta, moved / "runs" / "S")
    assert why == "" and x.shape == (40, 4)
    shutil.move(str(moved / "data"), str(tmp_path / "elsewhere"))
    x, why = load_inputs(meta, moved / "runs" / "S")
    assert x is None and why.startswith("the dataset 'npz:data/d.npz' could not be reloaded")


def test_a_recorded_path_that_is_not_the_data_is_skipped(scored, tmp_path, monkeypatch):
    """The candidates are tried in their stated order: one that exists but does not load (a text file, a FIFO) or
    holds other data is skipped, and when none is the data the error names each one tried and why."""
    import os

    moved = tmp_path / "X"
    shutil.copytree(scored / "runs", moved / "runs")  # relative to the copied folder: X/data/d.npz
    (moved / "data").mkdir()
    (moved / "data" / "d.npz").write_text("not data")
    monkeypatch.chdir(tmp_path)
    r = run_cli(["prune", "--scores", moved / "runs" / "S", "--by", "el2n", "--rule", "drop-high", "--fraction",
                 "0.2", "--out", "P", "--export-data", "kept.npz"])
    assert r.exit_code == 0, r.output  # found at the recorded absolute path, the next candidate
    assert np.load(tmp_path / "kept.npz")["x_train"].shape == (32, 4)
    (moved / "data" / "d.npz").unlink()
    os.mkfifo(moved / "data" / "d.npz")  # read, it would block
    d = dict(np.load(scored / "data" / "d.npz"))
    np.savez(scored / "data" / "d.npz", **{**d, "y_train": 1 - d["y_train"]})
    r = run_cli(["prune", "--scores", moved / "runs" / "S", "--by", "el2n", "--rule", "drop-high", "--fraction",
                 "0.2", "--out", "P2", "--export-data", "kept2.npz"])
    assert_one_line_error(r, f"; tried {moved / 'data' / 'd.npz'} (relative to {moved / 'runs' / 'S'}: does not "
                             f"load: npz:{moved / 'data' / 'd.npz'}: the path must be a regular file; got a FIFO); "
                             f"{scored / 'data' / 'd.npz'} (recorded absolute path: fingerprint ")
    assert "data/d.npz (as typed, from the current directory: not found). Pass --data-root" in r.output
    assert not (tmp_path / "P2").exists() and not (tmp_path / "kept2.npz").exists()


@pytest.mark.parametrize("what", ["not data", "other data"])
def test_the_location_recorded_is_the_one_that_loaded(scored, tmp_path, monkeypatch, what):
    """A candidate that exists but is not the data (a text file, or data of another fingerprint) comes first:
    prune and bench record the path whose data has the recorded fingerprint, not the first path that exists."""
    import os

    moved = tmp_path / "X"
    shutil.copytree(scored / "runs", moved / "runs")  # relative to the copied folder: X/data/d.npz, tried first
    (moved / "data").mkdir()
    if what == "not data":
        (moved / "data" / "d.npz").write_text("not data")
    else:
        d = dict(np.load(scored / "data" / "d.npz"))
        np.savez(moved / "data" / "d.npz", **{**d, "y_train": 1 - d["y_train"]})
    data = scored / "data" / "d.npz"  # the recorded absolute path: the data
    monkeypatch.chdir(tmp_path)
    r = run_cli(["prune", "--scores", moved / "runs" / "S", "--by", "el2n", "--rule", "drop-high", "--fraction",
                 "0.2", "--out", "P"])
    assert r.exit_code == 0, r.output
    loc = json.loads((tmp_path / "P" / "meta.json").read_text())["dataset"]["location"]
    assert loc == {"absolute": str(data), "relative": os.path.relpath(data, tmp_path / "P")}
    # bench: [data] data_root's candidate (X/data/d.npz) comes before the prune folder's own, which is the data
    (tmp_path / "b.toml").write_text(f"[data]\ndata_root = {json.dumps(str(moved / 'data'))}\n")
    r = run_cli(["bench", "--selection", "P", "--config", "b.toml", "--seeds", "1", "--epochs", "1", "--quiet",
                 "--out", "B"])
    assert r.exit_code == 0, r.output
    loc = json.loads((tmp_path / "B" / "meta.json").read_text())["dataset"]["location"]
    assert loc == {"absolute": str(data), "relative": os.path.relpath(data, tmp_path / "B")}
