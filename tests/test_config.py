"""Tests of sensprune.benchmark.config: the bench grid TOML, unknown keys, validation before training."""

from __future__ import annotations

import pytest

from sensprune.benchmark.config import (BenchConfig, GridSpec, config_from_dict, config_from_json, load_config,
                                        parse_corruption)
from sensprune.errors import ValidationError

GOOD = """
[grid]
datasets = ["digits"]
corruptions = ["none", "randY:0.2", "randY-asym:0.1", "randX:0.3"]
measures = ["el2n", "aum", "random", "cv_confidence"]
rules = ["drop-high", "drop-low"]
fractions = [0.1, 0.5]
seeds = 3

[data]
subsample = 300

[train]
epochs = 4
lr = 0.1

[score]
epochs = 2
widths = [32]
"""


def write(tmp_path, text, name="grid.toml"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_load_good_config(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert cfg.grid.seeds == (0, 1, 2)
    assert cfg.grid.fractions == (0.1, 0.5)
    assert cfg.score.widths == (32,)
    assert cfg.train.epochs == 4 and cfg.train.lr == 0.1
    assert cfg.data.subsample == 300
    assert cfg.score_measures == ("el2n", "aum")


def test_roundtrip_json(tmp_path):
    cfg = load_config(write(tmp_path, GOOD))
    assert config_from_json(cfg.to_dict()) == cfg


def test_seed_list_kept(tmp_path):
    cfg = load_config(write(tmp_path, GOOD.replace("seeds = 3", "seeds = [4, 7]")))
    assert cfg.grid.seeds == (4, 7)


def test_unknown_key_named(tmp_path):
    p = write(tmp_path, GOOD.replace("fractions =", "fractons ="))
    with pytest.raises(ValidationError, match=r"Unknown key\(s\) in grid.toml \[grid\]: 'fractons'. Known: datasets"):
        load_config(p)


def test_unknown_section_named(tmp_path):
    with pytest.raises(ValidationError, match=r"Unknown section\(s\) in grid.toml: 'benchh'. Known: grid"):
        load_config(write(tmp_path, GOOD + "\n[benchh]\njobs = 2\n"))


def test_train_seed_rejected_with_hint(tmp_path):
    with pytest.raises(ValidationError, match=r"'seed' \(seeds come from \[grid\] seeds\)"):
        load_config(write(tmp_path, GOOD.replace("lr = 0.1", "lr = 0.1\nseed = 3")))


@pytest.mark.parametrize("edit, match", [
    (("\"aum\"", "\"aumm\""), r"Unknown measure\(s\) in \[grid\] measures: 'aumm'"),
    (("\"drop-low\"]", "\"drop-lo\"]"), r"Unknown rule\(s\) in \[grid\] rules: 'drop-lo'"),
    (("0.5]", "1.0]"), r"fractions must be floats in \(0, 1\)"),
    (("\"randX:0.3\"", "\"randX:1.5\""), r"`\[grid\] corruptions` randX needs a level Q in \(0, 1\], like randX:0.2; "
                                         r"got 'randX:1.5'"),
    (("\"randX:0.3\"", "\"unique\""), r"`\[grid\] corruptions` must be one of none, randY:Q, randY-asym:Q, randX:Q "
                                      r"\(Q in \(0, 1\]\); got 'unique'"),
    (("\"randX:0.3\"", "\"randY\""), r"`\[grid\] corruptions` randY needs a level Q in \(0, 1\]"),
    (("seeds = 3", "seeds = []"), r"\[grid\] seeds must not be empty"),
    (("epochs = 2", "epochs = 2\nel2n_epoch = 9"), r"el2n_epoch must be in 1..2"),
    (("lr = 0.1", "lr = -1.0"), r"The 'lr' parameter must be a positive float"),
    (("subsample = 300", "subsample = 0"), r"subsample must be a positive integer"),
    (("fractions = [0.1, 0.5]", "fractions = [0.1, 0.1]"), r"fractions has duplicates"),
])
def test_bad_values(tmp_path, edit, match):
    with pytest.raises(ValidationError, match=match):
        load_config(write(tmp_path, GOOD.replace(*edit)))


def test_invalid_toml(tmp_path):
    with pytest.raises(ValidationError, match="is not valid TOML"):
        load_config(write(tmp_path, "[grid\n"))


def test_missing_file(tmp_path):
    with pytest.raises(ValidationError, match="not found"):
        load_config(tmp_path / "nope.toml")


def test_overrides():
    cfg = config_from_dict({}).with_overrides(seeds=2, epochs=3, device="cpu")
    assert cfg.grid.seeds == (0, 1) and cfg.train.epochs == 3


def test_parse_corruption():
    assert parse_corruption("none") == ("none", 0.0)
    assert parse_corruption("randY-asym:0.25") == ("randY-asym", 0.25)
    with pytest.raises(ValidationError, match="takes no level"):
        parse_corruption("none:0.1")


def test_direct_construction_validates():
    with pytest.raises(ValidationError, match="Unknown measure"):
        BenchConfig(grid=GridSpec(measures=("nope",)))


def test_budget_checked(tmp_path):
    with pytest.raises(ValidationError,
                       match=r"\[bench\] budget must be one of epochs, steps, fit, fit-steps; got 'iters'"):
        load_config(write(tmp_path, GOOD + '\n[bench]\nbudget = "iters"\n'))


def test_fit_budget_options(tmp_path):
    cfg = load_config(write(tmp_path, GOOD + '\n[bench]\nbudget = "fit"\n'))
    assert (cfg.bench.budget, cfg.bench.fit_threshold, cfg.bench.max_epochs) == ("fit", 0.99, 100)
    cfg = load_config(write(tmp_path, GOOD + '\n[bench]\nbudget = "fit"\nfit_threshold = 1\nmax_epochs = 7\n'))
    assert (cfg.bench.fit_threshold, cfg.bench.max_epochs) == (1, 7)


@pytest.mark.parametrize("value", ["0", "0.0", "1.01", "-0.5", "nan", "true", '"0.9"'])
def test_fit_threshold_outside_unit_interval(tmp_path, value):
    with pytest.raises(ValidationError, match=r"\[bench\] fit_threshold must be a training accuracy in \(0, 1\]"):
        load_config(write(tmp_path, GOOD + f'\n[bench]\nbudget = "fit"\nfit_threshold = {value}\n'))


@pytest.mark.parametrize("edit, match", [
    ("max_epochs = 0", r"\[bench\] max_epochs must be an integer >= 1; got 0"),
    ("temperature = 0.0", r"\[bench\] temperature must be a float > 0; got 0.0"),
    ('fit_schedule = "linear"', r"\[bench\] fit_schedule must be one of constant, cosine, step; got 'linear'"),
])
def test_bad_bench_values(tmp_path, edit, match):
    with pytest.raises(ValidationError, match=match):
        load_config(write(tmp_path, GOOD + f"\n[bench]\n{edit}\n"))


def test_reweighting_arms_accepted(tmp_path):
    rules = '["drop-high", "reweight:inverse-rank", "reweight:softmax", "reweight:clip"]'
    cfg = load_config(write(tmp_path, GOOD.replace('["drop-high", "drop-low"]', rules)))
    assert cfg.grid.rules[1:] == ("reweight:inverse-rank", "reweight:softmax", "reweight:clip")


def test_unknown_reweighting_arm(tmp_path):
    with pytest.raises(ValidationError, match=r"Unknown reweighting arm\(s\) in \[grid\] rules: 'reweight:sofmax'. "
                                              r"Known: reweight:inverse-rank, reweight:softmax, reweight:clip."):
        load_config(write(tmp_path, GOOD.replace('"drop-low"]', '"reweight:sofmax"]')))


def test_every_noise_kind_accepted(tmp_path):
    text = GOOD.replace('["none", "randY:0.2", "randY-asym:0.1", "randX:0.3"]',
                        '["none", "randY:0.2", "randY:0.4", "randY-asym:0.2", "randY-asym:0.4", "randX:0.2"]')
    assert len(load_config(write(tmp_path, text)).grid.corruptions) == 6


def test_any_registered_measure_is_an_arm(tmp_path, monkeypatch):
    """An arm is any measure the warmup can score (the registry), e.g. one renamed or added later."""
    from sensprune import measures as M

    spec = M.MeasureSpec("loss_sensitivity_h1", "loss_sensitivity", "higher = more sensitive", "proxy")
    monkeypatch.setitem(M.MEASURES, "loss_sensitivity_h1", spec)
    cfg = load_config(write(tmp_path, GOOD.replace('"aum",', '"aum", "loss_sensitivity_h1", "confidence",')))
    assert cfg.score_measures == ("el2n", "aum", "loss_sensitivity_h1", "confidence")
