"""Typed measure and data options: a misspelled key is refused in Python, TOML and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from cli_helpers import assert_one_line_error, run_cli

from sensprune.benchmark.config import config_from_dict, load_config
from sensprune.config import DataOptions, MeasureOptions, measure_options
from sensprune.errors import ValidationError

GRID = '[grid]\nmeasures = ["el2n"]\n'


def test_defaults_and_round_trip():
    o = MeasureOptions()
    assert o.horizon is None and o.probe == "fixed" and o.probe_times is None and o.grand_epochs is None
    d = o.to_dict()
    assert MeasureOptions.from_value(d) == o
    assert json.loads(json.dumps(d)) == d
    assert MeasureOptions(horizon="all", probe_times="all").to_dict()["probe_times"] == "all"
    with pytest.raises(ValidationError, match="give only one"):
        MeasureOptions(horizon=1, probe_times=8)
    assert MeasureOptions(probe_times=8).probe_times == 8
    assert MeasureOptions(horizon="3").horizon == 3
    assert MeasureOptions(grand_epochs=[2, 3]).grand_epochs == (2, 3)
    assert measure_options({"per_class": True}).get("per_class") is True
    assert measure_options(None).get("grand_epochs", [5]) == [5]


@pytest.mark.parametrize("kw, match", [
    ({"horizon": 0}, "--horizon"), ({"horizon": "some"}, "--horizon"), ({"probe": "random"}, "--probe"),
    ({"probe_times": 0}, "--probe-times"), ({"probe_size": 0}, "probe_size"), ({"csr": "yes"}, "csr"),
    ({"grand_epochs": [0]}, "grand_epochs"), ({"probe_every": 0}, "probe_every"), ({"step_every": 1.5}, "step_every"),
])
def test_bad_values(kw, match):
    with pytest.raises(ValidationError, match=match):
        MeasureOptions(**kw)


def test_unknown_key_python_lists_valid_keys():
    from sensprune.scoring.stage import ScoreConfig

    with pytest.raises(ValidationError, match=r"'horizn'.*Valid keys: horizon, probe_size, probe, probe_times"):
        ScoreConfig(measure_options={"horizn": 4})
    with pytest.raises(ValidationError, match=r"'subsampel'.*Valid keys: data_root, subsample"):
        ScoreConfig(data_options={"subsampel": 4})
    with pytest.raises(ValidationError, match="horizn"):
        MeasureOptions().get("horizn")
    with pytest.raises(TypeError):  # the dataclass itself refuses unknown keyword arguments
        DataOptions(subsampel=3)


def test_score_config_stores_typed_options():
    from sensprune.scoring.stage import ScoreConfig

    c = ScoreConfig(measure_options={"horizon": "all"}, data_options={"subsample": 50})
    assert isinstance(c.measure_options, MeasureOptions) and c.measure_options.horizon == "all"
    assert isinstance(c.data_options, DataOptions) and c.data_options.subsample == 50
    d = c.to_dict()
    assert d["measure_options"]["horizon"] == "all" and d["data_options"]["subsample"] == 50
    assert ScoreConfig(measure_options=c.measure_options) == ScoreConfig(measure_options=d["measure_options"])


def test_unknown_key_toml(tmp_path):
    p = tmp_path / "grid.toml"
    p.write_text(GRID + "[score]\nmeasure_options = {horizn = 4}\n")
    with pytest.raises(ValidationError, match=r"Unknown \[score\] measure_options key\(s\): 'horizn'. Valid keys:"):
        load_config(p)
    p.write_text(GRID + "[data]\nsubsampel = 4\n")
    with pytest.raises(ValidationError, match=r"'subsampel'. Known: subsample"):
        load_config(p)
    with pytest.raises(ValidationError, match="horizon"):
        config_from_dict({"score": {"measure_options": {"horizon": 0}}})
    assert config_from_dict({"score": {"measure_options": {"horizon": 2}}}).score.measure_options == {"horizon": 2}


def test_unknown_key_cli(tmp_path):
    p = tmp_path / "grid.toml"
    p.write_text(GRID + "[score]\nmeasure_options = {horizn = 4}\n")
    assert_one_line_error(run_cli(["bench", "--config", p, "--out", tmp_path / "o"]), "horizn")
    assert not (tmp_path / "o").exists()
    res = run_cli(["score", "--horizn", "4", "--out", tmp_path / "s"])
    assert_one_line_error(res, "No such option '--horizn'")
    res = run_cli(["score", "--subsampel", "4", "--out", tmp_path / "s"])
    assert_one_line_error(res, "No such option '--subsampel'")
    assert not (tmp_path / "s").exists()


def test_options_module_is_torch_free():
    code = "import sys, sensprune.config; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
