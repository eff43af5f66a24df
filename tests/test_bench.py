"""Tests of the bench stage: planning, statistics, detection, resume/jobs/shards, failures, CLI."""

from __future__ import annotations

import csv
import math
import re
from dataclasses import replace

import numpy as np
import pytest
from click.testing import CliRunner

from sensprune.benchmark import grid as B
from sensprune.benchmark import plan as BP
from sensprune.benchmark import unit as BU
from sensprune.benchmark import stats as S
from sensprune.benchmark.config import config_from_dict
from sensprune.cli import cli
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
    units = BP.plan_units(cfg)
    assert [(u.corruption, u.seed) for u in units] == [("none", 0), ("none", 1), ("randY:0.2", 0), ("randY:0.2", 1)]
    assert units[2].key == "digits__randY_0.2__s0"
    assert len({u.key for u in units}) == len(units)


def test_plan_retrains_baselines_and_random_once():
    cfg = tiny(measures=["el2n", "aum", "random"], fractions=[0.1, 0.3])
    clean = BP.plan_retrains(cfg, BP.Unit("digits", "none", 0))
    noisy = BP.plan_retrains(cfg, BP.Unit("digits", "randY:0.2", 0))
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
    assert list(rows[0]) == list(BP.RESULT_COLUMNS)
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
    units = BP.plan_units(cfg)
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


@pytest.mark.parametrize("where", ["s0", "s0/sub", "."])
def test_merge_refuses_an_out_that_is_inside_or_above_a_shard(grid_dir, tmp_path, where):
    cfg = B.config_from_json(B.read_json(grid_dir / "config.json"))
    B.run_grid(cfg, tmp_path / "s0", shard=(0, 2), progress=False)
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    with pytest.raises(ValidationError, match=r"--out .* (is the input|is inside the input|contains the input)"):
        B.merge([tmp_path / "s0"], tmp_path / where)
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_merge_refuses_other_configs(tmp_path):
    B.prepare_dir(tiny(), tmp_path / "a", resume=False, force=False)
    B.prepare_dir(tiny(seeds=[5]), tmp_path / "b", resume=False, force=False)
    with pytest.raises(ValidationError, match="another config"):
        B.merge([tmp_path / "a", tmp_path / "b"], tmp_path / "m")


def test_failing_cells_are_recorded_and_grid_continues(tmp_path, monkeypatch):
    real_rule_mask, real_load = BU._rule_mask, BU.load_unit_data
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

    monkeypatch.setattr(BU, "_rule_mask", rule_mask)
    monkeypatch.setattr(BU, "load_unit_data", load)
    BU._DATA_CACHE.clear()
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
    rows, _ = BU.run_unit(cfg, BP.plan_units(cfg)[0])
    assert [(r["measure"], r["epochs"]) for r in rows] == [("full", 2), ("random", 4)]


# -- paired t, Benjamini–Hochberg ------------------------------------------------------------------------

def test_paired_t_is_scipys_ttest_rel():
    from scipy.stats import ttest_rel

    a, b = [0.81, 0.78, 0.84, 0.80], [0.79, 0.77, 0.80, 0.80]
    m, h, n, p = S.paired_t(a, b)
    ref = ttest_rel(a, b)
    lo, hi = ref.confidence_interval(0.95)
    assert n == 4 and m == pytest.approx(np.mean(np.subtract(a, b)))
    assert (m - h, m + h) == (pytest.approx(lo), pytest.approx(hi)) and p == pytest.approx(ref.pvalue)
    # the interval is the one mean_ci gives for the differences
    assert h == pytest.approx(S.mean_ci(np.subtract(a, b))[3])
    assert S.paired_t([0.5, 0.7], [0.4, 0.6]) == (pytest.approx(0.1), 0.0, 2, 0.0)  # constant difference
    assert S.paired_t([0.5, 0.7], [0.5, 0.7])[3] == 1.0
    assert math.isnan(S.paired_t([0.5], [0.4])[3]) and S.paired_t([], [])[2] == 0


