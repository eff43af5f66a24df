"""``sensprune reproduce``: six verdict lines with plots and CSVs (tiny scale), meta.json, bad input."""

import json
import re

import numpy as np
import pytest

from sensprune.data.builtin import fashion_mnist_available, fashion_mnist_dir
from sensprune.errors import ValidationError
from sensprune.reproduce import EXPERIMENTS, VERDICT_WORDS, parse_only
from sensprune.reproduce.common import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, spearman, three_way
from cli_helpers import assert_one_line_error as _one_line_error, run_cli as _run

# The experiments run on Fashion-MNIST (14x14), a Debian package that may be absent: those tests skip.
needs_fashion = pytest.mark.skipif(not fashion_mnist_available(),
                                   reason=f"reproduce needs Fashion-MNIST, absent from {fashion_mnist_dir()} "
                                          "(apt-get install dataset-fashion-mnist)")
LINE = re.compile(r"^([1-6])\. .+: \*\*(reproduced|not reproduced|inconclusive)\*\* — .*\d")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "paper"
    r = _run(["reproduce", "--tiny", "--quiet", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out, r


def test_help():
    r = _run(["reproduce", "--help"])
    assert r.exit_code == 0 and "Example" in r.output and "--quick" in r.output
    assert "--tiny" not in r.output  # test-only knob stays hidden


@needs_fashion
def test_six_verdict_lines_with_plots_and_csvs(tiny_run):
    out, r = tiny_run
    lines = [ln for ln in (out / "verdicts.md").read_text().splitlines() if LINE.match(ln)]
    assert [int(LINE.match(ln).group(1)) for ln in lines] == [1, 2, 3, 4, 5, 6]
    assert all(any(w in ln for w in VERDICT_WORDS) for ln in lines)
    assert [ln for ln in r.stdout.splitlines() if ln.strip()] == lines  # stdout = the verdict lines
    for n, name in EXPERIMENTS.items():
        pngs, csvs = list(out.glob(f"exp{n}_*.png")), list(out.glob(f"exp{n}_*.csv"))
        assert len(pngs) == 1 and pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pngs[0].stat().st_size > 1000
        assert len(csvs) == 1 and len(csvs[0].read_text().splitlines()) >= 2, name


@needs_fashion
def test_meta_records_config_seeds_machine_and_times(tiny_run):
    out, _ = tiny_run
    meta = json.loads((out / "meta.json").read_text())
    assert meta["config"]["scale"]["name"] == "tiny" and meta["config"]["seed"] == 0
    assert meta["version"] and meta["machine"]["cpu_count"] >= 1 and meta["wall_time_s"] > 0
    assert meta["command"] == f"sensprune reproduce --out {out}"
    assert sorted(meta["experiments"]) == [str(n) for n in EXPERIMENTS]
    for e in meta["experiments"].values():
        assert e["verdict"] in VERDICT_WORDS and e["wall_time_s"] >= 0 and e["line"].startswith(tuple("123456"))
        assert all((out / f).exists() for f in e["files"])
    assert meta["experiments"]["1"]["config"]["seeds"] == [0, 1, 2]


@needs_fashion
def test_verdict_follows_the_numbers(tiny_run):
    """The verdict word is recomputed here from the CSV for experiment 3 (a direct comparison)."""
    out, _ = tiny_run
    meta = json.loads((out / "meta.json").read_text())
    off = meta["experiments"]["3"]["numbers"]["off_diagonal_fraction"]
    want = REPRODUCED if off["real"][0] > off["randX"][0] else NOT_REPRODUCED
    assert meta["experiments"]["3"]["verdict"] == want
    rows = [ln.split(",") for ln in (out / "exp3_per_class.csv").read_text().splitlines()[1:]]
    g = {k: np.zeros((10, 10)) for k in ("real", "randX")}
    for name, i, j, v in rows:
        g[name][int(i), int(j)] = float(v)
    assert np.isclose(1 - np.trace(g["real"]) / g["real"].sum(), off["real"][0])


@needs_fashion
def test_only_and_force(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")  # a user's folder: --force refuses to replace it
    _one_line_error(_run(["reproduce", "--tiny", "--only", "1", "--force", "--out", str(out)]), "not a sensprune")
    assert [p.name for p in out.iterdir()] == ["keep.txt"]
    out = tmp_path / "r"
    assert _run(["reproduce", "--tiny", "--quiet", "--only", "2", "--out", str(out)]).exit_code == 0
    (out / "README.md").write_text("notes")  # kept across --force; the earlier run's files are replaced
    r = _run(["reproduce", "--tiny", "--quiet", "--only", "3,1", "--force", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert [ln[:2] for ln in r.stdout.splitlines()] == ["1.", "3."]
    assert (out / "README.md").read_text() == "notes" and not list(out.glob("exp2_*"))
    assert sorted(json.loads((out / "meta.json").read_text())["experiments"]) == ["1", "3"]


@pytest.mark.parametrize("only", ["7", "0", "junk", "1,x", "1;2", "-1", "1.5"])
def test_bad_only_is_one_line_and_writes_nothing(only, tmp_path):
    out = tmp_path / "o"
    _one_line_error(_run(["reproduce", "--tiny", "--only", only, "--out", str(out)]), "--only")
    assert not out.exists()


def test_existing_out_without_force(tmp_path):
    (tmp_path / "o").mkdir()
    (tmp_path / "o" / "keep.txt").write_text("mine")
    _one_line_error(_run(["reproduce", "--tiny", "--out", str(tmp_path / "o")]), "--force")
    assert [p.name for p in (tmp_path / "o").iterdir()] == ["keep.txt"]


def test_bad_seed_is_one_line(tmp_path):
    _one_line_error(_run(["reproduce", "--tiny", "--seed", "x", "--out", str(tmp_path / "o")]), "seed")
    assert not (tmp_path / "o").exists()


def test_parse_only():
    assert parse_only(None) == [1, 2, 3, 4, 5, 6]
    assert parse_only(" 3, 1,3") == [1, 3]
    with pytest.raises(ValidationError, match="from 1 to 6"):
        parse_only("7")


def test_three_way_and_spearman():
    assert three_way(True, False) == REPRODUCED and three_way(False, True) == NOT_REPRODUCED
    assert three_way(False, False) == INCONCLUSIVE
    assert spearman([1, 2, 3, 4], [10, 20, 15, 40]) == pytest.approx(0.8)
    assert spearman([1, 2, 3], [0, 1, 1]) == pytest.approx(np.corrcoef([0, 1, 2], [0, 1.5, 1.5])[0, 1])
    assert np.isnan(spearman([1, 2, 3], [5, 5, 5]))


@pytest.mark.slow
@needs_fashion
def test_quick_run_finishes_with_six_verdicts(tmp_path):
    r = _run(["reproduce", "--quick", "--quiet", "--out", str(tmp_path / "q")])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "q" / "meta.json").read_text())
    assert len(meta["experiments"]) == 6 and meta["wall_time_s"] < 600
