"""memorization (Feldman & Zhang 2020): the estimator, the ensemble path against one model at a time, the CLI's
bad input, meta.json's per-model fit, and a killed run resumed to the same values."""

import json

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, run_cli
from sensprune.benchmark.config import BenchOptions
from sensprune.data import load_dataset
from sensprune.errors import ValidationError
from sensprune.measures import memorization as mz
from sensprune.scoring.stage import ScoreConfig
from sensprune.train.fit import FIT_MAX_EPOCHS, FIT_SCHEDULE, FIT_THRESHOLD

SMALL = ["--subsample", "120", "--widths", "32", "--mem-models", "4", "--quiet"]


def _cfg(**kw):
    mo = {"mem_models": 4, **kw.pop("measure_options", {})}
    return ScoreConfig(measures=("memorization",), widths=(32,), measure_options=mo, **kw)


@pytest.fixture(scope="module")
def data():
    return load_dataset("digits", subsample=120)


def test_estimator_formula_by_hand():
    inside = np.array([[1, 1, 0], [1, 0, 0], [0, 1, 0], [0, 0, 0]], bool)  # 4 models, 3 examples
    correct = np.array([[1, 1, 1], [1, 0, 0], [0, 1, 1], [0, 1, 0]], bool)
    v = mz.estimate_from(inside, correct)
    # example 0: in models 0,1 (both right), out of 2,3 (both wrong): 1 - 0; example 1: 2/2 - 1/2
    assert v["memorization"][:2].tolist() == [1.0, 0.5]
    assert v["memorization_n_in"].tolist() == [2, 2, 0]
    assert v["memorization_se"][1] == pytest.approx(np.sqrt(0.25 / 2))
    assert np.isnan(v["memorization"][2]) and np.isnan(v["memorization_se"][2])  # never trained on


def test_subsets_are_seeded_and_exact():
    a, b = mz.subset_mask(100, 0.7, 0, 3), mz.subset_mask(100, 0.7, 0, 3)
    assert np.array_equal(a, b) and a.sum() == 70
    assert not np.array_equal(a, mz.subset_mask(100, 0.7, 0, 4))
    assert mz.model_seed(0, 3) != mz.model_seed(0, 4)


def test_fit_rule_is_the_bench_default():
    b = BenchOptions()
    assert (FIT_THRESHOLD, FIT_MAX_EPOCHS, FIT_SCHEDULE) == (b.fit_threshold, b.max_epochs, b.fit_schedule)


def test_ensemble_equals_one_at_a_time(data):
    seq, note_s = mz.estimate(data, _cfg(), progress=False, ensemble=False)
    ens, note_e = mz.estimate(data, _cfg(), progress=False, ensemble=True)
    assert (note_s["path"], note_e["path"]) == ("sequential", "ensemble")
    assert [m["epochs"] for m in note_s["per_model"]] == [m["epochs"] for m in note_e["per_model"]]
    for k in mz.NAMES:
        np.testing.assert_array_equal(seq[k], ens[k])
    for a, b in zip(note_s["per_model"], note_e["per_model"]):
        assert a["train_acc"] == pytest.approx(b["train_acc"], abs=1e-6)


def test_unstackable_model_falls_back_once(data, capsys):
    _, note = mz.estimate(data, _cfg(dropout=0.1, measure_options={"mem_models": 2}), progress=False)
    err = capsys.readouterr().err
    assert note["path"] == "sequential"
    assert err.count("one at a time") == 1 and "dropout" in err


@pytest.mark.parametrize("args, msg", [
    (["--mem-models", "1"], "`--mem-models` must be an integer in 2..10000; got '1'"),
    (["--mem-models", "100000000"], "`--mem-models` must be an integer in 2..10000; got '100000000'"),
    (["--mem-subset", "0"], "`--mem-subset` must be a fraction in (0, 1); got '0'"),
    (["--mem-subset", "1.5"], "`--mem-subset` must be a fraction in (0, 1); got '1.5'"),
    (["--mem-subset", "x"], "`--mem-subset` must be a fraction in (0, 1); got 'x'"),
    (["--mem-max-epochs", "0"], "Invalid value for '--mem-max-epochs': 0 is not in the range 1<=x<=100000."),
    (["--mem-max-epochs", "x"], "Invalid value for '--mem-max-epochs': 'x' is not a valid integer range."),
])
def test_bad_input_one_line_nothing_written(tmp_path, args, msg):
    out = tmp_path / "D"
    r = run_cli(["score", "--dataset", "digits", "--measures", "memorization", *args, "--out", out])
    assert_one_line_error(r, msg)
    assert list(tmp_path.iterdir()) == []


def test_other_measures_keep_their_config():
    """Without memorization, its options stay out of the resolved config (older resumes and caches still match)."""
    assert not any(k.startswith("mem_") for k in ScoreConfig(measures=("loss",)).to_dict()["measure_options"])
    assert _cfg().to_dict()["measure_options"]["mem_models"] == 4


