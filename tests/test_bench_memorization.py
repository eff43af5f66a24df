"""The bench arm `memorization` (Feldman & Zhang 2020): [score] mem_models / mem_subset checked like the CLI's
options before anything runs, the unit's warmup computing it with the CLI score's function, its scores cached
and driving drop-high / drop-low under the fit budgets, its companion columns refused as grid measures, and
the verdict stating each of its arms."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from cli_helpers import assert_one_line_error, run_cli
from sensprune.benchmark import grid as B
from sensprune.benchmark import unit as BU
from sensprune.benchmark.config import config_from_dict
from sensprune.benchmark.plan import Unit
from sensprune.errors import ValidationError
from sensprune.io import read_npz
from sensprune.measures import memorization as mz

# 200 digits, 16 subset models on halves: every example is in some subsets and out of others
TINY = {
    "grid": {"datasets": ["digits"], "corruptions": ["none", "randY:0.2"], "measures": ["memorization", "random"],
             "rules": ["drop-high", "drop-low"], "fractions": [0.2], "seeds": [0]},
    "data": {"subsample": 200},
    "train": {"epochs": 2, "batch_size": 64},
    "score": {"widths": [16], "epochs": 2, "budget": "fit", "mem_models": 16, "mem_subset": 0.5},
    "bench": {"min_per_class": 2, "budget": "fit", "max_epochs": 30},
}


def tiny(grid=None, score=None, bench=None):
    raw = {k: dict(v) for k, v in TINY.items()}
    for name, part in (("grid", grid), ("score", score), ("bench", bench)):
        raw[name].update(part or {})
    return config_from_dict(raw)


def read(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def toml(score_lines: str, measures: str = '"memorization", "random"') -> str:
    return (f'[grid]\ndatasets = ["digits"]\nmeasures = [{measures}]\nrules = ["drop-high"]\nfractions = [0.2]\n'
            f'seeds = [0]\n[data]\nsubsample = 200\n[score]\n{score_lines}\n')


@pytest.fixture(scope="module")
def grid_dir(tmp_path_factory):
    base = tmp_path_factory.mktemp("mem")
    out = base / "g"
    B.run_grid(tiny(bench={"warmup_cache": str(base / "cache")}), out, progress=False)
    return out


# -- config ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("score, msg", [
    ({"mem_models": 1}, "[score] mem_models must be an integer in 2..10000; got 1."),
    ({"mem_models": 10_001}, "[score] mem_models must be an integer in 2..10000; got 10001."),
    ({"mem_models": True}, "[score] mem_models must be an integer in 2..10000; got True."),
    ({"mem_models": 2.5}, "[score] mem_models must be an integer in 2..10000; got 2.5."),
    ({"mem_subset": 1.0}, "[score] mem_subset must be a fraction in (0, 1); got 1.0."),
    ({"mem_subset": 0}, "[score] mem_subset must be a fraction in (0, 1); got 0."),
    ({"mem_subset": "0.5"}, "[score] mem_subset must be a fraction in (0, 1); got '0.5'."),
    ({"mem_max_epochs": 0}, "[score] mem_max_epochs must be an integer in 1..100000; got 0."),
    ({"mem_max_epochs": 2.5}, "[score] mem_max_epochs must be an integer in 1..100000; got 2.5."),
    ({"measure_options": {"mem_models": 50}},
     "[score] measure_options must not hold mem_models, mem_subset or mem_max_epochs"),
    ({"measure_options": {"mem_max_epochs": 50}},
     "[score] measure_options must not hold mem_models, mem_subset or mem_max_epochs"),
])
def test_bad_memorization_keys_are_refused(score, msg):
    with pytest.raises(ValidationError) as exc:
        tiny(score=score)
    assert str(exc.value).startswith(msg)


@pytest.mark.parametrize("companion", ["memorization_se", "memorization_n_in"])
def test_companion_columns_are_not_grid_measures(companion):
    with pytest.raises(ValidationError, match=rf"^\[grid\] measures must rank the examples; got '{companion}', a "
                                              r"column that comes with 'memorization' \(name 'memorization'"):
        tiny(grid={"measures": ["memorization", companion, "random"]})


def test_cli_refuses_too_many_models_before_anything_runs(tmp_path, monkeypatch):
    def never(*a, **kw):
        raise AssertionError("nothing may load or train")
    monkeypatch.setattr(BU, "load_unit_data", never)
    monkeypatch.setattr(mz, "estimate", never)
    cfg = tmp_path / "g.toml"
    cfg.write_text(toml("mem_models = 100000000"))
    out = tmp_path / "out"
    r = run_cli(["bench", "--config", cfg, "--out", out])
    assert_one_line_error(r, "[score] mem_models must be an integer in 2..10000; got 100000000.")
    assert not out.exists()
    cfg.write_text(toml("mem_models = 4", '"memorization_se", "random"'))
    assert_one_line_error(run_cli(["bench", "--config", cfg, "--out", out]), "must rank the examples")
    assert not out.exists()


def test_subset_that_leaves_nothing_out_is_refused_at_preflight(tmp_path):
    cfg = tmp_path / "g.toml"
    cfg.write_text(toml("mem_models = 4\nmem_subset = 0.999"))  # round(0.999 * 200) = 200: nothing left out
    r = run_cli(["bench", "--config", cfg, "--out", tmp_path / "out"])
    assert_one_line_error(r, "each subset must leave at least one example in and one out")
    assert not (tmp_path / "out").exists()


def test_memorization_options_reach_the_score_config_only_with_the_measure():
    mo = BU.score_config(tiny(), "digits", 3).measure_options
    assert (mo.mem_models, mo.mem_subset) == (16, 0.5)
    other = tiny(grid={"measures": ["el2n", "random"]})
    assert not any(k.startswith("mem_") for k in BU.score_config(other, "digits", 3).to_dict()["measure_options"])


# -- the grid --------------------------------------------------------------------------------------------

def test_memorization_arms_run_and_drive_the_selections(grid_dir):
    rows = read(grid_dir / "results.csv")
    assert rows and all(r["status"] == "ok" for r in rows), [r["message"] for r in rows if r["status"] != "ok"]
    mem = {(r["corruption"], r["rule"]): r for r in rows if r["measure"] == "memorization"}
    assert set(mem) == {(c, r) for c in ("none", "randY:0.2") for r in ("drop-high", "drop-low")}
    assert {int(r["n_train"]) for r in mem.values()} == {160}
    assert {r["budget"] for r in rows} == {"fit"}
    # a flipped label is fitted only when trained on: drop-high removes the flipped examples, drop-low keeps them
    noisy = {rule: int(mem[("randY:0.2", rule)]["n_corrupted_kept"]) for rule in ("drop-high", "drop-low")}
    assert noisy["drop-high"] < int(mem[("randY:0.2", "drop-high")]["n_corrupted"]) / 2 < noisy["drop-low"]
    det = {r["measure"]: float(r["auroc"]) for r in read(grid_dir / "detection_per_seed.csv")}
    assert det["memorization"] > 0.8 > det["random"]
    # memorization alone trains no warmup run: no warmup epochs are reported for it
    units = [r for f in sorted((grid_dir / "units").glob("*__s0.csv")) for r in read(f)]
    assert len(units) == len(rows) and {r["warmup_epochs"] for r in units} == {""}


def test_unit_scores_are_the_cli_scores_and_are_cached(grid_dir, tmp_path):
    """The cached warmup of the noisy unit is what `sensprune score` writes for the same data and seed."""
    cache = sorted((grid_dir.parent / "cache").glob("digits__randY_0.2__s0__*.npz"))
    assert len(cache) == 1
    cached = read_npz(cache[0])["memorization"]
    out = tmp_path / "s"
    r = run_cli(["score", "--dataset", "digits", "--subsample", "200", "--corrupt", "randY:0.2", "--seed", "0",
                 "--widths", "16", "--batch-size", "64", "--measures", "memorization", "--mem-models", "16",
                 "--mem-subset", "0.5", "--quiet", "--out", out])
    assert r.exit_code == 0, r.output
    with open(out / "scores.csv", newline="") as fh:
        cli = np.array([float(row["memorization"]) for row in csv.DictReader(fh)])
    np.testing.assert_array_equal(cached, cli)


def test_cache_is_reused_and_keyed_by_the_memorization_options(grid_dir, tmp_path, monkeypatch):
    cache = str(grid_dir.parent / "cache")
    monkeypatch.setattr(mz, "estimate", lambda *a, **kw: (_ for _ in ()).throw(AssertionError("retrained")))
    B.run_grid(tiny(bench={"warmup_cache": cache}), tmp_path / "again", progress=False)
    assert read(tmp_path / "again" / "summary.csv") == read(grid_dir / "summary.csv")
    cfg = tiny(score={"mem_models": 17}, bench={"warmup_cache": cache})
    unit = Unit("digits", "none", 0)
    data = BU.load_unit_data(cfg, "digits")
    old = tiny(bench={"warmup_cache": cache})
    assert BU.warmup_cache_path(cfg, unit, data, BU.score_config(cfg, "digits", 0), False) != \
        BU.warmup_cache_path(old, unit, data, BU.score_config(old, "digits", 0), False)


def test_verdict_states_every_memorization_arm(grid_dir):
    text = (grid_dir / "verdict.md").read_text()
    assert text.count("- **memorization** (every rule and fraction, vs random at the same fraction):") == 2
    for side in ("top", "bottom"):
        assert text.count(f"  - Under budget `fit` (each run trained until it fits its own training set; reweighting "
                          f"arms the full run's steps), dropping the {side} 20% by memorization ") == 2
    assert "memorization (Feldman & Zhang 2020, subsampled) from 16 models per unit, each on a random 0.5" in text
    assert "- **The question:** loss_sensitivity was not among this grid's measures" in text


def test_verdict_arm_lines_open_with_their_call_once():
    """A tested memorization arm is stated with its call in its own list, not again among the other arms."""
    from sensprune.benchmark.verdict import verdict

    def row(measure, rule, frac, call):
        return {"key": f"d|none|{measure}|{rule}|{frac}", "dataset": "d", "corruption": "none", "measure": measure,
                "rule": rule, "fraction": frac, "vs": "random", "d_random_mean": -0.05, "d_random_ci95": 0.01,
                "d_random_n": 5, "d_random_sig": -1, "q_bh": 0.001, "sig_bh": -1, "test_acc_mean": 0.9,
                "call": call, "margin": 0.01, "upper_95": -0.04, "q_tost": 1.0, "budget": "fit", "n_failed": 0}
    rows = [row("memorization", "drop-low", 0.1, "inconclusive"), row("memorization", "drop-high", 0.2, "worse"),
            row("memorization", "drop-high", 0.1, "worse"), row("aum", "drop-high", 0.2, "worse")]
    text = verdict(rows, [], arms_of=("memorization",))
    arms = text.split("- **memorization** (every rule and fraction, vs random at the same fraction):\n")[1]
    lines = arms.splitlines()[:3]
    assert [ln.split("dropping the ")[1].split(":")[0] for ln in lines] == [
        "top 10% by memorization", "top 20% by memorization", "bottom 10% by memorization"]
    assert "dropping the top 20% by memorization: **worse** than random" in lines[1]
    other = text.split("- Other arms that differ from random")[1]
    assert "by aum" in other and "by memorization" not in other


def test_with_a_warmup_measure_under_fit_steps(tmp_path, monkeypatch):
    """Beside a hooked measure, one score() computes both; under fit-steps every pruned run takes the full
    run's steps."""
    seen = []
    real = BU.warmup_scores
    monkeypatch.setattr(BU, "warmup_scores", lambda *a, **kw: seen.append(a[2].measures) or real(*a, **kw))
    cfg = tiny(grid={"measures": ["memorization", "loss", "random"], "corruptions": ["none"]},
               bench={"budget": "fit-steps"})
    rows, _ = BU.run_unit(cfg, Unit("digits", "none", 0))
    assert all(r["status"] == "ok" for r in rows), [r["message"] for r in rows]
    assert seen == [("memorization", "memorization_se", "memorization_n_in", "loss")]
    full = next(r for r in rows if r["measure"] == "full")
    assert {r["steps"] for r in rows} == {full["steps"]}
    assert {r["warmup_epochs"] for r in rows} != {""}  # the loss warmup ran (to fit) and is reported


def test_too_few_models_fail_memorization_cells_only():
    cfg = tiny(score={"mem_models": 2, "mem_subset": 0.7}, grid={"corruptions": ["none"]})
    rows, _ = BU.run_unit(cfg, Unit("digits", "none", 0))
    by = {r["measure"]: r for r in rows}
    assert by["random"]["status"] == by["full"]["status"] == "ok"
    msg = by["memorization"]["message"]
    assert by["memorization"]["status"] == "failed" and msg.startswith(
        "[score] mem_models must be large enough that every example is in some subsets and out of others; got 2,")
