"""The report of a score folder that holds memorization: its histogram, a scatter against the paper's
loss_sensitivity (else the first other measure, said in the caption) and the most memorized examples with
their labels: a gallery for image data, a table of the top rows for other data."""

import json
import re
import shutil

import numpy as np
import pytest
from cli_helpers import run_cli

from sensprune.reporting import plots

SMALL = ["--epochs", "2", "--widths", "16", "--mem-models", "8", "--mem-subset", "0.5", "--quiet"]


def _score(out, *args):
    r = run_cli(["score", *args, *SMALL, "--out", out])
    assert r.exit_code == 0, r.output
    return out


def _report(folder):
    r = run_cli(["report", folder, "--top", "5", "--quiet"])
    assert r.exit_code == 0, r.output
    return (folder / "report" / "report.html").read_text(encoding="utf-8")


def _figures(text):
    """{figure file name: caption} of the page."""
    return dict(re.findall(r"data-file='([^']*)'><figcaption>([^<]*)", text))


@pytest.fixture(scope="module")
def digits_dir(tmp_path_factory):
    return _score(tmp_path_factory.mktemp("mem") / "digits", "--dataset", "digits", "--subsample", "120",
                  "--corrupt", "randY:0.2", "--measures", "memorization,loss_sensitivity,loss", "--probe-size", "64")


def test_image_data_page_has_histogram_scatter_and_gallery(digits_dir, tmp_path):
    folder = tmp_path / "s"
    shutil.copytree(digits_dir, folder)
    text = _report(folder)
    figs = _figures(text)
    assert "<h2>Memorization (Feldman &amp; Zhang 2020)</h2>" in text
    assert "from 8 models, each trained on a random 0.5 of the training set to fit" in text
    note = json.loads((folder / "meta.json").read_text())["measure_notes"]["memorization"]
    assert note["models_not_fit"] > 0  # 20% flipped labels: the 16-unit models do not fit them in 100 epochs
    assert f"{note['models_not_fit']} of 8 subset models stopped at their epoch cap before fitting" in text
    assert figs["memorization_hist.png"].startswith("memorization of each training example, in [−1, 1]; red = "
                                                    "corrupted label")
    assert figs["memorization_scatter.png"].startswith("memorization against loss_sensitivity, the paper&#x27;s "
                                                       "measure;")
    assert "<h2>Most memorized examples</h2>" in text
    assert figs["gallery_memorized.png"].startswith("The most memorized examples (y, the given label, is the one "
                                                    "the subset models trained on). Each title")
    for name in figs:
        assert (folder / "report" / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the rows under the gallery: the top 5 by memorization, with their labels, SE and n_in
    table = text.split("<h2>Most memorized examples</h2>")[1].split("</table>")[0]
    assert "<th>given label</th><th>predicted</th><th>memorization</th><th>memorization_se</th>" \
           "<th>memorization_n_in</th><th>corrupted</th>" in table
    mem = np.genfromtxt(folder / "scores.csv", delimiter=",", names=True)["memorization"]
    top = np.sort(np.nan_to_num(mem, nan=-np.inf))[::-1][:5]
    shown = [float(v) for v in re.findall(r"<tr>(?:<td[^>]*>[^<]*</td>){4}<td class='num'>([^<]*)</td>", table)]
    np.testing.assert_allclose(shown, top, rtol=1e-3)
    # the generic gallery stays, by the page's measure (loss_sensitivity)
    assert "gallery_most.png" in figs and "gallery_least.png" in figs


def test_scatter_falls_back_to_the_first_other_measure_and_says_so(digits_dir, tmp_path):
    folder = _score(tmp_path / "s", "--dataset", "digits", "--subsample", "120", "--measures", "memorization,el2n,loss")
    figs = _figures(_report(folder))
    assert figs["memorization_scatter.png"].startswith(
        "memorization against el2n, the first other measure in this folder (the paper&#x27;s loss_sensitivity is "
        "not in it);")


def test_memorization_alone_has_no_scatter_and_one_most_memorized_gallery(tmp_path):
    folder = _score(tmp_path / "s", "--dataset", "digits", "--subsample", "120", "--measures", "memorization")
    text = _report(folder)
    figs = _figures(text)
    assert "No other measure in this folder to set memorization against." in text
    assert "memorization_scatter.png" not in figs and {"memorization_hist.png", "gallery_memorized.png"} <= set(figs)
    assert "gallery_most.png" not in figs and "gallery_least.png" in figs  # "most" is the memorization gallery


def test_non_image_data_gets_a_table_of_the_top_rows(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(90, 5)).astype(np.float32), np.arange(90) % 3
    np.savez(tmp_path / "d.npz", x_train=x + y[:, None], y_train=y, x_test=x[:30] + y[:30, None], y_test=y[:30])
    folder = _score(tmp_path / "s", "--dataset", f"npz:{tmp_path / 'd.npz'}", "--measures", "memorization,loss")
    text = _report(folder)
    figs = _figures(text)
    assert "gallery_memorized.png" not in figs and "memorization_hist.png" in figs
    table = text.split("<h2>Most memorized examples</h2>")[1].split("</table>")[0]
    assert "<th>memorization</th><th>memorization_se</th><th>memorization_n_in</th><th>x0</th>" in table
    assert table.count("<tr>") == 1 + 5  # the header and the top 5 rows


def test_histogram_and_scatter_plots(tmp_path):
    mem = np.r_[np.linspace(-0.2, 1, 50), np.nan]
    corrupted = np.arange(51) % 5 == 0
    assert plots.score_histogram(mem, tmp_path / "h.png", measure="memorization", corrupted=corrupted,
                                 value_range=(-1, 1)) == tmp_path / "h.png"
    assert plots.score_scatter(np.arange(51.0), mem, tmp_path / "s.png", xlabel="loss", ylabel="memorization",
                               corrupted=corrupted) == tmp_path / "s.png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["h.png", "s.png"]  # no temporary file left
