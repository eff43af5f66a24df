"""CLI of the scoring stage: --help, a real run, and every bad input as a one-line error with nothing written."""

import json
import subprocess
import sys

import numpy as np
import pytest

from cli_helpers import assert_one_line_error as _one_line_error, run_cli as _run

FAST = ["--epochs", "1", "--widths", "16", "--quiet"]


@pytest.mark.parametrize("cmd", ["score", "info"])
def test_help(cmd):
    r = _run([cmd, "--help"])
    assert r.exit_code == 0 and "Example" in r.output


def test_score_digits_end_to_end(tmp_path):
    r = _run(["score", "--dataset", "digits", "--epochs", "2", "--out", str(tmp_path / "s"), "--quiet"])
    assert r.exit_code == 0, r.output
    assert "input_grad" in r.output and "wrote" in r.output
    meta = json.loads((tmp_path / "s/meta.json").read_text())
    assert meta["dataset"]["n_train"] == 1257 and meta["config"]["train"]["epochs"] == 2
    info = _run(["info", str(tmp_path / "s")])
    assert info.exit_code == 0 and "scores artifact" in info.output and "fingerprint" in info.output


def test_probe_every_and_step_every_reach_the_proxy_and_are_named_in_meta(tmp_path):
    r = _run(["score", "--dataset", "digits", "--measures", "loss_sensitivity_h1", "--probe-size", "64",
              "--probe-every", "3", "--step-every", "2", *FAST, "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "s/meta.json").read_text())
    opts = meta["config"]["measure_options"]
    assert opts["probe_every"] == 3 and opts["step_every"] == 2
    notes = json.dumps(meta)
    assert "probe gradient reused" in notes and "steps subsampled" in notes and "probe_every_error" in notes
    assert ("loss_sensitivity_h1: PROXY: truncated to the last 1 update(s) (one-step influence surrogate), "
            "APPROXIMATION: probe gradient reused for 3 steps, APPROXIMATION: 1 step in 2 scored") in r.output


def test_corrupt_option_saves_corrupted_indices(tmp_path):
    r = _run(["score", "--dataset", "digits", "--corrupt", "randY:0.1", *FAST, "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    idx = np.load(tmp_path / "s/corrupted.npy")
    assert len(idx) == round(0.1 * 1257)


def _npz(path, **override):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.normal(size=(20, 3)), "y_train": np.arange(20) % 2,
              "x_test": rng.normal(size=(6, 3)), "y_test": np.arange(6) % 2}
    arrays.update(override)
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return f"npz:{path}"


def _bad_inputs(tmp_path):
    csv = tmp_path / "d.csv"
    csv.write_text("a,b,target\n1,2,0\n3,4,1\n5,6,0\n7,8,1\n1,1,0\n2,2,1\n3,3,0\n4,4,1\n5,5,0\n6,6,1\n")
    plugin = tmp_path / "myplug.py"
    plugin.write_text("def bad():\n    return 42\n")
    return {
        "unknown dataset": (["--dataset", "nope"], "Unknown dataset"),
        "unknown model": (["--model", "transformer"], "Unknown model"),
        "npz missing keys": (["--dataset", _npz(tmp_path / "a.npz", y_test=None)], "y_test"),
        "npz mismatched": (["--dataset", _npz(tmp_path / "b.npz", y_train=np.zeros(7, int))], "rows"),
        "npz labels": (["--dataset", _npz(tmp_path / "c.npz", y_train=np.arange(20) - 1)], "labels outside"),
        "npz nan": (["--dataset", _npz(tmp_path / "d.npz", x_train=np.full((20, 3), np.nan))], "NaN"),
        "npz empty": (["--dataset", _npz(tmp_path / "e.npz", x_train=np.zeros((0, 3)), y_train=np.zeros(0, int))],
                      "zero examples"),
        "csv label column": (["--dataset", f"csv:{csv}"], "label"),
        "torchvision missing": (["--dataset", "cifar10", "--data-root", str(tmp_path / "none")], "cifar"),
        "plugin import": (["--dataset", "plugin:no_such_mod:fn"], "could not be imported"),
        "plugin type": (["--dataset", "plugin:myplug:bad"], "plugin"),
        "measure": (["--measures", "input_grad,bogus"], "bogus"),
        "corrupt": (["--corrupt", "randZ:0.1"], "randZ"),
        "probe-every on the full horizon": (["--measures", "loss_sensitivity", "--probe-every", "2"],
                                            "--probe-every belongs to the one-step proxy"),
        "probe-every with next-batch": (["--measures", "loss_sensitivity_h1", "--probe", "next-batch",
                                         "--probe-every", "2"], "--probe-every applies to the fixed probe"),
        "step-every on the full horizon": (["--measures", "loss_sensitivity", "--step-every", "3"],
                                           "--step-every belongs to the one-step proxy"),
    }


@pytest.mark.parametrize("case", [
    "unknown dataset", "unknown model", "npz missing keys", "npz mismatched", "npz labels", "npz nan", "npz empty",
    "csv label column", "torchvision missing", "plugin import", "plugin type", "measure", "corrupt",
    "probe-every on the full horizon", "probe-every with next-batch", "step-every on the full horizon"])
def test_bad_input_is_one_line_and_writes_nothing(case, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args, match = _bad_inputs(tmp_path)[case]
    out = tmp_path / "out"
    r = _run(["score", *args, *FAST, "--out", str(out)])
    _one_line_error(r, match)
    assert not out.exists() and not (tmp_path / "out.partial").exists()


def test_epochs_zero_is_a_one_line_usage_error(tmp_path):
    r = _run(["score", "--epochs", "0", "--out", str(tmp_path / "o")])
    assert r.exit_code == 2 and not (tmp_path / "o").exists()
    _one_line_error(r, "--epochs")


def test_existing_out_without_force(tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "keep.txt").write_text("mine")
    r = _run(["score", *FAST, "--out", str(tmp_path / "o")])
    _one_line_error(r, "--force")
    assert (tmp_path / "o" / "keep.txt").read_text() == "mine"


def test_resume_with_different_config_is_refused(tmp_path):
    out = tmp_path / "o"
    partial = tmp_path / "o.partial"
    partial.mkdir()
    (partial / "config.json").write_text(json.dumps({"config": {"train": {"epochs": 7}}, "dataset_fingerprint": "x"}))
    r = _run(["score", *FAST, "--out", str(out), "--resume"])
    _one_line_error(r, "another config")
    assert not out.exists() and sorted(p.name for p in partial.iterdir()) == ["config.json"]


def test_interrupted_run_without_resume_is_refused(tmp_path):
    (tmp_path / "o.partial").mkdir()
    (tmp_path / "o.partial" / "config.json").write_text("{}")
    _one_line_error(_run(["score", *FAST, "--out", str(tmp_path / "o")]), "--resume")


def test_info_on_non_artifact_and_newer_format(tmp_path):
    _one_line_error(_run(["info", str(tmp_path)]), "not a sensprune artifact")
    (tmp_path / "meta.json").write_text(json.dumps({"kind": "scores", "format_version": 99}))
    _one_line_error(_run(["info", str(tmp_path)]), "newer")


def test_console_entry_point_prints_one_line_without_traceback(tmp_path):
    r = subprocess.run([sys.executable, "-m", "sensprune", "score", "--dataset", "nope", "--out", str(tmp_path / "o")],
                       capture_output=True, text=True)
    assert r.returncode == 1 and r.stderr.strip().startswith("Error: Unknown dataset")
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1
