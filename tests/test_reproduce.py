"""``sensprune reproduce``: verdict lines with intervals and seeds, correct citations, the full-horizon estimator
in experiments 2 and 3, each verdict rule on synthetic numbers, and bad input (one line, nothing written).

The tiny scale runs on scikit-learn's ``digits`` (ships with the library), so nothing here needs Fashion-MNIST
except the slow ``--quick`` test, which skips without it.
"""

import csv
import json
import re

import numpy as np
import pytest

from sensprune.data.builtin import fashion_mnist_available, fashion_mnist_dir
from sensprune.data.noise import apply_corruption, uniform_random_labels
from sensprune.errors import ValidationError
from sensprune.reproduce import EXPERIMENTS, parse_only, run_reproduce
from sensprune.reproduce import csr_noise, dropout, easy_hard, epochs, gini, per_class
from sensprune.reproduce.common import SCALES, input_norms, norm_matched_random_inputs, paper_data
from sensprune.reproduce.settings import load_settings
from sensprune.reproduce.verdict import (INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, VERDICT_WORDS, Interval, all_of,
                                         binomial_se, bootstrap_ci, decide, seed_slopes, t_ci)
from cli_helpers import assert_one_line_error as _one_line_error, run_cli as _run

needs_fashion = pytest.mark.skipif(not fashion_mnist_available(),
                                   reason=f"--quick needs Fashion-MNIST, absent from {fashion_mnist_dir()} "
                                          "(apt-get install dataset-fashion-mnist)")
