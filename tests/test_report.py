"""The report stage: each plot function in isolation, the CLI on real score / prune / bench folders,
bad input as a one-line error with nothing written, and a headless-browser check of the page."""

import json
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import assert_one_line_error as _one_line_error
from cli_helpers import run_cli as _run

from sensprune.reporting import plots

PNG = b"\x89PNG\r\n\x1a\n"
REPO = Path(__file__).resolve().parents[1]
CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))  # the screenshot script honours $CHROMIUM


def _is_png(path):
    path = Path(path)
    return path.exists() and path.stat().st_size > 1000 and path.read_bytes()[:8] == PNG


def _check_images(html_path: Path) -> list[str]:
    """Every <img> src is a data URI or an existing file; returns the srcs."""
    text = html_path.read_text(encoding="utf-8")
    srcs = re.findall(r"<img [^>]*src='([^']*)'", text)
    assert srcs
    for s in srcs:
        assert s.startswith("data:image/png;base64,") or (html_path.parent / s).exists(), s[:80]
    for f in re.findall(r"data-file='([^']*)'", text):
        assert _is_png(html_path.parent / f), f
    return srcs


# -- plot functions --------------------------------------------------------------------------------------

RNG = np.random.default_rng(0)
N, K = 60, 3
LABEL = np.repeat(np.arange(K), N // K)
SCORE = RNG.gamma(2.0, size=N)

PLOTS = {
    "sensitivity_map": lambda p: plots.sensitivity_map(SCORE, p, p_label=RNG.random(N), variability=RNG.random(N) / 5,
                                                       corrupted=RNG.random(N) < 0.2, measure="loss_sensitivity"),
    "sensitivity_map_bare": lambda p: plots.sensitivity_map(SCORE, p),
    "lorenz": lambda p: plots.lorenz_curves({"a": np.linspace(0, 1, 101) ** 2, "b": np.linspace(0, 1, 101)}, p,
                                            gini={"a": 0.33, "b": None}),
    "gini": lambda p: plots.gini_over_epochs({"a": [None, 0.2, 0.3], "b": [0.1, 0.1, 0.12]}, p),
    "per_class": lambda p: plots.per_class_heatmap(RNG.random((K, K)) * np.logspace(-3, 0, K), p, off_diagonal=0.4),
    "accuracy_csr": lambda p: plots.accuracy_and_csr({"0": [0.5, 0.7, 0.8]}, p, train_acc={"0": [0.4, 0.6, 0.9]},
                                                     csr=[0.3, 0.2, 0.1]),
    "accuracy_only": lambda p: plots.accuracy_and_csr({"0": [0.5, 0.7], "1": [0.6, 0.7]}, p),
    "gallery_gray": lambda p: plots.gallery(RNG.random((5, 8, 8)), [f"#{i}" for i in range(5)], p, title="t"),
    "gallery_rgb": lambda p: plots.gallery(RNG.random((3, 3, 6, 6)), ["a", "b", "c"], p),
    "gallery_1d": lambda p: plots.gallery(RNG.random((4, 40)), ["a", "b", "c", "d"], p),
    "bench_curves": lambda p: plots.bench_curves({"el2n / drop-high": ([0.1, 0.3], [0.9, 0.85], [0.01, 0.02]),
                                                  "random": ([0.1, 0.3], [0.88, 0.8], [np.nan, 0.03])}, p,
                                                 ylabel="acc", title="t", reference=0.9, zero_line=True),
    "auroc": lambda p: plots.auroc_bars(["loss", "el2n"], [0.8, 0.7], [0.05, np.nan], p),
    "roc": lambda p: plots.roc_curves({"loss": np.linspace(0, 1, 21) ** 0.5}, {"loss": 0.8}, p),
    "kept_dropped": lambda p: plots.kept_dropped_hist(SCORE, LABEL, SCORE < 3, p, measure="el2n"),
}


@pytest.mark.parametrize("name", sorted(PLOTS))
def test_plot_writes_a_png(name, tmp_path):
    out = tmp_path / "sub" / f"{name}.png"
    assert PLOTS[name](out) == out
    assert _is_png(out)
    assert [p.name for p in out.parent.iterdir()] == [out.name]  # no temporary file left


# -- polish: one colour per measure, legends off the data, once-computed measures as points --------------

def _figures(monkeypatch, calls):
    """Draw each ``calls[name](path)`` and return {name: Figure} (the figure is captured at save time)."""
    figs = {}
    real = plots._save

    def capture(fig, out):
        figs[current[0]] = fig
        return real(fig, out)

    monkeypatch.setattr(plots, "_save", capture)
    current = [None]
    for name, draw in calls.items():
        current[0] = name
        with tempfile.TemporaryDirectory() as d:
            draw(Path(d) / f"{name}.png")
    return figs


MEASURES3 = ("loss_sensitivity", "el2n", "input_grad")


def _measure_calls():
    f = [0.1, 0.3]
    return {
        "lorenz": lambda p: plots.lorenz_curves({m: np.linspace(0, 1, 11) ** (i + 1) for i, m in enumerate(MEASURES3)},
                                                p),
        "gini": lambda p: plots.gini_over_epochs({"loss_sensitivity": [0.1, 0.2, 0.3], "el2n": [None, 0.4, 0.4],
                                                  "input_grad": [0.2, 0.25, 0.3]}, p, computed_at={"el2n": [2]}),
        "roc": lambda p: plots.roc_curves({m: np.linspace(0, 1, 21) ** (i + 1) for i, m in enumerate(MEASURES3)},
                                          {m: 0.7 for m in MEASURES3}, p),
        "auroc": lambda p: plots.auroc_bars(list(MEASURES3), [0.8, 0.7, 0.6], [0.01] * 3, p),
        "bench": lambda p: plots.bench_curves({**{f"{m} / drop-high": (f, [0.9, 0.8], [0.01, 0.01]) for m in MEASURES3},
                                               "el2n / drop-low": (f, [0.85, 0.8], [0.01, 0.01]),
                                               "random": (f, [0.88, 0.8], [0.01, 0.01])}, p,
                                              ylabel="acc", title="t"),
    }


def test_each_measure_has_one_colour_in_every_plot(monkeypatch):
    from matplotlib.colors import to_hex

    figs = _figures(monkeypatch, _measure_calls())
    seen = {}
    for name, fig in figs.items():
        ax = fig.axes[0]
        for line in ax.get_lines():
            m = plots._split_label(line.get_label().split(" (")[0])[0]
            if m in MEASURES3:
                seen.setdefault(m, set()).add((name, to_hex(line.get_color())))
        if name == "auroc":
            for patch, m in zip(ax.patches, MEASURES3):
                seen.setdefault(m, set()).add((name, to_hex(patch.get_facecolor())))
    for m in MEASURES3:
        assert {fig for fig, _ in seen[m]} == set(figs), m  # drawn in every figure ...
        assert {c for _, c in seen[m]} == {to_hex(plots.measure_color(m))}, m  # ... in one colour
    assert len({plots.measure_color(m) for m in MEASURES3 + ("random",)}) == 4
    assert plots.measure_color("my_plugin") == plots.measure_color("my_plugin")  # unknown names: stable


def test_legends_do_not_cover_the_data(monkeypatch):
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    calls = {**_measure_calls(), **{k: PLOTS[k] for k in ("sensitivity_map", "accuracy_csr", "kept_dropped")}}
    for name, fig in _figures(monkeypatch, calls).items():
        renderer = FigureCanvasAgg(fig).get_renderer()
        legends = [ax.get_legend() for ax in fig.axes if ax.get_legend() is not None] + list(fig.legends)
        assert legends, name
        for leg in legends:
            box = leg.get_window_extent(renderer)
            for ax in fig.axes:
                if ax.axison:
                    assert not box.overlaps(ax.get_window_extent(renderer)), (name, ax.get_title())


def test_once_computed_measures_are_points_not_flat_lines(monkeypatch):
    from sensprune.reporting.scores import computed_at

    fig = _figures(monkeypatch, {"gini": _measure_calls()["gini"]})["gini"]
    lines = {ln.get_label().split(" (")[0]: ln for ln in fig.axes[0].get_lines()}
    assert lines["el2n"].get_linestyle() == "None" and list(lines["el2n"].get_xdata()) == [2]
    assert "computed at epoch 2" in lines["el2n"].get_label()
    assert lines["input_grad"].get_linestyle() == "-" and len(lines["input_grad"].get_xdata()) == 3
    cfg = {"el2n_epoch": None, "train": {"epochs": 30}, "measure_options": {"grand_epochs": [5, 10]},
           "at_checkpoints": None}
    assert computed_at(cfg, ["el2n", "grand", "loss", "input_grad"]) == {"el2n": [3], "grand": [5, 10]}
    assert computed_at({**cfg, "at_checkpoints": [1, 4]}, ["input_grad"]) == {"input_grad": [1, 4]}


def test_page_title_names_the_folder():
    from sensprune.reporting.build import page_title

    assert page_title("scores", Path("runs/scores")) == "sensprune report: scores in runs/scores"
    assert page_title("selection", Path("p")) == "sensprune report: pruning in p"


# -- CLI on real folders ---------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def score_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "scores"
    r = _run(["score", "--dataset", "digits", "--epochs", "2", "--widths", "16", "--quiet", "--corrupt", "randY:0.1",
              "--measures", "loss_sensitivity,loss,confidence,variability", "--per-class", "--csr",
              "--csr-samples", "50", "--probe-size", "128", "--out", str(out)])
    assert r.exit_code == 0, r.output
    return out


def test_help():
    r = _run(["report", "--help"])
    assert r.exit_code == 0 and "Example" in r.output and "--force" in r.output and "--measure" in r.output
    # the help describes what the bench page draws: ROC curves (bars only without ROC points), and ŷ
    assert "ROC curve" in r.output and "AUROC in the legend" in r.output and "ŷ" in r.output


def test_report_on_score_folder(score_dir, tmp_path):
    folder = tmp_path / "s"
    shutil.copytree(score_dir, folder)
    r = _run(["report", str(folder), "--quiet"])
    assert r.exit_code == 0, r.output
    page = folder / "report" / "report.html"
    srcs = _check_images(page)
    names = {p.name for p in (folder / "report").iterdir()}
    want = {"sensitivity_map", "lorenz", "gini_epochs", "per_class", "accuracy_csr", "gallery_most", "gallery_least"}
    assert {f"{n}.png" for n in want} <= names and len(srcs) == len(want)
    text = page.read_text()
    assert "loss_sensitivity" in text and "mean p(given label | x)" in text and "imagesOk" in text
    assert "cannot be drawn" not in text  # digits reloads (with its corruption replayed) and is drawn
    assert "<th>predicted</th>" in text and "predicted label is not shown" not in text
    assert f"<title>sensprune report: scores in {folder}</title>" in text and "scores folder" not in text
    assert "ŷ = the label the warmup model predicts" in text  # the gallery caption explains its titles
    assert "<th>index</th><th>source row</th><th>given label</th>" in text  # rows of the user's data
    # an existing report is replaced only with --force
    _one_line_error(_run(["report", str(folder)]), "--force")
    r = _run(["report", str(folder), "--measure", "loss", "--top", "4", "--force", "--quiet"])
    assert r.exit_code == 0, r.output
    assert "Most sensitive examples by loss" in page.read_text()


def test_report_custom_out_and_gallery_fallback(score_dir, tmp_path):
    folder = tmp_path / "s"
    shutil.copytree(score_dir, folder)
    meta = json.loads((folder / "meta.json").read_text())
    meta["dataset"]["fingerprint"] = "0000000000000000"  # the data can no longer be matched
    (folder / "meta.json").write_text(json.dumps(meta))
    out = tmp_path / "html" / "digits.html"
    r = _run(["report", str(folder), "--out", str(out), "--quiet"])
    assert r.exit_code == 0, r.output
    srcs = _check_images(out)
    assert (tmp_path / "html" / "digits_files" / "lorenz.png").exists()
    assert not any("gallery" in s for s in srcs)
    assert "inputs cannot be drawn" in out.read_text() and not (folder / "report").exists()


def test_report_on_prune_folder(score_dir, tmp_path):
    shutil.copytree(score_dir, tmp_path / "s")
    r = _run(["prune", "--scores", str(tmp_path / "s"), "--by", "loss", "--rule", "drop-high", "--fraction", "0.2",
              "--out", str(tmp_path / "p")])
    assert r.exit_code == 0, r.output
    r = _run(["report", str(tmp_path / "p"), "--quiet"])
    assert r.exit_code == 0, r.output
    page = tmp_path / "p" / "report" / "report.html"
    _check_images(page)
    text = page.read_text()
    assert "kept_dropped.png" in text and "href='../../s'" in text and "removed %" in text
    # the parameters as a table, not a Python dict
    assert "<th>parameter</th><th>value</th>" in text and "{'" not in text
    assert "<tr><td>fraction</td><td class='num'>0.2</td></tr>" in text
    assert "<tr><td>rule</td><td>drop-high</td></tr>" in text
    assert "<td>beta</td>" not in text and "<td>bins</td>" not in text  # stratified's options: not this rule's
    _one_line_error(_run(["report", str(tmp_path / "p"), "--measure", "loss", "--force"]), "score folders only")


@pytest.mark.parametrize("with_meta", [True, False])
def test_report_on_bench_folder(with_meta, tmp_path):
    """summary.csv / detection.csv in the columns sensprune.benchmark.stats writes; meta.json optional."""
    from sensprune.benchmark.stats import DETECTION_SUMMARY_COLUMNS, SUMMARY_COLUMNS

    b = tmp_path / "b"
    b.mkdir()
    (b / "config.json").write_text("{}")
    if with_meta:
        (b / "meta.json").write_text(json.dumps({"kind": "bench", "format_version": 1}))
    rows = [("full", "none", 0.0, 0.9, np.nan, np.nan, np.nan), ("oracle", "oracle", 0.2, 0.93, 0.01, np.nan, np.nan)]
    for f in (0.1, 0.3):
        rows += [("random", "random", f, 0.88 - f / 10, 0.01, np.nan, np.nan),
                 ("loss", "drop-high", f, 0.91 - f / 20, 0.01, 0.02, 0.01)]
    lines = [",".join(SUMMARY_COLUMNS)]
    for m, rule, f, acc, ci, d, dci in rows:
        vals = {c: "" for c in SUMMARY_COLUMNS}
        vals.update(dataset="digits", corruption="randY:0.2", measure=m, rule=rule, fraction=f, test_acc_mean=acc,
                    test_acc_ci95=ci, d_random_mean=d, d_random_ci95=dci)
        lines.append(",".join(str(vals[c]) for c in SUMMARY_COLUMNS))
    (b / "summary.csv").write_text("\n".join(lines) + "\n")
    det = [",".join(DETECTION_SUMMARY_COLUMNS)]
    for m, a in (("loss", 0.8), ("random", 0.5)):
        vals = {c: "" for c in DETECTION_SUMMARY_COLUMNS}
        vals.update(dataset="digits", corruption="randY:0.2", measure=m, auroc_mean=a, auroc_ci95=0.02)
        det.append(",".join(str(vals[c]) for c in DETECTION_SUMMARY_COLUMNS))
    # the same detection rows with ROC points, as a grid run by this version stores them
    roc = {"loss": " ".join(f"{min(1.0, 3 * f):.4f}" for f in np.linspace(0, 1, 21)),
           "random": " ".join(f"{f:.4f}" for f in np.linspace(0, 1, 21))}
    det_roc = [det[0]] + [line + roc[line.split(",")[2]] for line in det[1:]]  # fills the last column
    (b / "detection.csv").write_text("\n".join(det) + "\n")
    r = _run(["report", str(b), "--quiet"])
    assert r.exit_code == 0, r.output
    _check_images(b / "report" / "report.html")
    assert {"bench_acc_0.png", "bench_diff_0.png", "bench_auroc_0.png"} <= {p.name for p in (b / "report").iterdir()}
    (b / "detection.csv").write_text("\n".join(det_roc) + "\n")
    r = _run(["report", str(b), "--quiet", "--force"])
    assert r.exit_code == 0, r.output
    _check_images(b / "report" / "report.html")
    assert "bench_roc_0.png" in {p.name for p in (b / "report").iterdir()}


# -- bad input -------------------------------------------------------------------------------------------

def _bad_folder(tmp_path, case):
    d = tmp_path / "d"
    d.mkdir()
    if case == "newer format":
        (d / "meta.json").write_text(json.dumps({"kind": "scores", "format_version": 99}))
    elif case == "other kind":
        (d / "meta.json").write_text(json.dumps({"kind": "weird", "format_version": 1}))
    elif case == "bad json":
        (d / "meta.json").write_text("{nope")
    elif case == "missing":
        d.rmdir()
    return d


@pytest.mark.parametrize("case, match", [("not an artifact", "not a sensprune artifact"),
                                         ("newer format", "newer"), ("other kind", "a report needs"),
                                         ("bad json", "not valid JSON"), ("missing", "not a folder")])
def test_bad_folder_is_one_line_and_writes_nothing(case, match, tmp_path):
    d = _bad_folder(tmp_path, case)
    before = sorted(tmp_path.rglob("*"))
    _one_line_error(_run(["report", str(d)]), match)
    assert sorted(tmp_path.rglob("*")) == before


def test_bad_options_write_nothing(score_dir, tmp_path):
    before = sorted(score_dir.rglob("*"))
    _one_line_error(_run(["report", str(score_dir), "--measure", "nope"]), "'nope' is not in the score file")
    _one_line_error(_run(["report", str(score_dir), "--out", str(tmp_path / "x.txt")]), ".html")
    assert sorted(score_dir.rglob("*")) == before and not list(tmp_path.iterdir())


# -- headless browser ------------------------------------------------------------------------------------

@pytest.mark.skipif(not CHROMIUM.exists(), reason=f"needs Chromium, absent from {CHROMIUM} (set $CHROMIUM)")
def test_screenshot_script_all_images_load(tmp_path):
    """benchmarks/report_screenshot.sh with a short warmup: screenshot written, every <img> loaded."""
    shot = tmp_path / "shot.png"
    env = {**os.environ, "EPOCHS": "2", "SEEDS": "1", "TMPDIR": str(tmp_path)}
    r = subprocess.run(["bash", str(REPO / "benchmarks" / "report_screenshot.sh"), str(shot)], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "OK: all" in r.stdout and _is_png(shot)


def test_bench_curve_styles_mark_the_question_and_reweighting():
    """drop-high (the question) is solid, drop-low dotted, reweighting arms (nothing removed) squares."""
    rules = ["reweight:softmax", "drop-high", "drop-low", "threshold"]
    assert plots._rule_style("drop-high", rules) == ("-", "o")
    assert plots._rule_style("drop-low", rules) == (":", "o")
    assert plots._rule_style("reweight:clip", rules)[1] == "s"
    assert plots._rule_style("threshold", rules)[0] not in ("-", ":")