def test_bh_adjust_is_scipys_and_skips_untested():
    from scipy.stats import false_discovery_control

    p = [0.01, float("nan"), 0.04, 0.03, 0.5]
    q = S.bh_adjust(p)
    assert math.isnan(q[1])
    np.testing.assert_allclose(q[[0, 2, 3, 4]], false_discovery_control([0.01, 0.04, 0.03, 0.5], method="bh"))
    # by hand: sorted p 0.01, 0.03, 0.04, 0.5 (m = 4) -> min over j >= i of p_j * m / j
    np.testing.assert_allclose(q[[0, 3, 2, 4]], [0.04, 0.04 * 4 / 3, 0.04 * 4 / 3, 0.5])


def test_summarize_bh_column_over_all_cells():
    rows = []
    rng = np.random.default_rng(0)
    for s in range(4):
        base = 0.6 + 0.1 * rng.random()
        rows += [_row("full", "none", 0.0, s, base + 0.02), _row("random", "random", 0.2, s, base),
                 _row("good", "drop-high", 0.2, s, base + 0.05 + 0.002 * s),  # clear effect
                 _row("noise", "drop-high", 0.2, s, base + rng.normal(0, 0.02)),
                 _row("good", "reweight:softmax", 0.0, s, base + 0.02 + 0.01 * rng.random())]
    summ = {r["key"]: r for r in S.summarize(rows)}
    tested = [r for r in summ.values() if np.isfinite(r["q_bh"])]
    assert sorted(r["measure"] + "/" + r["rule"] for r in tested) == [
        "good/drop-high", "good/reweight:softmax", "noise/drop-high"]  # baselines are not tested
    rew = summ["d|none|good|reweight:softmax|0"]
    assert rew["vs"] == "full" and rew["p_value"] == rew["d_full_p"]
    hi = summ["d|none|good|drop-high|0.2"]
    assert hi["vs"] == "random" and hi["p_value"] == hi["d_random_p"]
    np.testing.assert_allclose([r["q_bh"] for r in tested], S.bh_adjust([r["p_value"] for r in tested]))
    assert hi["sig_bh"] == 1 and hi["q_bh"] < 0.05
    assert all(r["sig_bh"] == 0 for r in tested if r["q_bh"] >= 0.05)
    assert set(S.SUMMARY_COLUMNS) <= set(hi)


def test_verdict_states_bh_rule_and_counts(grid_dir):
    summary = read(grid_dir / "summary.csv")
    assert {"q_bh", "sig_bh", "p_value", "vs"} <= set(summary[0])
    tested = [r for r in summary if r["q_bh"] not in ("", "nan")]
    survive = [r for r in tested if r["sig_bh"] not in ("0", "")]
    text = (grid_dir / "verdict.md").read_text()
    assert "Benjamini–Hochberg" in text and "false_discovery_control" in text
    assert f"across all {len(tested)} tested cells" in text
    assert f"**{len(survive)} survive the adjustment**" in text
    assert len(tested) == 4  # el2n × {drop-high, drop-low} × 2 corruptions
    meta = B.read_json(grid_dir / "meta.json")
    assert meta["bh"] == {"fdr": 0.05, "tested": 4, "survive": len(survive)}


def test_stats_is_pure_numerics():
    import ast
    import inspect

    tree = ast.parse(inspect.getsource(S))
    imported = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    assert not {m for m in imported if m.startswith("sensprune")}, imported
    assert not {"csv", "pathlib", "os"} & imported


# -- reweighting arms ------------------------------------------------------------------------------------

