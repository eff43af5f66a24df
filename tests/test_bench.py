"""Tests of the bench stage: planning, statistics, detection, resume/jobs/shards, failures, CLI."""

from __future__ import annotations

import csv
import math
import re
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from sensprune import bench as B
from sensprune import stats as S
from sensprune.cli import cli
from sensprune.config import config_from_dict
from sensprune.errors import ValidationError

TINY = {
    "grid": {"datasets": ["digits"], "corruptions": ["none", "randY:0.2"], "measures": ["el2n", "random"],
             "rules": ["drop-high", "drop-low"], "fractions": [0.2], "seeds": [0, 1]},
    "data": {"subsample": 200},
    "train": {"epochs": 2, "batch_size": 64},
    "score": {"widths": [16], "epochs": 2},
    "bench": {"min_per_class": 2},
}
TOML = """
[grid]
datasets = ["digits"]
corruptions = ["none", "randY:0.2"]
measures = ["el2n", "random"]
rules = ["drop-high", "drop-low"]
fractions = [0.2]
seeds = [0, 1]
[data]
subsample = 200
[train]
epochs = 2
batch_size = 64
[score]
widths = [16]
epochs = 2
[bench]
min_per_class = 2
"""


def tiny(**grid):
    raw = {k: dict(v) for k, v in TINY.items()}
    raw["grid"].update(grid)
    return config_from_dict(raw)


def read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def strip_time(rows):
    return [{k: v for k, v in r.items() if k != "wall_time_s"} for r in rows]


@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "g"
    B.run_grid(tiny(), out, progress=False)
    return out


# -- planning --------------------------------------------------------------------------------------------

def test_plan_units_order_and_keys():
    cfg = tiny(corruptions=["none", "randY:0.2"], seeds=[0, 1])
    units = B.plan_units(cfg)
    assert [(u.corruption, u.seed) for u in units] == [("none", 0), ("none", 1), ("randY:0.2", 0), ("randY:0.2", 1)]
    assert units[2].key == "digits__randY_0.2__s0"
    assert len({u.key for u in units}) == len(units)


def test_plan_retrains_baselines_and_random_once():
    cfg = tiny(measures=["el2n", "aum", "random"], fractions=[0.1, 0.3])
    clean = B.plan_retrains(cfg, B.Unit("digits", "none", 0))
    noisy = B.plan_retrains(cfg, B.Unit("digits", "randY:0.2", 0))
    assert clean[0] == ("full", "none", 0.0) and ("oracle", "oracle", 0.2) not in clean
    assert noisy[1] == ("oracle", "oracle", 0.2)
    assert sum(m == "random" for m, _, _ in clean) == 2  # once per fraction, not per rule
    assert len(clean) == 1 + 2 * (1 + 2 * 2)


# -- statistics ------------------------------------------------------------------------------------------

def test_mean_ci_matches_t_interval():
    scipy_stats = pytest.importorskip("scipy.stats")
    v = [0.1, 0.3, 0.2, 0.25]
    m, sd, n, h = S.mean_ci(v)
    assert n == 4 and math.isclose(m, np.mean(v)) and math.isclose(sd, np.std(v, ddof=1))
    assert math.isclose(h, scipy_stats.t.ppf(0.975, 3) * sd / 2)
    m1, sd1, n1, h1 = S.mean_ci([1.0])
    assert m1 == 1.0 and n1 == 1 and math.isnan(sd1) and math.isnan(h1)
    assert S.mean_ci([])[2] == 0


def _row(measure, rule, frac, seed, acc, status="ok"):
    return {"dataset": "d", "corruption": "none", "seed": seed, "measure": measure, "rule": rule, "fraction": frac,
            "status": status, "n_train": 10, "test_acc": acc, "test_loss": 1.0, "train_acc": 1.0, "gen_gap": 0.0,
            "n_corrupted_kept": 0, "message": "" if status == "ok" else "boom"}


def test_summarize_paired_differences():
    rows = []
    for s, base in enumerate([0.50, 0.70, 0.60]):  # large seed-to-seed spread, constant paired effect
        rows += [_row("full", "none", 0.0, s, base + 0.01), _row("random", "random", 0.2, s, base),
                 _row("m", "drop-high", 0.2, s, base + 0.05 + 0.001 * s)]
    rows.append(_row("m", "drop-low", 0.2, 0, float("nan"), status="failed"))
    summ = {r["key"]: r for r in S.summarize(rows)}
    hi = summ["d|none|m|drop-high|0.2"]
    assert hi["n"] == 3 and hi["d_random_n"] == 3
    assert hi["d_random_mean"] == pytest.approx(0.051)
    assert hi["d_random_sig"] == 1  # paired: significant although the unpaired spread is huge
    assert hi["d_full_mean"] == pytest.approx(0.041)
    assert math.isnan(summ["d|none|random|random|0.2"]["d_random_mean"])
    lo = summ["d|none|m|drop-low|0.2"]
    assert lo["n"] == 0 and lo["n_failed"] == 1 and lo["error"] == "boom"


