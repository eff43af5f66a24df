"""``sensprune reproduce`` settings file (read with tomllib, unknown keys refused), the fit threshold of exps 2-3,
exp 2 at several training lengths, exp 5's TOST, and one t-test implementation in the package."""

import re
import subprocess
from pathlib import Path

import pytest

from sensprune.errors import ValidationError
from sensprune.reproduce import dropout, gini
from sensprune.reproduce.settings import DEFAULT_SETTINGS, load_settings, provenance
from sensprune.reproduce.verdict import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, Verdict, judge_fitted
from cli_helpers import assert_one_line_error as _one_line_error, run_cli as _run

ROOT = Path(__file__).resolve().parents[1]


def test_committed_settings_fix_every_scale_and_both_exp2_lengths():
    st = load_settings(ROOT / DEFAULT_SETTINGS)
    assert {"tiny", "quick", "full"} <= set(st.scales)
    full = st.scales["full"]
    assert full.sens_epochs == (40, 60) and full.rules.fit_threshold == 0.9 and full.rules.val_margin == 0.02
    assert any(c["experiment"] == 2 and c["setting"] == "sens_epochs" for c in st.changes)


def _edit(tmp_path, old, new):
    text = (ROOT / DEFAULT_SETTINGS).read_text()
    assert old in text
    p = tmp_path / "s.toml"
    p.write_text(text.replace(old, new, 1))
    return p


@pytest.mark.parametrize("old,new,msg", [
    ("fit_threshold = 0.9", "fit_threshold = 0.9\nfit_treshold = 0.9", "unknown key"),
    ("sens_seeds = 2\n", "sens_seeds = 2\nsens_sedes = 2\n", "unknown key"),
    ("[rules]", "[rulez]\n[rules]", "unknown key"),
    ("easy_runs = 4\n", "", "missing key"),
    ("fit_threshold = 0.9", "fit_threshold = [", "valid TOML"),
])
def test_bad_settings_refused(tmp_path, old, new, msg):
    with pytest.raises(ValidationError, match=msg):
        load_settings(_edit(tmp_path, old, new))


def test_bad_settings_on_the_cli_is_one_line_and_writes_nothing(tmp_path):
    bad = _edit(tmp_path, "fit_threshold = 0.9", "fit_threshold = 0.9\nbogus = 1")
    _one_line_error(_run(["reproduce", "--tiny", "--settings", str(bad), "--out", str(tmp_path / "o")]), "bogus")
    _one_line_error(_run(["reproduce", "--tiny", "--settings", str(tmp_path / "none.toml"),
                          "--out", str(tmp_path / "o")]), "--settings")
    assert not (tmp_path / "o").exists()


def test_provenance_names_file_and_commit(tmp_path):
    sha = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    text = provenance(ROOT / DEFAULT_SETTINGS)
    assert "settings.toml at commit " in text
    if sha.returncode == 0:
        assert sha.stdout.strip() in text
    outside = tmp_path / "s.toml"
    outside.write_text("")
    assert provenance(outside).endswith("at commit unknown")  # no git repository there


def test_tiny_run_reads_its_settings_and_names_them_on_every_line(tmp_path):
    """A changed setting in a --settings file changes the run; every verdict line names that file and commit."""
    s = _edit(tmp_path, "sens_epochs = [1, 2]", "sens_epochs = [1, 3]")
    out = tmp_path / "o"
    r = _run(["reproduce", "--tiny", "--quiet", "--only", "2", "--settings", str(s), "--out", str(out)])
    assert r.exit_code == 0, r.output
    text = (out / "verdicts.md").read_text()
    lines = [ln for ln in text.splitlines() if re.match(r"^(\d\.|    - )", ln)]
    assert lines and all(re.search(r"Settings: .*s\.toml at commit \S+ \[scale\.tiny\]\.$", ln) for ln in lines)
    assert "1 epochs:" in lines[0] and "3 epochs:" in lines[0]  # both training lengths in the headline
    assert "after 1 epochs" in text and "after 3 epochs" in text
    assert "Settings changed after a result was seen" in text and "+0.025 [-0.025, +0.074]" in text
    assert "did not fit" in lines[0]  # tiny runs reach ~0.1 training accuracy: excluded, reported


def test_fit_threshold_excludes_runs_that_did_not_learn():
    a, b = [0.6, 0.62, 0.61, 0.63], [0.4, 0.41, 0.42, 0.2]
    v, iv, k = judge_fitted(a, b, [0.95, 0.97, 0.99, 0.2], [0.93, 0.91, 0.95, 0.99], 0.9, "r")
    assert v.word == REPRODUCED and k == 3 and iv.n == 3  # the 4th seed (real at 0.2) is left out
    v, _, k = judge_fitted(a, b, [0.5, 0.97, 0.3, 0.2], [0.93, 0.91, 0.95, 0.99], 0.9, "r")
    assert v.word == INCONCLUSIVE and v.detail.startswith("did not fit: 1 of 4") and k == 1


def test_exp2_headline_across_lengths():
    r, i = Verdict(REPRODUCED, ""), Verdict(INCONCLUSIVE, "CI overlaps 0")
    assert gini.across_lengths({60: r}) == r
    assert gini.across_lengths({40: r, 60: r}).word == REPRODUCED
    mixed = gini.across_lengths({40: i, 60: r})
    assert mixed.word == INCONCLUSIVE and "40 epochs inconclusive, 60 epochs reproduced" in mixed.detail


def test_exp5_equivalence_margin_and_dropout_vs_others():
    seeds = [0, 1, 2, 3, 4]
    mem = {("none", s): 0.93 + 0.002 * s for s in seeds}
    mem.update({("dropout 0.8", s): 0.25 + 0.003 * s for s in seeds})
    mem.update({("weight decay 0.001", s): 0.88 + 0.004 * s for s in seeds})
    val = {("none", s): 0.79 + 0.001 * (s % 2) for s in seeds}
    val.update({("dropout 0.8", s): 0.789 + 0.002 * (s % 3) for s in seeds})        # within ±0.02
    val.update({("weight decay 0.001", s): 0.74 + 0.002 * (s % 2) for s in seeds})  # 5 points lower
    names = ["none", "dropout 0.8", "weight decay 0.001"]
    res = dropout.judge_all(mem, val, names, seeds, 0.02, 0.05, head="dropout 0.8")
    assert res["dropout 0.8"][0].word == REPRODUCED and res["dropout 0.8"][4] < 0.05  # TOST equivalent
    assert res["weight decay 0.001"][0].word == NOT_REPRODUCED
    assert res["dropout 0.8 vs weight decay 0.001"][0].word == REPRODUCED  # dropout lowers memorization more
    tight = dropout.judge_all(mem, val, names, seeds, 0.0005, 0.05, head="dropout 0.8")
    assert tight["dropout 0.8"][0].word == INCONCLUSIVE  # a margin below the noise: not shown equivalent


def test_one_t_test_implementation():
    hits = []
    for p in (ROOT / "sensprune").rglob("*.py"):
        hits += [f"{p}:{ln}" for ln in p.read_text().splitlines() if re.search(r"def .*t_interval|def paired_t", ln)]
    assert len(hits) == 1 and "benchmark/stats.py" in hits[0], hits