def test_plan_reweighting_arms():
    cfg = tiny(measures=["el2n", "aum", "random"], fractions=[0.1, 0.3],
               rules=["drop-high", "reweight:inverse-rank", "reweight:softmax", "reweight:clip"])
    plan = BP.plan_retrains(cfg, BP.Unit("digits", "none", 0))
    assert plan[:5] == [("full", "none", 0.0), ("el2n", "reweight:inverse-rank", 0.0),
                        ("aum", "reweight:inverse-rank", 0.0), ("el2n", "reweight:softmax", 0.0),
                        ("aum", "reweight:softmax", 0.0)]
    assert [p for p in plan if p[1] == "reweight:clip"] == [
        ("el2n", "reweight:clip", 0.1), ("aum", "reweight:clip", 0.1),
        ("el2n", "reweight:clip", 0.3), ("aum", "reweight:clip", 0.3)]
    assert len(plan) == 1 + 4 + 2 * (1 + 2 * 2)


@pytest.mark.parametrize("per_class", [False, True])
def test_reweight_weights_are_prunes(per_class):
    """The arm's weights are those `sensprune prune --reweight` writes for the same scores."""
    from sensprune.pruning.stage import select
    from sensprune.scoring.table import ScoreTable

    rng = np.random.default_rng(1)
    s, y = rng.random(60), np.repeat(np.arange(3), 20)
    table = ScoreTable(np.arange(60), y, {"el2n": s}, {}, {})
    cfg = tiny()
    cfg = replace(cfg, bench=replace(cfg.bench, per_class=per_class, temperature=0.5))
    for method, frac in (("inverse-rank", 0.0), ("softmax", 0.0), ("clip", 0.2)):
        w = BU.reweight_weights(cfg, s, f"reweight:{method}", frac, y)
        ref = select(table, "el2n", reweight_method=method, temperature=0.5, per_class=per_class,
                     fraction=frac if method == "clip" else None).weights
        np.testing.assert_allclose(w, ref)


def test_reweighting_rows_train_on_all_examples_with_weights(monkeypatch):
    cfg = tiny(corruptions=["none"], seeds=[0], measures=["el2n", "random"], rules=["drop-high", "reweight:clip"],
               fractions=[0.2])
    seen = []
    real = BU.retrain

    def spy(cfg_, seed, build, tr, te, data, mask, weights=None, **kw):
        seen.append((bool(mask.all()), None if weights is None else float(weights.mean())))
        return real(cfg_, seed, build, tr, te, data, mask, weights, **kw)

    monkeypatch.setattr(BU, "retrain", spy)
    rows, _ = BU.run_unit(cfg, BP.plan_units(cfg)[0])
    by = {(r["measure"], r["rule"]): r for r in rows}
    assert all(r["status"] == "ok" for r in rows), rows
    assert by[("el2n", "reweight:clip")]["n_train"] == 200 and by[("el2n", "drop-high")]["n_train"] < 200
    assert seen[0] == (True, None)  # full
    assert seen[-1][0] is True and seen[-1][1] == pytest.approx(1.0)  # clip: all kept, mean weight 1
    summ = {r["key"]: r for r in S.summarize(rows)}
    assert summ["digits|none|el2n|reweight:clip|0.2"]["vs"] == "full"


# -- budgets ---------------------------------------------------------------------------------------------

def test_train_stop_callback_ends_early():
    import torch

    from sensprune.config import TrainConfig
    from sensprune.train.loop import train
    from sensprune.train.sources import ArraySource

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(40, 3)).astype(np.float32), rng.integers(0, 2, 40)
    src = ArraySource(x, y, torch.device("cpu"))
    calls = []
    res = train(lambda: torch.nn.Linear(3, 2), src, TrainConfig(epochs=6, batch_size=8), progress=False,
                stop=lambda rec, run: calls.append(rec["epoch"]) or rec["epoch"] == 2)
    assert calls == [1, 2] and len(res.history) == 2
    full = train(lambda: torch.nn.Linear(3, 2), src, TrainConfig(epochs=6, batch_size=8), progress=False)

    def strip(h):
        return [{k: v for k, v in r.items() if k != "time_s"} for r in h]
    assert len(full.history) == 6 and strip(res.history) == strip(full.history[:2])