def test_detection_metrics():
    corrupted = np.array([0, 0, 1, 0, 1, 0], bool)
    perfect = B.np.where(corrupted, 2.0, 1.0) + np.arange(6) * 0.01
    d = S.detection_metrics(perfect, corrupted)
    roc = [float(v) for v in d.pop("roc_tpr").split()]
    assert d == {"k": 2, "auroc": 1.0, "ap": 1.0, "precision_at_k": 1.0}
    assert len(roc) == 21 and roc == [1.0] * 21  # a perfect ranking finds every corrupted example at FPR 0
    d = S.detection_metrics(-perfect, corrupted)
    assert d["auroc"] == 0.0 and d["precision_at_k"] == 0.0
    roc = [float(v) for v in d["roc_tpr"].split()]
    assert roc[0] == 0.0 and roc[-1] == 1.0 and roc == sorted(roc)


def test_cv_confidence_flags_flipped_labels():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-2, 1, (60, 3)), rng.normal(2, 1, (60, 3))]).astype(np.float32)
    y = np.repeat([0, 1], 60)
    y[:6] = 1
    s = S.cv_confidence(x, y, folds=3, seed=0)
    assert s.shape == (120,) and np.all((0 <= s) & (s <= 1))
    assert S.detection_metrics(s, np.arange(120) < 6)["auroc"] > 0.95


# -- the grid --------------------------------------------------------------------------------------------

def test_grid_outputs(grid_dir):
    for name in ("results.csv", "summary.csv", "detection.csv", "verdict.md", "config.json"):
        assert (grid_dir / name).exists(), name
    rows = read(grid_dir / "results.csv")
    assert list(rows[0]) == list(B.RESULT_COLUMNS)
    # 2 units none × (full + random + 2) + 2 units noisy × (full + oracle + random + 2)
    assert len(rows) == 2 * 4 + 2 * 5
    assert all(r["status"] == "ok" for r in rows)
    full = [r for r in rows if r["measure"] == "full"]
    assert {r["n_train"] for r in full} == {"200"}
    oracle = [r for r in rows if r["measure"] == "oracle"]
    assert all(r["n_corrupted_kept"] == "0" and r["n_train"] == "160" for r in oracle)
    for r in rows:
        assert math.isclose(float(r["gen_gap"]), float(r["train_acc"]) - float(r["test_acc"]), abs_tol=1e-12)
    det = read(grid_dir / "detection.csv")
    assert {d["measure"] for d in det} == {"el2n", "random", "cv_confidence"}
    assert all(d["corruption"] == "randY:0.2" for d in det)


def test_verdict_cites_summary_rows(grid_dir):
    keys = {r["key"] for r in read(grid_dir / "summary.csv")}
    text = (grid_dir / "verdict.md").read_text()
    cited = re.findall(r"\[`([^`]+)`\]", text)
    assert cited and set(cited) <= keys
    assert "loss_sensitivity was not among this grid's measures" in text or "loss_sensitivity, drop-high" in text
    assert "## digits — 20% symmetric label noise (randY:0.2)" in text


def test_resume_is_identical_and_skips_done_units(grid_dir, tmp_path):
    out = tmp_path / "g"
    cfg = tiny()
    units = B.plan_units(cfg)
    B.run_grid(replace(cfg), out, progress=False, shard=(0, 2))  # "killed" after half the units
    assert sum(B.unit_paths(out, u)[0].exists() for u in units) == 2
    before = B.unit_paths(out, units[0])[0].stat().st_mtime_ns
    B.run_grid(cfg, out, progress=False, resume=True)
    assert B.unit_paths(out, units[0])[0].stat().st_mtime_ns == before
    assert strip_time(read(out / "results.csv")) == strip_time(read(grid_dir / "results.csv"))
    assert read(out / "detection.csv") == read(grid_dir / "detection.csv")


def test_existing_dir_needs_resume_or_force(grid_dir):
    with pytest.raises(ValidationError, match="pass --resume to continue it or --force"):
        B.run_grid(tiny(), grid_dir, progress=False)
    with pytest.raises(ValidationError, match=r"another config \(differs in: train.epochs\)"):
        B.run_grid(tiny().with_overrides(epochs=3), grid_dir, progress=False, resume=True)


def test_shards_merge_to_the_full_grid(grid_dir, tmp_path):
    cfg = tiny()
    for i in range(3):
        B.run_grid(cfg, tmp_path / f"s{i}", shard=(i, 3), progress=False)
    B.merge([tmp_path / f"s{i}" for i in range(3)], tmp_path / "merged")
    assert strip_time(read(tmp_path / "merged" / "results.csv")) == strip_time(read(grid_dir / "results.csv"))
    assert read(tmp_path / "merged" / "summary.csv") == read(grid_dir / "summary.csv")


