"""benchmarks/memorization/compare.py --quick on digits: the CSV's columns and rows, values in range, the ceiling
computed from the same models the estimate used, and a rerun that resumes (trains nothing) to the same CSV."""

import csv
import importlib.util
import math
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "memorization" / "compare.py"


@pytest.fixture(scope="module")
def compare():
    spec = importlib.util.spec_from_file_location("memorization_compare", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def quick(compare, tmp_path_factory):
    out = tmp_path_factory.mktemp("memq")
    compare.main(["--quick", "--datasets", "digits", "--out", str(out), "--quiet"])
    with open(out / "results.csv", newline="") as fh:
        return out, list(csv.DictReader(fh))


def _f(v: str) -> float:
    return float(v) if v not in ("", "nan") else math.nan


def test_columns_and_one_row_per_dataset_noise_measure_seed(compare, quick):
    out, rows = quick
    assert tuple(rows[0]) == compare.COLUMNS
    measures = [r for r in rows if r["kind"] == "measure"]
    keys = {(r["dataset"], r["noise"], r["measure"], r["seed"]) for r in measures}
    assert len(keys) == len(measures) == len(compare.NOISES) * len(compare.MEASURES) * len(compare.SEEDS)
    assert {r["noise"] for r in rows} == set(compare.NOISES) and {r["dataset"] for r in rows} == {"digits"}
    for noise in compare.NOISES:  # one mem row and one ceiling row per (dataset, noise)
        assert sorted(r["kind"] for r in rows if r["noise"] == noise and r["kind"] != "measure") == [
            "ceiling", "memorization"]
    text = (out / "summary.md").read_text()
    assert "CEILING" in text and "Spearman-Brown" in text and "Machine:" in text and "Commit:" in text
    assert "compare.py --quick --datasets digits" in text


def test_values_in_range(quick):
    _, rows = quick
    for r in rows:
        assert 0 <= int(r["models_fit"]) <= int(r["models"]) and int(r["top10_size"]) >= 1
        for c in ("spearman", "spearman_brown"):
            assert math.isnan(_f(r[c])) or -1 <= _f(r[c]) <= 1
        for c in ("auroc_top10", "auroc_flips"):
            assert math.isnan(_f(r[c])) or 0 <= _f(r[c]) <= 1
        if r["kind"] == "measure":
            assert -1 <= _f(r["spearman"]) <= 1 and 0 <= _f(r["auroc_top10"]) <= 1
            assert math.isnan(_f(r["auroc_flips"])) == (r["noise"] == "none")
            assert int(r["n_flipped"]) == (0 if r["noise"] == "none" else round(0.2 * int(r["n_train"])))


def test_ceiling_is_the_split_half_of_the_same_models(compare, quick):
    from sensprune.io import read_npz
    from sensprune.measures import memorization as mz

    out, rows = quick
    for r in (r for r in rows if r["kind"] == "ceiling"):
        half = compare.folder(out, r["dataset"], r["noise"])
        mem = read_npz(half / "mem.npz")["memorization"]
        inside, correct = mz.matrices(type("D", (), {"n_train": len(mem)}), compare.mem_config(True),
                                      half / "mem_models", max_epochs=compare.QUICK["cap"])
        np.testing.assert_array_equal(mz.estimate_from(inside, correct)["memorization"], mem)
        a = mz.estimate_from(inside[:4], correct[:4])["memorization"]
        b = mz.estimate_from(inside[4:], correct[4:])["memorization"]
        rho = compare.spearman(a, b)
        assert _f(r["spearman"]) == pytest.approx(rho)
        assert _f(r["spearman_brown"]) == pytest.approx(2 * rho / (1 + rho))


def test_rerun_resumes_to_the_same_rows(compare, quick, monkeypatch):
    out, rows = quick
    monkeypatch.setattr(compare, "run_score", lambda a: pytest.fail(f"trained again: {a}"))
    compare.main(["--quick", "--datasets", "digits", "--out", str(out), "--quiet"])
    with open(out / "results.csv", newline="") as fh:
        assert list(csv.DictReader(fh)) == rows