def _fit_cfg(**bench):
    cfg = tiny(corruptions=["randY:0.4"], seeds=[0], measures=["random"], fractions=[0.5])
    return replace(cfg, train=replace(cfg.train, schedule="constant", lr=0.1),
                   bench=replace(cfg.bench, budget="fit", **bench))


def test_fit_budget_stops_at_threshold():
    rows, _ = BU.run_unit(_fit_cfg(fit_threshold=0.5, max_epochs=60), BP.Unit("digits", "randY:0.4", 0))
    assert [r["measure"] for r in rows] == ["full", "oracle", "random"]
    for r in rows:
        assert r["status"] == "ok" and r["budget"] == "fit" and r["fit_reached"] == 1
        assert r["train_acc"] >= 0.5 and 1 <= r["epochs"] < 60


def test_fit_budget_cap_recorded():
    rows, _ = BU.run_unit(_fit_cfg(fit_threshold=1.0, max_epochs=2), BP.Unit("digits", "randY:0.4", 0))
    for r in rows:  # 40% flipped labels cannot be fitted in 2 epochs
        assert r["epochs"] == 2 and r["fit_reached"] == 0 and r["train_acc"] < 1.0


def test_fit_columns_in_results(tmp_path):
    cfg = _fit_cfg(fit_threshold=0.3, max_epochs=5)
    B.run_grid(cfg, tmp_path / "g", progress=False)
    rows = read(tmp_path / "g" / "results.csv")
    assert {r["budget"] for r in rows} == {"fit"} and {r["fit_reached"] for r in rows} <= {"0", "1"}
    for r in rows:  # reached <=> the final training accuracy is at the threshold; else the cap was hit
        assert r["fit_reached"] == str(int(float(r["train_acc"]) >= 0.3))
        assert int(r["epochs"]) == 5 or r["fit_reached"] == "1"
    assert "retrain budget `fit`: until 0.3 training accuracy" in (tmp_path / "g" / "verdict.md").read_text()


def test_epoch_budget_rows(grid_dir):
    rows = read(grid_dir / "results.csv")
    assert {r["budget"] for r in rows} == {"epochs"} and {r["fit_reached"] for r in rows} == {""}
    assert {r["epochs"] for r in rows} == {"2"}


# -- noise kinds -----------------------------------------------------------------------------------------

def test_asymmetric_and_randx_units(tmp_path):
    cfg = tiny(corruptions=["randY-asym:0.2", "randX:0.2"], seeds=[0], measures=["el2n", "random"],
               rules=["drop-high"])
    res = B.run_grid(cfg, tmp_path / "g", progress=False)
    rows = read(tmp_path / "g" / "results.csv")
    assert res["failed"] == 0 and {r["corruption"] for r in rows} == {"randY-asym:0.2", "randX:0.2"}
    assert all(r["n_corrupted"] == "40" for r in rows)
    assert {d["corruption"] for d in read(tmp_path / "g" / "detection.csv")} == {"randY-asym:0.2", "randX:0.2"}
    text = (tmp_path / "g" / "verdict.md").read_text()
    assert "20% asymmetric label noise (class c -> c+1)" in text and "20% Gaussian-noise inputs" in text


# -- output folders --------------------------------------------------------------------------------------

def test_force_keeps_the_old_grid_until_the_new_one_is_complete(grid_dir, tmp_path, monkeypatch):
    import shutil

    out = tmp_path / "g"
    shutil.copytree(grid_dir, out)
    before = (out / "results.csv").read_text()

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(B, "run_unit", boom)
    with pytest.raises(KeyboardInterrupt):
        B.run_grid(tiny(seeds=[3]), out, progress=False, force=True)
    assert (out / "results.csv").read_text() == before  # untouched
    monkeypatch.undo()
    B.run_grid(tiny(seeds=[3]), out, progress=False, force=True)
    assert {r["seed"] for r in read(out / "results.csv")} == {"3"}
    assert not list(out.glob("units/*__s0.csv"))  # replaced, not merged
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".g.") and "old" in p.name]


