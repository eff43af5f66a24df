"""The fair answer's machinery: equal-steps budgets, equivalence calls, a warmup that trains to fit."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from sensprune.benchmark import plan as BP
from sensprune.benchmark import stats as S
from sensprune.benchmark import unit as BU
from sensprune.benchmark.config import config_from_dict
from sensprune.cli import cli

TINY = {
    "grid": {"datasets": ["digits"], "corruptions": ["randY:0.2"], "measures": ["el2n", "random"],
             "rules": ["drop-high", "reweight:softmax"], "fractions": [0.3], "seeds": [0]},
    "data": {"subsample": 200},
    "train": {"epochs": 2, "batch_size": 32},
    "score": {"widths": [32], "epochs": 2},
    "bench": {"min_per_class": 2, "max_epochs": 60, "fit_threshold": 0.9},
}


def tiny(**bench) -> "object":
    raw = {k: dict(v) for k, v in TINY.items()}
    raw["bench"].update(bench)
    return config_from_dict(raw)


# -- the training loop's step budget ---------------------------------------------------------------------

def test_max_steps_stops_part_way_through_an_epoch():
    from sensprune.config import TrainConfig
    from sensprune.data import load_dataset
    from sensprune.train.loop import train
    from sensprune.train.models import build_model
    from sensprune.train.sources import ArraySource

    data = load_dataset("digits", subsample=100)
    src = ArraySource(data.x_train, data.y_train, "cpu")
    cfg = TrainConfig(epochs=5, batch_size=32, schedule="constant")
    res = train(lambda: build_model("mlp", data.num_classes, data.input_shape, widths=(8,)), src, cfg,
                progress=False, max_steps=10)  # 4 batches per epoch: 2 whole epochs and 2 batches of a third
    assert [h["steps"] for h in res.history] == [4, 8, 10]
    full = train(lambda: build_model("mlp", data.num_classes, data.input_shape, widths=(8,)), src, cfg,
                 progress=False)
    assert [h["steps"] for h in full.history] == [4, 8, 12, 16, 20]


# -- budgets ---------------------------------------------------------------------------------------------

def _rows(cfg):
    rows, det = BU.run_unit(cfg, BP.plan_units(cfg)[0])
    assert all(r["status"] == "ok" for r in rows), [r["message"] for r in rows]
    return {(r["measure"], r["rule"]): r for r in rows}, det


def test_fit_steps_gives_every_arm_the_full_runs_steps():
    by, _ = _rows(tiny(budget="fit-steps"))
    full = by[("full", "none")]
    assert full["fit_reached"] == 1 and full["budget"] == "fit-steps"
    for key, r in by.items():
        assert r["steps"] == full["steps"], key  # exactly: the arms stop part-way through an epoch if need be
    pruned = by[("el2n", "drop-high")]
    assert pruned["n_train"] < full["n_train"] and pruned["epochs"] > full["epochs"]  # extra epochs on fewer examples
    assert by[("random", "random")]["epochs"] == pruned["epochs"]


def test_under_fit_pruned_arms_fit_and_reweighting_arms_get_the_full_runs_steps():
    by, _ = _rows(tiny(budget="fit"))
    full = by[("full", "none")]
    assert by[("el2n", "reweight:softmax")]["steps"] == full["steps"]
    assert by[("random", "random")]["fit_reached"] == 1  # trained to its own fit, not to full's steps
    assert by[("random", "random")]["steps"] != full["steps"]


def test_fit_steps_arm_without_its_full_run_fails_with_one_line():
    from sensprune.errors import SensPruneError

    cfg = tiny(budget="fit-steps")
    mask = np.ones(200, bool)
    mask[:10] = False
    with pytest.raises(SensPruneError, match=r"^budget 'fit-steps' trains this run for the SGD steps of its seed's "
                                             r"`full` run, and there is none \(it failed or was not run\); fix the "
                                             r"full run first\.$"):
        BU.fixed_steps(cfg, mask, None, None)
    assert BU.fixed_steps(cfg, np.ones(200, bool), None, None) is None  # the full run itself trains to fit
    assert BU.fixed_steps(tiny(budget="fit"), mask, None, None) is None  # a pruned arm under fit: to its own fit


# -- the warmup that trains to fit -----------------------------------------------------------------------

def test_warmup_to_fit_reaches_the_threshold_and_records_it():
    raw = {k: dict(v) for k, v in TINY.items()}
    raw["score"]["budget"] = "fit"
    raw["bench"].update(budget="epochs")
    cfg = config_from_dict(raw)
    by, det = _rows(cfg)
    r = by[("full", "none")]
    assert r["warmup_budget"] == "fit" and r["warmup_epochs"] > 2  # more than the 2 epochs of [score] epochs
    assert r["warmup_train_acc"] >= 0.9  # on the noisy labels, eval mode: the run memorized
    assert {d["warmup_train_acc"] for d in det} == {r["warmup_train_acc"]}
    assert "warmup to fit (0.9 training accuracy" in BP.describe_training(cfg)


# -- equivalence and the three-way call ------------------------------------------------------------------

def test_equivalence_bound_and_tost_against_their_formulas():
    rng = np.random.default_rng(0)
    a, b = rng.normal(0.9, 0.01, 8), rng.normal(0.9, 0.01, 8)
    d = a - b
    upper, p = S.equivalence(a, b, 0.01)
    se = d.std(ddof=1) / math.sqrt(len(d))
    assert upper == pytest.approx(d.mean() + S.t_quantile(0.95, len(d) - 1) * se)
    from scipy.stats import t

    p_low = 1 - t.cdf((d.mean() + 0.01) / se, len(d) - 1)
    p_high = t.cdf((d.mean() - 0.01) / se, len(d) - 1)
    assert p == pytest.approx(max(p_low, p_high))
    assert S.equivalence([0.9, 0.9], [0.9, 0.9], 0.01) == (0.0, 0.0)  # identical runs: equivalent at any margin
    assert S.equivalence([0.95, 0.95], [0.9, 0.9], 0.01) == (pytest.approx(0.05), 1.0)
    assert all(math.isnan(v) for v in S.equivalence([0.9], [0.8], 0.01))


def _summary_rows(diffs, measure="m", rule="drop-high"):
    rows = []
    for s, dlt in enumerate(diffs):
        base = {"dataset": "d", "corruption": "none", "seed": s, "fraction": 0.2, "status": "ok", "n_train": 10,
                "budget": "fit-steps", "steps": 100, "epochs": 5, "fit_reached": 1}
        rows += [{**base, "measure": "full", "rule": "none", "fraction": 0.0, "test_acc": 0.9},
                 {**base, "measure": "random", "rule": "random", "test_acc": 0.9},
                 {**base, "measure": measure, "rule": rule, "test_acc": 0.9 + dlt}]
    return rows


@pytest.mark.parametrize("diffs, expected", [
    ([0.05, 0.051, 0.049, 0.052, 0.05], "better"),
    ([-0.05, -0.051, -0.049, -0.052, -0.05], "worse"),
    ([0.001, -0.001, 0.0005, 0.0, -0.0005], "equivalent"),
    ([0.04, -0.03, 0.05, -0.04, 0.01], "inconclusive"),
])
def test_call_of_a_cell(diffs, expected):
    out = {r["measure"]: r for r in S.summarize(_summary_rows(diffs), margin=0.01)}
    m = out["m"]
    assert m["call"] == expected and m["budget"] == "fit-steps" and m["margin"] == 0.01
    assert m["steps_mean"] == 100 and m["fit_reached_frac"] == 1
    assert out["full"]["call"] == "" and out["random"]["call"] == ""  # baselines are not tested
    assert m["upper_95"] >= m["d_random_mean"]


def test_margin_decides_equivalence():
    diffs = [0.004, 0.006, 0.005, 0.005, 0.004]  # a real 0.5-point difference, tight
    wide = {r["measure"]: r for r in S.summarize(_summary_rows(diffs), margin=0.02)}["m"]
    assert wide["call"] == "better"  # significance first: a real difference is not called equivalent
    noisy = [0.004, -0.002, 0.006, 0.0, 0.003]
    assert {r["measure"]: r for r in S.summarize(_summary_rows(noisy), margin=0.02)}["m"]["call"] == "equivalent"
    assert {r["measure"]: r for r in S.summarize(_summary_rows(noisy), margin=0.001)}["m"]["call"] == "inconclusive"


# -- bad input: one line, nothing trained ----------------------------------------------------------------

TOML = """
[grid]
datasets = ["digits"]
measures = ["el2n", "random"]
[data]
subsample = 200
[train]
epochs = 1
"""


@pytest.mark.parametrize("extra, message", [
    ("[bench]\nmargin = -1\n", "Error: [bench] margin must be an accuracy difference in (0, 1) (0.01 = 1 point); "
                               "got -1."),
    ('[bench]\nmargin = "x"\n', "Error: [bench] margin must be an accuracy difference in (0, 1) (0.01 = 1 point); "
                                "got 'x'."),
    ('[score]\nbudget = "long"\n', "Error: [score] budget must be one of epochs, fit; got 'long'."),
    ('[bench]\nbudget = "fit_steps"\n', "Error: [bench] budget must be one of epochs, steps, fit, fit-steps; "
                                        "got 'fit_steps'."),
])
def test_bad_budget_and_margin_are_one_line(tmp_path, monkeypatch, extra, message):
    def no_training(*a, **k):
        raise AssertionError("trained before refusing")

    monkeypatch.setattr("sensprune.train.loop.train", no_training)
    (tmp_path / "g.toml").write_text(TOML + extra)
    res = CliRunner().invoke(cli, ["bench", "--config", str(tmp_path / "g.toml"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and res.output.strip().splitlines() == [message]
    assert not (tmp_path / "o").exists()


def test_bad_margin_in_python_is_refused():
    from sensprune.errors import ValidationError

    with pytest.raises(ValidationError, match=r"\[bench\] margin must be"):
        tiny(margin=1.5)
    assert replace(tiny(), bench=replace(tiny().bench)).bench.margin == 0.01


def test_a_grid_takes_any_truncated_proxy_by_name():
    cfg = tiny()
    raw = {k: dict(v) for k, v in TINY.items()}
    raw["grid"]["measures"] = ["loss_sensitivity_h3", "random"]
    assert config_from_dict(raw).score_measures == ("loss_sensitivity_h3",)
    assert BP.measure_meta(config_from_dict(raw))["loss_sensitivity_h3"]["estimator"] == \
        "PROXY: truncated to the last 3 update(s)"
    raw["grid"]["measures"] = ["loss_sensitivity_hx"]
    with pytest.raises(Exception, match=r"Unknown measure\(s\) in \[grid\] measures: 'loss_sensitivity_hx'"):
        config_from_dict(raw)
    assert cfg.bench.budget == "epochs"


@pytest.mark.parametrize("seeds, message", [
    (1000000000, "Error: g.toml: [grid] seeds must be in 1..1000 or a list of at most 1000 seeds; got 1000000000."),
    (0, "Error: g.toml: [grid] seeds must be in 1..1000 or a list of at most 1000 seeds; got 0."),
    (list(range(1001)), "Error: [grid] seeds must be in 1..1000 or a list of at most 1000 seeds; got a list of 1001."),
])
def test_grid_seeds_are_bounded_before_anything_is_built(tmp_path, seeds, message):
    (tmp_path / "g.toml").write_text(TOML.replace("[data]", f"seeds = {seeds}\n[data]"))
    res = CliRunner().invoke(cli, ["bench", "--config", str(tmp_path / "g.toml"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1 and res.output.strip().splitlines() == [message]
    assert not (tmp_path / "o").exists()


# -- the default warmup length follows the committed curve -----------------------------------------------

def test_default_warmup_follows_the_curve():
    from pathlib import Path

    from sensprune.config import DEFAULT_EPOCHS, DEFAULT_EPOCHS_SENSITIVITY, default_epochs

    assert default_epochs(["aum", "el2n"]) == DEFAULT_EPOCHS == 40
    assert default_epochs(["aum", "loss_sensitivity"]) == DEFAULT_EPOCHS_SENSITIVITY == 80
    assert default_epochs(["loss_sensitivity_h1"]) == 40
    # the curve the defaults cite: loss_sensitivity levels off at 80 epochs, the others by 40
    summary = Path(__file__).resolve().parents[1] / "benchmarks" / "warmup_length" / "summary.csv"
    rows = [r.split(",") for r in summary.read_text().splitlines()[1:]]
    auroc = {(d, n, L, m): float(a) for d, n, L, m, _, a, *_ in rows}
    for d in ("digits", "mnist1d"):
        for noise in ("randY:0.2", "randY-asym:0.2"):
            ls = [auroc[(d, noise, L, "loss_sensitivity")] for L in ("20", "40", "80")]
            assert ls[0] < ls[1] < ls[2], (d, noise)  # still rising until 80
            for m in ("aum", "loss", "confidence"):
                assert auroc[(d, noise, "80", m)] - auroc[(d, noise, "40", m)] < 0.01, (d, noise, m)  # level by 40
    # Fashion-MNIST (MLP 512-512, Adam): loss_sensitivity gains until 40 and keeps its level at 80; the others
    # peak by 20 and lose ground once the run fits the noise, so 40 (not 80) for them
    for noise in ("randY:0.2", "randY-asym:0.2"):
        ls = {L: auroc[("fashion-mnist", noise, L, "loss_sensitivity")] for L in ("20", "40", "80")}
        assert ls["20"] < ls["40"] and ls["80"] > ls["40"] - 0.01, noise
        for m in ("aum", "loss", "confidence"):
            at = {L: auroc[("fashion-mnist", noise, L, m)] for L in ("20", "40", "80")}
            assert at["80"] < at["40"] <= at["20"] + 0.01, (noise, m)


def test_cli_and_facade_resolve_the_default_warmup(tmp_path):
    import json

    import sensprune as sp

    r = CliRunner().invoke(cli, ["score", "--dataset", "digits", "--subsample", "60", "--measures", "loss",
                                 "--widths", "4", "--batch-size", "64", "--quiet", "--out", str(tmp_path / "s")])
    assert r.exit_code == 0, r.output
    assert json.loads((tmp_path / "s" / "meta.json").read_text())["config"]["train"]["epochs"] == 40
    x = np.random.default_rng(0).normal(size=(40, 3)).astype(np.float32)
    table = sp.score((x, np.arange(40) % 2), measures=["loss"], widths=(4,), batch_size=64)
    assert table.meta["config"]["train"]["epochs"] == 40


def test_one_message_form_for_bad_values():
    """Every message for a bad value reads "X must be ...; got Y." (no "Got Y instead.", no "..., got Y"), in the
    code and in the messages the tests pin."""
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    old = re.compile(r"Got [^\n]{0,80} instead|must be [^\n\"]{0,120}\\?\. Got\b|, got [{'\d]")
    hits = [f"{p.relative_to(root)}:{i}" for base in ("sensprune", "tests") for p in sorted((root / base).rglob("*.py"))
            for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if old.search(line)
            and p.name != "test_bench_fair.py"]
    assert not hits, hits