def test_merge_refuses_other_configs(tmp_path):
    B.prepare_dir(tiny(), tmp_path / "a", resume=False, force=False)
    B.prepare_dir(tiny(seeds=[5]), tmp_path / "b", resume=False, force=False)
    with pytest.raises(ValidationError, match="another config"):
        B.merge([tmp_path / "a", tmp_path / "b"], tmp_path / "m")


def test_failing_cells_are_recorded_and_grid_continues(tmp_path, monkeypatch):
    real_rule_mask, real_load = B._rule_mask, B.load_unit_data
    calls = {"n": 0}

    def rule_mask(cfg, s, rule, fraction, labels, seed):
        if rule == "drop-low":
            raise ValidationError("Rule 'drop-low' would remove every example of class 3.")
        return real_rule_mask(cfg, s, rule, fraction, labels, seed)

    def load(cfg, spec):
        calls["n"] += 1
        if calls["n"] == 3:  # preflight and unit 1 load fine; the dataset vanishes before unit 2
            raise OSError("disk gone")
        return real_load(cfg, spec)

    monkeypatch.setattr(B, "_rule_mask", rule_mask)
    monkeypatch.setattr(B, "load_unit_data", load)
    B._DATA_CACHE.clear()
    res = B.run_grid(tiny(corruptions=["none"]), tmp_path / "g", progress=False)
    rows = read(tmp_path / "g" / "results.csv")
    assert len(rows) == 8
    u1, u2 = rows[:4], rows[4:]
    assert [r["status"] for r in u1] == ["ok", "ok", "ok", "failed"]
    assert "would remove every example of class 3" in u1[3]["message"]
    assert all(r["status"] == "failed" and r["message"] == "OSError: disk gone" for r in u2)
    assert res["failed"] == 5
    assert "run(s) failed" in (tmp_path / "g" / "verdict.md").read_text()


def test_config_errors_before_training(tmp_path):
    with pytest.raises(ValidationError, match="Unknown dataset 'nodata'"):
        B.run_grid(tiny(datasets=["nodata"]), tmp_path / "g", progress=False)
    assert not (tmp_path / "g").exists()


@pytest.mark.slow
def test_jobs_give_identical_results(grid_dir, tmp_path):
    B.run_grid(tiny(), tmp_path / "g", jobs=2, progress=False)
    assert strip_time(read(tmp_path / "g" / "results.csv")) == strip_time(read(grid_dir / "results.csv"))


# -- CLI -------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cmd", ["bench", "bench-merge"])
def test_help(cmd):
    res = CliRunner().invoke(cli, [cmd, "--help"])
    assert res.exit_code == 0 and "Usage" in res.output


def test_cli_runs_and_prints_verdict(tmp_path):
    (tmp_path / "g.toml").write_text(TOML)
    res = CliRunner().invoke(cli, ["bench", "--config", str(tmp_path / "g.toml"), "--out", str(tmp_path / "o"),
                                   "--quiet", "--seeds", "1"])
    assert res.exit_code == 0, res.output
    assert "# Verdict" in res.output
    res = CliRunner().invoke(cli, ["bench-merge", str(tmp_path / "o"), "--out", str(tmp_path / "m")])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "m" / "summary.csv").read_text() == (tmp_path / "o" / "summary.csv").read_text()


def test_cli_unknown_key_is_one_line(tmp_path):
    (tmp_path / "g.toml").write_text(TOML.replace("fractions", "fractons"))
    res = CliRunner().invoke(cli, ["bench", "--config", str(tmp_path / "g.toml"), "--out", str(tmp_path / "o")])
    assert res.exit_code == 1
    assert res.output.strip().splitlines() == [
        "Error: Unknown key(s) in g.toml [grid]: 'fractons'. Known: datasets, corruptions, measures, rules, "
        "fractions, seeds."]


def test_cli_bad_shard(tmp_path):
    (tmp_path / "g.toml").write_text(TOML)
    res = CliRunner().invoke(cli, ["bench", "--config", str(tmp_path / "g.toml"), "--out", str(tmp_path / "o"),
                                   "--shard", "3/2"])
    assert res.exit_code == 2 and "0 <= i < n" in res.output


def test_steps_budget_scales_epochs(tmp_path):
    cfg = tiny(corruptions=["none"], seeds=[0], measures=["random"], fractions=[0.5])
    cfg = replace(cfg, bench=replace(cfg.bench, budget="steps"))
    rows, _ = B.run_unit(cfg, B.plan_units(cfg)[0])
    assert [(r["measure"], r["epochs"]) for r in rows] == [("full", 2), ("random", 4)]