WORDS = "|".join(re.escape(w) for w in VERDICT_WORDS)
HEAD = re.compile(rf"^([1-6])\. (.+?): \*\*({WORDS})\*\*( \(.+?\))? — .+\. Rule: .+ CSV: exp\1_\w+\.csv.*\.$")
EXTRA = re.compile(rf"^    - .+: \*\*({WORDS})\*\*( \(.+?\))? — .+\.$")
INTERVAL = re.compile(r"[-+]\d+\.\d+ \[[-+]\d+\.\d+, [-+]\d+\.\d+\]")
SEEDS = re.compile(r"\d+ seeds")
CITATIONS = {1: "§3.1, Fig. 1", 2: "§3.2, Fig. 3", 3: "§3.2, Fig. 4", 4: "§4, Figs. 7–9", 5: "§5, Figs. 10–11",
             6: "§3.3.2, Fig. 6"}


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("rep") / "paper"
    r = _run(["reproduce", "--tiny", "--quiet", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out, r


def test_help():
    r = _run(["reproduce", "--help"])
    assert r.exit_code == 0 and "Example" in r.output and "--quick" in r.output and "--seeds" in r.output
    assert "--tiny" not in r.output  # test-only knob stays hidden


def test_every_line_has_interval_seeds_rule_and_csv_rows(tiny_run):
    out, r = tiny_run
    lines = (out / "verdicts.md").read_text().splitlines()
    heads = [ln for ln in lines if HEAD.match(ln)]
    extras = [ln for ln in lines if ln.startswith("    - ")]
    assert [int(HEAD.match(ln).group(1)) for ln in heads] == [1, 2, 3, 4, 5, 6]
    assert extras and all(EXTRA.match(ln) for ln in extras), extras
    for ln in heads + extras:
        # every verdict: an interval (or the runs that did not fit, listed) and the number of seeds
        assert (INTERVAL.search(ln) or "did not fit" in ln) and SEEDS.search(ln), ln
    verdict_lines = [ln for ln in lines if HEAD.match(ln) or ln.startswith("    - ")]
    assert [ln for ln in r.stdout.splitlines() if ln.strip()] == verdict_lines  # stdout = the verdict lines
    for n in EXPERIMENTS:
        pngs, csvs = list(out.glob(f"exp{n}_*.png")), list(out.glob(f"exp{n}_*.csv"))
        assert len(pngs) == 1 and pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pngs[0].stat().st_size > 1000
        assert len(csvs) == 1 and len(csvs[0].read_text().splitlines()) >= 2


def test_citations_are_the_papers(tiny_run):
    out, _ = tiny_run
    heads = {int(HEAD.match(ln).group(1)): HEAD.match(ln).group(2)
             for ln in (out / "verdicts.md").read_text().splitlines() if HEAD.match(ln)}
    for n, cite in CITATIONS.items():
        assert f"({cite})" in heads[n], heads[n]
    text = (out / "verdicts.md").read_text()
    assert "§2," not in text and "Fig. 9/10" not in text and "Fig. 7/8" not in text and "Fig. 2," not in text


def test_meta_names_the_full_horizon_estimator_for_2_and_3(tiny_run):
    out, _ = tiny_run
    meta = json.loads((out / "meta.json").read_text())
    assert meta["kind"] == "reproduce" and meta["config"]["scale"]["name"] == "tiny"
    e2, e3 = meta["experiments"]["2"]["config"], meta["experiments"]["3"]["config"]
    assert "full-horizon" in e2["measure"] and "full-horizon" in e3["measure"]
    assert e2["estimator"]["loss_sensitivity"]["mode"].startswith("full horizon")
    assert e3["estimator"]["per_class"]["mode"].startswith("full horizon")
    assert "PROXY" not in json.dumps([e2, e3])
    for cfg in (e2, e3):  # plain SGD, as the paper
        assert cfg["train"]["optimizer"] == "sgd" and cfg["train"]["momentum"] == 0.0
        assert cfg["train"]["weight_decay"] == 0.0 and cfg["train"]["schedule"] == "constant"
    assert all(len(meta["experiments"][str(n)]["config"]["seeds"]) >= 2 for n in EXPERIMENTS)
    rows = (out / "exp2_gini.csv").read_text().splitlines()
    assert "randX norm-matched" in "\n".join(rows) and "full horizon" in rows[1]


def test_verdict_follows_the_csv(tiny_run):
    """Experiment 3's verdict is recomputed from its CSV (off-diagonal fractions per seed)."""
    out, _ = tiny_run
    off = {}
    with open(out / "exp3_per_class.csv", newline="") as f:
        for row in csv.DictReader(f):
            off.setdefault(row["data"], {})[int(row["seed"])] = float(row["off_diagonal_fraction"])
    seeds = sorted(off["real"])
    acc = {}
    with open(out / "exp3_per_class.csv", newline="") as f:
        for row in csv.DictReader(f):
            acc.setdefault(row["data"], {})[int(row["seed"])] = float(row["train_acc_final"])
    thr = load_settings().scales["tiny"].rules.fit_threshold
    pairs = ((off, "real"), (off, "randX norm-matched"), (acc, "real"), (acc, "randX norm-matched"))
    want, _ = per_class.judge(*([d[k][s] for s in seeds] for d, k in pairs), threshold=thr)
    meta = json.loads((out / "meta.json").read_text())
    assert meta["experiments"]["3"]["verdict"] == want.word


# -- each verdict rule on synthetic numbers ------------------------------------------------------------------


def test_decide_three_outcomes():
    assert decide(Interval(0.5, 0.1, 0.9, 3, ""), "r").word == REPRODUCED
    v = decide(Interval(-0.5, -0.9, -0.1, 3, ""), "the reason")
    assert v.word == NOT_REPRODUCED and v.label == "not reproduced at this scale (the reason)"
    assert decide(Interval(0.1, -0.2, 0.4, 3, ""), "r").label == "inconclusive (CI overlaps 0)"
    assert decide(t_ci([0.3]), "r").word == INCONCLUSIVE  # one seed: no interval
    assert all_of(decide(Interval(1, 1, 1, 3, ""), ""), decide(Interval(0, -1, 1, 3, ""), "")).word == INCONCLUSIVE
    assert all_of(decide(Interval(1, 1, 1, 3, ""), ""), decide(Interval(-1, -2, -1, 3, ""), "x")).label == \
        "not reproduced at this scale (x)"


def test_intervals():
    iv = t_ci([1.0, 2.0, 3.0])
    assert iv.est == 2.0 and iv.lo == pytest.approx(2 - 4.302653 / np.sqrt(3), rel=1e-5) and iv.n == 3
    s, per = seed_slopes([[0, 1, 2], [0, 1, 2]], [[0.1, 0.2, 0.3], [0.12, 0.24, 0.36]])
    assert per == pytest.approx([0.1, 0.12]) and s.est == pytest.approx(0.11) and s.n == 2
    assert seed_slopes([[0, 1], [0, 1]], [[3, 3], [3, 3]])[1] == [0.0, 0.0]  # flat: exactly 0, no spurious sign
    assert binomial_se(0.5, 100) == pytest.approx(0.05)
    b = bootstrap_ci(lambda a: a.mean(), np.arange(100.0), n_boot=300)
    assert b.lo < 49.5 < b.hi


SEPARATED = ([0.60, 0.62, 0.61], [0.40, 0.41, 0.42])   # real clearly above random
OVERLAP = ([0.50, 0.60, 0.40], [0.55, 0.45, 0.52])


@pytest.mark.parametrize("judge", [gini.judge, per_class.judge])
def test_rule_gini_and_per_class(judge):
    assert judge(*SEPARATED)[0].word == REPRODUCED
    assert judge(*SEPARATED[::-1])[0].word == NOT_REPRODUCED
    assert judge(*OVERLAP)[0].word == INCONCLUSIVE


def test_rule_easy_hard_dispersion():
    rng = np.random.default_rng(0)
    runs = 40
    spread = rng.binomial(runs, rng.choice([0.02, 0.9], 400))   # easy and hard examples: D >> 1
    flat = rng.binomial(runs, np.full(400, 0.9))               # equally hard: D ~ 1
    flat2 = rng.binomial(runs, np.full(400, 0.85))
    assert easy_hard.dispersion(flat, runs) == pytest.approx(1.0, abs=0.25)
    assert easy_hard.judge({"real": spread, "randX": flat, "random labels": flat2}, runs)[0].word == REPRODUCED
    assert easy_hard.judge({"real": flat, "randX": spread, "random labels": flat2}, runs)[0].word == NOT_REPRODUCED
    same = rng.binomial(runs, np.full(400, 0.9))
    assert easy_hard.judge({"real": flat, "randX": same, "random labels": flat2}, runs)[0].word == INCONCLUSIVE


def test_rule_csr():
    def per_seed(ys):
        return [list(zip([0, 0.5, 1], ys[i:i + 3])) for i in (0, 3, 6)]
    up = {k: per_seed([0.03 + 0.1 * q + e for q, e in zip([0, 0.5, 1] * 3, np.tile([0, 0.004, -0.003], 3))])
          for k in ("random labels", "randX")}
    down = {k: [[(q, 0.2 - c) for q, c in pts] for pts in v] for k, v in up.items()}
    flat = {k: per_seed([0.05 + e for e in [0.01, -0.01, 0.0, -0.01, 0.01, 0.0, 0, 0.01, -0.01]]) for k in up}
    assert csr_noise.judge([10, 12, 11], up)[0].word == REPRODUCED
    assert csr_noise.judge([10, 12, 11], down)[0].word == NOT_REPRODUCED
    assert csr_noise.judge([-10, -12, -11], up)[0].word == NOT_REPRODUCED
    assert csr_noise.judge([10, 12, 11], flat)[0].word == INCONCLUSIVE
    assert csr_noise.judge([5, -6, 1], up)[0].word == INCONCLUSIVE


def test_rule_dropout():
    none_m, none_v = [1.0, 1.0, 0.99], [0.80, 0.81, 0.80]
    assert dropout.judge("d", none_m, [0.4, 0.42, 0.38], none_v, [0.81, 0.82, 0.80])[0].word == REPRODUCED
    assert dropout.judge("d", none_m, [0.4, 0.42, 0.38], none_v, [0.60, 0.62, 0.61])[0].word == NOT_REPRODUCED
    more = dropout.judge("d", [0.60, 0.62, 0.61], [0.80, 0.81, 0.80], none_v, [0.81, 0.82, 0.80])[0]
    assert more.word == NOT_REPRODUCED and "does not lower" in more.detail  # dropout raises memorization
    assert dropout.judge("d", none_m, [0.9, 1.0, 1.1], none_v, [0.81, 0.82, 0.80])[0].word == INCONCLUSIVE


def test_rule_epochs():
    n = [250, 500, 1000]
    real = [[62, 70, 71], [60, 69, 72], [64, 71, 70]]      # grows with N
    flat = [[22, 23, 21], [23, 22, 22], [21, 24, 21]]      # Gaussian inputs: flat (the committed full run's shape)
    steep = [[20, 40, 80], [22, 41, 79], [19, 42, 81]]
    assert epochs.judge(n, real, steep)[0].word == REPRODUCED
    assert epochs.judge(n, real, flat)[0].word == NOT_REPRODUCED
    assert epochs.judge(n, real, [[62, 69, 72], [61, 70, 70], [63, 71, 71]])[0].word == INCONCLUSIVE


# -- data -------------------------------------------------------------------------------------------------------


def test_uniform_random_labels_keep_about_one_in_k():
    y = np.repeat(np.arange(10), 500)
    y2, idx = uniform_random_labels(y, 10, 1.0, seed=0)
    assert len(idx) == len(y) and 0.08 < np.mean(y2 == y) < 0.12  # 'randY' would give 0
    d = paper_data(100, SCALES["tiny"])
    u, _ = apply_corruption(d, "randY-uniform", 1.0, 0)
    assert u.spec.endswith("randYu1s0") and u.info["corruption"]["kind"] == "randY-uniform"


def test_norm_matched_random_inputs():
    d = paper_data(100, SCALES["tiny"])
    m = norm_matched_random_inputs(d, 0)
    assert np.allclose(input_norms(m, 1), input_norms(d, 1), rtol=1e-4)
    assert not np.allclose(m.x_train, d.x_train) and (m.y_train == d.y_train).all()


# -- bad input: one line, nothing written -----------------------------------------------------------------------


@pytest.mark.parametrize("only", ["7", "0", "junk", "1,x", "1;2", "-1", "1.5"])
def test_bad_only_is_one_line_and_writes_nothing(only, tmp_path):
    out = tmp_path / "o"
    _one_line_error(_run(["reproduce", "--tiny", "--only", only, "--out", str(out)]), "--only")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("seeds", ["0", "-2", "x"])
def test_bad_seeds_is_one_line_and_writes_nothing(seeds, tmp_path):
    _one_line_error(_run(["reproduce", "--tiny", "--seeds", seeds, "--out", str(tmp_path / "o")]), "--seeds")
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValidationError, match="--seeds"):
        run_reproduce(tmp_path / "o", scale="tiny", seeds=0)
    assert list(tmp_path.iterdir()) == []


def test_out_holding_a_user_folder(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    _one_line_error(_run(["reproduce", "--tiny", "--out", str(out)]), "--force")  # without --force
    _one_line_error(_run(["reproduce", "--tiny", "--force", "--out", str(out)]), "not a sensprune")
    assert [p.name for p in out.iterdir()] == ["keep.txt"] and len(list(tmp_path.iterdir())) == 1


def test_out_holding_another_sensprune_output_is_refused_even_with_force(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "meta.json").write_text(json.dumps({"kind": "scores", "format_version": 1}))
    _one_line_error(_run(["reproduce", "--tiny", "--out", str(out)]), "--force")
    _one_line_error(_run(["reproduce", "--tiny", "--force", "--out", str(out)]), "not a reproduce folder")
    assert [p.name for p in out.iterdir()] == ["meta.json"] and len(list(tmp_path.iterdir())) == 1


def test_bad_seed_is_one_line(tmp_path):
    _one_line_error(_run(["reproduce", "--tiny", "--seed", "x", "--out", str(tmp_path / "o")]), "seed")
    assert not (tmp_path / "o").exists()


def test_only_seeds_and_force_over_an_earlier_run(tmp_path):
    out = tmp_path / "r"
    r = _run(["reproduce", "--tiny", "--quiet", "--only", "2", "--seeds", "3", "--out", str(out)])
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "meta.json").read_text())
    assert meta["experiments"]["2"]["config"]["seeds"] == [0, 1, 2] and "3 seeds" in r.stdout
    (out / "README.md").write_text("notes")  # kept across --force; the earlier run's files are replaced
    r = _run(["reproduce", "--tiny", "--quiet", "--only", "6,1", "--force", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert [ln[:2] for ln in r.stdout.splitlines() if not ln.startswith(" ")] == ["1.", "6."]
    assert (out / "README.md").read_text() == "notes" and not list(out.glob("exp2_*"))
    assert sorted(json.loads((out / "meta.json").read_text())["experiments"]) == ["1", "6"]


def test_parse_only():
    assert parse_only(None) == [1, 2, 3, 4, 5, 6]
    assert parse_only(" 3, 1,3") == [1, 3]
    with pytest.raises(ValidationError, match="from 1 to 6"):
        parse_only("7")


@pytest.mark.slow
@needs_fashion
def test_quick_run_finishes_with_six_verdicts(tmp_path):
    r = _run(["reproduce", "--quick", "--quiet", "--out", str(tmp_path / "q")])
    assert r.exit_code == 0, r.output
    meta = json.loads((tmp_path / "q" / "meta.json").read_text())
    assert len(meta["experiments"]) == 6 and all(m["verdict"] in VERDICT_WORDS for m in meta["experiments"].values())