def test_cli_unknown_reweighting_arm_writes_nothing(tmp_path):
    from cli_helpers import assert_one_line_error, run_cli

    (tmp_path / "g.toml").write_text(TOML.replace('"drop-low"]', '"reweight:nope"]'))
    res = run_cli(["bench", "--config", tmp_path / "g.toml", "--out", tmp_path / "o"])
    assert_one_line_error(res, "Unknown reweighting arm(s) in [grid] rules: 'reweight:nope'")
    assert res.exit_code == 1 and not (tmp_path / "o").exists()


def test_cli_fit_threshold_out_of_range_writes_nothing(tmp_path):
    from cli_helpers import assert_one_line_error, run_cli

    (tmp_path / "g.toml").write_text(TOML + 'budget = "fit"\nfit_threshold = 1.5\n')
    res = run_cli(["bench", "--config", tmp_path / "g.toml", "--out", tmp_path / "o"])
    assert_one_line_error(res, "[bench] fit_threshold must be a training accuracy in (0, 1]; got 1.5.")
    assert not (tmp_path / "o").exists()


def test_force_never_replaces_a_user_folder(tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "notes.txt").write_text("keep me")
    with pytest.raises(ValidationError, match=r"exists and is not a bench folder; choose another --out\.$"):
        B.run_grid(tiny(), out, progress=False, force=True)
    assert [p.name for p in out.iterdir()] == ["notes.txt"]


def test_force_refuses_a_user_folder_with_a_config_json_before_training(tmp_path, monkeypatch):
    out = tmp_path / "mine"
    out.mkdir()
    (out / "config.json").write_text('{"mine": 1}')
    (out / "notes.txt").write_text("keep me")
    monkeypatch.setattr(B, "run_unit", lambda *a, **k: pytest.fail("trained before refusing"), raising=False)
    with pytest.raises(ValidationError, match=r"holds a config.json but is not a sensprune output"):
        B.run_grid(tiny(), out, progress=False, force=True)
    assert sorted(p.name for p in out.iterdir()) == ["config.json", "notes.txt"]
    assert (out / "config.json").read_text() == '{"mine": 1}'


def test_meta_names_the_loss_sensitivity_estimator():
    cfg = tiny(measures=["loss_sensitivity", "loss_sensitivity_h1", "el2n", "random"])
    meta = BP.measure_meta(cfg)
    assert list(meta) == ["loss_sensitivity", "loss_sensitivity_h1", "el2n"]
    assert meta["loss_sensitivity"]["estimator"].startswith("full horizon, sampled: 16 probe steps")
    assert meta["loss_sensitivity_h1"]["estimator"] == "PROXY: truncated to the last 1 update(s)"
    exact = replace(cfg, score=replace(cfg.score, measure_options={"probe_times": "all"}))
    assert BP.measure_meta(exact)["loss_sensitivity"]["estimator"] == "full horizon, exact at every step"


def test_grid_meta_lists_measures(grid_dir):
    meta = B.read_json(grid_dir / "meta.json")
    assert list(meta["measures"]) == ["el2n"] and "direction" in meta["measures"]["el2n"]