def test_cli_writes_columns_meta_and_resumes_to_the_same_values(tmp_path, monkeypatch):
    full = tmp_path / "full"
    r = run_cli(["score", "--dataset", "digits", "--measures", "memorization", *SMALL, "--out", full])
    assert r.exit_code == 0, r.output
    header = (full / "scores.csv").read_text().splitlines()[0].split(",")
    assert header[-3:] == ["memorization", "memorization_se", "memorization_n_in"]
    note = json.loads((full / "meta.json").read_text())["measure_notes"]["memorization"]
    assert len(note["per_model"]) == 4 and note["models_fit"] == sum(m["fit"] for m in note["per_model"])
    assert all(0 < m["train_acc"] <= 1 and m["epochs"] >= 1 for m in note["per_model"])

    real, trained = mz._train_ensemble, []

    def killed_after_two(*a, **kw):
        for k, rec in real(*a, **kw):
            if len(trained) == 2:
                raise KeyboardInterrupt
            trained.append(k)
            yield k, rec
    monkeypatch.setattr(mz, "_train_ensemble", killed_after_two)
    part = tmp_path / "part"
    r = run_cli(["score", "--dataset", "digits", "--measures", "memorization", *SMALL, "--out", part])
    assert r.exit_code != 0 and not part.exists()
    assert len(list((tmp_path / "part.partial" / "memorization").glob("model_*.npz"))) == 2
    monkeypatch.setattr(mz, "_train_ensemble", real)
    calls = []
    monkeypatch.setattr(mz, "_train_ensemble", lambda ds, cfg, todo, *a: calls.append(list(todo)) or real(
        ds, cfg, todo, *a))
    r = run_cli(["score", "--dataset", "digits", "--measures", "memorization", *SMALL, "--resume", "--out", part])
    assert r.exit_code == 0, r.output
    assert calls == [[k for k in range(4) if k not in trained]]  # only the unfinished models trained
    assert (part / "scores.csv").read_text() == (full / "scores.csv").read_text()


@pytest.mark.parametrize("ensemble", [True, pytest.param(False, marks=pytest.mark.slow)],
                         ids=["ensemble", "one-at-a-time"])  # each spawns two workers (torch imports)
def test_two_jobs_equal_one_and_write_every_model(data, tmp_path, ensemble):
    """--jobs 2: two spawned workers (two ensemble chunks, or one model per task) give the values of one process
    and write each model's file, as one process would."""
    one, note1 = mz.estimate(data, _cfg(), progress=False, ensemble=ensemble)
    two, note2 = mz.estimate(data, _cfg(measure_options={"mem_jobs": 2}), workdir=tmp_path, progress=False,
                             ensemble=ensemble)
    assert (note1["jobs"], note2["jobs"]) == (1, 2) and note1["path"] == note2["path"]
    for k in mz.NAMES:
        np.testing.assert_array_equal(one[k], two[k])
    assert note1["per_model"] == note2["per_model"]
    assert sorted(f.name for f in tmp_path.iterdir()) == [f"model_{k:05d}.npz" for k in range(4)]
    again, _ = mz.estimate(data, _cfg(measure_options={"mem_jobs": 2}), workdir=tmp_path, progress=False,
                           ensemble=ensemble)  # all four on disk: nothing trains, same values
    for k in mz.NAMES:
        np.testing.assert_array_equal(one[k], again[k])


def test_epoch_cap_is_stored_and_a_model_of_another_cap_trains_again(data, tmp_path, monkeypatch):
    vals, note = mz.estimate(data, _cfg(measure_options={"mem_models": 2}), workdir=tmp_path, progress=False,
                             max_epochs=2)
    assert note["fit_rule"]["max_epochs"] == 2 and all(m["epochs"] <= 2 for m in note["per_model"])
    real, calls = mz._train_ensemble, []
    monkeypatch.setattr(mz, "_train_ensemble", lambda ds, cfg, todo, *a: calls.append(list(todo)) or real(
        ds, cfg, todo, *a))
    mz.estimate(data, _cfg(measure_options={"mem_models": 2}), workdir=tmp_path, progress=False, max_epochs=2)
    mz.estimate(data, _cfg(measure_options={"mem_models": 2}), workdir=tmp_path, progress=False, max_epochs=3)
    assert calls == [[0, 1]]  # same cap: read back (no ensemble call); another cap: both trained again
    with pytest.raises(ValidationError, match=r"max_epochs must be an integer >= 1; got 0\."):
        mz.estimate(data, _cfg(), progress=False, max_epochs=0)


def test_jobs_refusals():
    r = run_cli(["score", "--dataset", "digits", "--measures", "loss", "--jobs", "2", "--out", "unused"])
    assert r.exit_code == 2
    assert_one_line_error(r, "--jobs applies to the memorization measure only")
    with pytest.raises(ValidationError, match=r"The measure option 'mem_jobs' must be an integer >= 1; got 0\."):
        _cfg(measure_options={"mem_jobs": 0})
    cfg = _cfg(measure_options={"mem_jobs": 2}, model="python:Net", model_factory=lambda k, shape: None)
    with pytest.raises(ValidationError, match=r"needs a model given by name.*; got the Python object python:Net\. "
                                              r"Use 1 job\."):
        mz.check(load_dataset("digits", subsample=120), cfg)
    assert "memorization only" in run_cli(["score", "--help"]).output


def test_mem_max_epochs_is_the_cap_from_the_cli_and_the_measure_options(data, tmp_path):
    """``--mem-max-epochs`` (measure option ``mem_max_epochs``) is the subset models' cap; None = the bench's."""
    assert _cfg().measure_options.mem_max_epochs is None
    _, note = mz.estimate(data, _cfg(measure_options={"mem_models": 2, "mem_max_epochs": 1}), progress=False)
    assert note["fit_rule"]["max_epochs"] == 1 and all(m["epochs"] == 1 for m in note["per_model"])
    with pytest.raises(ValidationError, match=r"`--mem-max-epochs` must be an integer in 1\.\.100000; got 0\."):
        _cfg(measure_options={"mem_max_epochs": 0})
    out = tmp_path / "D"
    r = run_cli(["score", "--dataset", "digits", "--measures", "memorization", *SMALL[:4], "--mem-models", "2",
                 "--mem-max-epochs", "2", "--epochs", "1", "--quiet", "--out", out])
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "meta.json").read_text())
    assert '"max_epochs": 2' in json.dumps(meta) and '"mem_max_epochs": 2' in json.dumps(meta)