def test_verdict_sentence_opens_with_the_call_and_names_the_budget():
    from sensprune.benchmark.verdict import sentence

    row = {"key": "d|none|m|drop-high|0.2", "measure": "m", "rule": "drop-high", "fraction": 0.2, "vs": "random",
           "d_random_mean": 0.02, "d_random_ci95": 0.015, "d_random_n": 5, "d_random_sig": 1, "q_bh": 0.09,
           "sig_bh": 0, "test_acc_mean": 0.9, "call": "inconclusive", "margin": 0.01, "upper_95": 0.041,
           "q_tost": 0.3, "budget": "fit-steps"}
    text = sentence(row)
    assert text.startswith("Under budget `fit-steps` (equal compute: every run the SGD steps the full run needed "
                           "to fit), dropping the top 20% by m: **inconclusive** vs random (neither a significant "
                           "difference nor equivalence within ±1.0 points) — it raises test accuracy by 2.0 ± 1.5 "
                           "points vs random (95% CI of the paired difference, n=5 seeds; gains above +4.1 points "
                           "ruled out (one-sided 95%); TOST q = 0.3; BH q = 0.09;"), text
    better = sentence({**row, "q_bh": 0.01, "sig_bh": 1, "call": "better"})
    assert "**better** than random" in better and "BH q = 0.01, survives" in better
    equiv = sentence({**row, "d_random_mean": 0.001, "call": "equivalent", "q_tost": 0.02})
    assert "**equivalent** to random within ±1.0 points" in equiv and "TOST q = 0.02" in equiv
    untested = sentence({**row, "vs": "", "q_bh": float("nan")}, "random")  # a baseline row: no call
    assert "**" not in untested and "unadjusted" in untested


def test_verdict_answers_with_the_proxy_only_when_named_as_one():
    from sensprune.benchmark.verdict import _question

    row = {"key": "d|none|loss_sensitivity_h1|drop-high|0.2", "measure": "loss_sensitivity_h1", "rule": "drop-high",
           "fraction": 0.2, "vs": "random", "d_random_mean": -0.01, "d_random_ci95": 0.005, "d_random_n": 5,
           "d_random_sig": 1, "q_bh": 0.01, "sig_bh": 1, "test_acc_mean": 0.9}
    lines = _question([row], "loss_sensitivity")
    assert lines[0].startswith("- **The question:** this grid has only the proxy loss_sensitivity_h1, not the "
                               "paper's measure loss_sensitivity") and len(lines) == 2
    full = {**row, "measure": "loss_sensitivity", "key": "d|none|loss_sensitivity|drop-high|0.2"}
    assert _question([row, full], "loss_sensitivity")[0] == "- **The question (loss_sensitivity, drop-high):**"


def test_warmup_cache_is_shared_across_budgets(tmp_path, monkeypatch):
    cache = tmp_path / "warm"
    cfg = tiny(corruptions=["randY:0.2"], seeds=[0], measures=["el2n", "random"], rules=["drop-high"])
    cfg = replace(cfg, bench=replace(cfg.bench, warmup_cache=str(cache)))
    unit = BP.plan_units(cfg)[0]
    rows, det = BU.run_unit(cfg, unit)
    files = list(cache.iterdir())
    assert len(files) == 1 and files[0].name.startswith(unit.key + "__")
    assert set(np.load(files[0])) == {"el2n", "cv_confidence", BU.WARMUP_EPOCHS, BU.WARMUP_ACC}
    assert {r["warmup_epochs"] for r in rows} == {2} and 0 < rows[0]["warmup_train_acc"] <= 1

    def no_warmup(*a, **k):
        raise AssertionError("the cached warmup was recomputed")

    monkeypatch.setattr("sensprune.scoring.stage.score", no_warmup)
    monkeypatch.setattr("sensprune.benchmark.stats.cv_confidence", no_warmup)
    again, det2 = BU.run_unit(cfg, unit)  # same budget: identical rows from the cached scores
    assert strip_time(again) == strip_time(rows) and det2 == det
    fit = replace(cfg, bench=replace(cfg.bench, budget="fit", max_epochs=3))
    fit_rows, _ = BU.run_unit(fit, unit)  # another budget, same warmup: reused, not recomputed
    assert [r["status"] for r in fit_rows] == ["ok"] * len(fit_rows)
    other = replace(cfg, score=replace(cfg.score, epochs=1))
    monkeypatch.undo()
    BU.run_unit(other, unit)  # another warmup config: its own cache file
    assert len(list(cache.iterdir())) == 2


def test_warmup_cache_must_be_a_path():
    with pytest.raises(ValidationError, match=r"\[bench\] warmup_cache must be a folder path; got ''"):
        cfg = tiny()
        replace(cfg, bench=replace(cfg.bench, warmup_cache=""))
