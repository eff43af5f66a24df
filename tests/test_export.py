"""``--export-data`` is a faithful copy of the user's data, and ``source_row`` maps every index back to it
(issue 13, items 2 and 3). The CSV cases are checked byte for byte against the source file."""

import csv
import io
import re

import numpy as np
import pytest
from cli_helpers import assert_one_line_error, run_cli

from sensprune.data import load_dataset

# an id that float32 would print as 1.2345679e+08, floats with more digits than float32 holds, and
# class names; CRLF line endings, a blank line and a quoted field must survive too
HEADER = "id,x1,x2,label\r\n"


def _rows(n=40):
    rows = []
    for i in range(n):
        label = ("ant", "bee", "cat")[i % 3]
        x2 = f'"{i * 1.5e-7:.17g}"' if i % 5 == 0 else f"{np.pi * i:.17g}"
        rows.append(f"{123456789 + i},0.{i:02d}12345678901234567,{x2},{label}\r\n")
    return rows


@pytest.fixture(scope="module")
def csv_run(tmp_path_factory):
    """score (1 epoch) -> prune --export-data on a CSV file without a split column."""
    d = tmp_path_factory.mktemp("csv")
    rows = _rows()
    src = d / "data.csv"
    src.write_bytes((HEADER + "".join(rows[:7]) + "\r\n" + "".join(rows[7:])).encode())
    _score_then_export(src, d, widths=8, rule="drop-high", fraction=0.25, export="clean.csv")
    return d, src, rows


def _score_then_export(src, d, *, widths, rule, fraction, export):
    """sensprune score (1 epoch, loss) on CSV ``src`` into ``d/s``, then prune into ``d/p`` with --export-data."""
    r = run_cli(["score", "--dataset", f"csv:{src}", "--epochs", "1", "--widths", str(widths), "--measures", "loss",
                 "--quiet", "--out", d / "s"])
    assert r.exit_code == 0, r.output
    r = run_cli(["prune", "--scores", d / "s", "--by", "loss", "--rule", rule, "--fraction", str(fraction),
                 "--out", d / "p", "--export-data", d / export])
    assert r.exit_code == 0, r.output


def _csv_rows(path):
    return list(csv.DictReader(io.StringIO(path.read_text())))


def test_csv_export_is_the_source_minus_the_dropped_rows_byte_for_byte(csv_run):
    d, src, rows = csv_run
    sel = _csv_rows(d / "p" / "selection.csv")
    dropped = {int(r["source_row"]) for r in sel if r["kept"] == "0"}
    assert len(dropped) == 8  # 25% of the 32 training rows
    want = HEADER + "".join(r for i, r in enumerate(rows[:7]) if i not in dropped) + "\r\n" \
        + "".join(r for i, r in enumerate(rows) if i >= 7 and i not in dropped)
    assert (d / "clean.csv").read_bytes() == want.encode()
    text = (d / "clean.csv").read_text()
    assert "123456789," in text and "e+08" not in text and "split" not in text
    assert "0.0012345678901234567" in text  # every digit of the source text, not a float32 rendering


def test_source_row_maps_scores_and_selection_to_the_csv_rows(csv_run):
    d, src, rows = csv_run
    ds = load_dataset(f"csv:{src}")
    scores = _csv_rows(d / "s" / "scores.csv")
    assert list(scores[0])[:3] == ["index", "source_row", "label"]
    names = ("ant", "bee", "cat")
    for r in scores:
        i, row = int(r["index"]), int(r["source_row"])
        assert row == ds.source_rows()[i]
        # the row of the file (pandas numbering: data rows from 0) holds the same example
        fields = next(csv.reader([rows[row]]))
        np.testing.assert_allclose(ds.x_train[i], np.float32([fields[0], fields[1], fields[2]]))
        assert names[int(r["label"])] == fields[3]
    sel = _csv_rows(d / "p" / "selection.csv")
    assert [r["source_row"] for r in sel] == [r["source_row"] for r in scores]
    keep = np.load(d / "p" / "keep.npy")  # keep.npy stays an index into the training split
    assert sorted(int(sel[i]["index"]) for i in keep) == keep.tolist()


def test_csv_with_split_column_keeps_test_rows_in_place(tmp_path):
    lines = [f"{100000001 + i},{i / 7:.17g},{'test' if i % 4 == 0 else 'train'},{i % 2}\n" for i in range(24)]
    src = tmp_path / "s.csv"
    src.write_text("id,f,split,label\n" + "".join(lines))
    _score_then_export(src, tmp_path, widths=4, rule="random", fraction=0.5, export="c.csv")
    dropped = {int(r["source_row"]) for r in _csv_rows(tmp_path / "p" / "selection.csv") if r["kept"] == "0"}
    assert len(dropped) == 9 and not any(i % 4 == 0 for i in dropped)  # only training rows are dropped
    want = "id,f,split,label\n" + "".join(ln for i, ln in enumerate(lines) if i not in dropped)
    assert (tmp_path / "c.csv").read_text() == want


def test_npz_export_is_the_original_arrays_indexed(tmp_path):
    rng = np.random.default_rng(0)
    arrays = {"x_train": rng.integers(0, 256, (50, 4, 4), dtype=np.uint8), "y_train": np.arange(50) % 5,
              "x_test": rng.integers(0, 256, (10, 4, 4), dtype=np.uint8), "y_test": np.arange(10) % 5}
    np.savez(tmp_path / "d.npz", **arrays)
    r = run_cli(["score", "--dataset", f"npz:{tmp_path / 'd.npz'}", "--subsample", "30", "--epochs", "1",
                 "--widths", "4", "--measures", "loss", "--quiet", "--out", tmp_path / "s"])
    assert r.exit_code == 0, r.output
    r = run_cli(["prune", "--scores", tmp_path / "s", "--by", "loss", "--rule", "drop-low", "--fraction", "0.3",
                 "--per-class", "--out", tmp_path / "p", "--export-data", tmp_path / "c.npz"])
    assert r.exit_code == 0, r.output
    sel = _csv_rows(tmp_path / "p" / "selection.csv")
    kept_rows = [int(r["source_row"]) for r in sel if r["kept"] == "1"]
    assert len(kept_rows) == len(np.load(tmp_path / "p" / "keep.npy")) < 30 == len(sel)
    assert len({r["source_row"] for r in sel}) == 30 and max(int(r["source_row"]) for r in sel) < 50
    with np.load(tmp_path / "c.npz") as z:
        assert sorted(z.files) == ["x_test", "x_train", "y_test", "y_train"]
        assert z["x_train"].dtype == np.uint8  # the file's own dtype, not float32 in [0, 1]
        np.testing.assert_array_equal(z["x_train"], arrays["x_train"][kept_rows])
        np.testing.assert_array_equal(z["y_train"], arrays["y_train"][kept_rows])
        np.testing.assert_array_equal(z["x_test"], arrays["x_test"])
        np.testing.assert_array_equal(z["y_test"], arrays["y_test"])


@pytest.mark.parametrize("dataset, bad, want", [("csv", "x.npz", ".csv"), ("csv", "x.txt", ".csv"),
                                                ("npz", "x.csv", ".npz"), ("npz", "x", ".npz")])
def test_export_extension_must_match_the_format(csv_run, tmp_path, dataset, bad, want):
    d = csv_run[0]
    if dataset == "npz":
        rng = np.random.default_rng(1)
        np.savez(tmp_path / "d.npz", x_train=rng.normal(size=(20, 3)), y_train=np.arange(20) % 2,
                 x_test=rng.normal(size=(4, 3)), y_test=np.arange(4) % 2)
        r = run_cli(["score", "--dataset", f"npz:{tmp_path / 'd.npz'}", "--epochs", "1", "--widths", "4",
                     "--measures", "loss", "--quiet", "--out", tmp_path / "s"])
        assert r.exit_code == 0, r.output
        scores = tmp_path / "s"
    else:
        scores = d / "s"
    before = sorted(p.name for p in tmp_path.iterdir())
    r = run_cli(["prune", "--scores", scores, "--by", "loss", "--rule", "random", "--fraction", "0.5",
                 "--out", tmp_path / "p", "--export-data", tmp_path / bad])
    assert_one_line_error(r, f"must end in {want}")
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written: no --out, no export


def test_source_row_of_builtin_digits_is_the_row_of_load_digits(tmp_path):
    from sklearn.datasets import load_digits

    full = load_digits().data / 16.0
    for sub in (None, 300):
        ds = load_dataset("digits", subsample=sub)
        rows = ds.source_rows()
        assert len(set(rows.tolist())) == ds.n_train and rows.max() < len(full)
        np.testing.assert_allclose(ds.x_train.reshape(ds.n_train, -1), full[rows], rtol=1e-6)
    r = run_cli(["score", "--dataset", "digits", "--subsample", "200", "--epochs", "1", "--widths", "8",
                 "--measures", "loss", "--quiet", "--out", tmp_path / "s"])
    assert r.exit_code == 0, r.output
    scores = _csv_rows(tmp_path / "s" / "scores.csv")
    rows = np.array([int(r["source_row"]) for r in scores])
    labels = np.array([int(r["label"]) for r in scores])
    np.testing.assert_array_equal(load_digits().target[rows], labels)


def test_source_row_of_an_imagefolder_is_the_file(tmp_path):
    from PIL import Image

    for split, n in (("train", 3), ("test", 1)):
        for c in ("ant", "bee"):
            (tmp_path / "f" / split / c).mkdir(parents=True)
            for i in range(n):
                Image.fromarray(np.full((4, 4), 40 * i, np.uint8)).save(tmp_path / "f" / split / c / f"{i}.png")
    ds = load_dataset(f"imagefolder:{tmp_path / 'f'}")
    assert ds.source_rows().tolist() == ["train/ant/0.png", "train/ant/1.png", "train/ant/2.png",
                                         "train/bee/0.png", "train/bee/1.png", "train/bee/2.png"]
    r = run_cli(["score", "--dataset", f"imagefolder:{tmp_path / 'f'}", "--epochs", "1", "--widths", "4",
                 "--measures", "loss", "--quiet", "--out", tmp_path / "s"])
    assert r.exit_code == 0, r.output
    assert [r["source_row"] for r in _csv_rows(tmp_path / "s" / "scores.csv")] == ds.source_rows().tolist()


def test_csv_export_keeps_a_byte_order_mark_and_a_missing_final_newline(tmp_path):
    from sensprune.pruning.selection import Selection, export_data

    body = "label,x\n" + "".join(f"{i % 2},{i}.000\n" for i in range(9)) + "1,9.000"  # no newline at the end
    src = tmp_path / "bom.csv"
    src.write_bytes(b"\xef\xbb\xbf" + body.encode())
    ds = load_dataset(f"csv:{src}")  # the mark is not part of the first column's name
    rows = ds.source_rows()
    drop = np.flatnonzero(rows == rows.min())  # drop the first training row of the file
    keep = np.setdiff1d(np.arange(ds.n_train), drop)
    export_data(ds, Selection(keep, drop), tmp_path / "out.csv")
    lines = body.splitlines(keepends=True)
    want = lines[0] + "".join(ln for i, ln in enumerate(lines[1:]) if i != rows.min())
    assert (tmp_path / "out.csv").read_bytes() == b"\xef\xbb\xbf" + want.encode()


def test_source_row_round_trips_through_the_score_folder(tmp_path):
    from sensprune.scoring.table import ScoreTable, load_scores, save_scores

    for rows in (np.array([4, 0, 7], np.int64), np.array(["train/a/1.png", "train/b/é.png", "x"])):
        t = ScoreTable(np.arange(3), np.array([0, 1, 0]), {"loss": np.array([0.1, 0.2, 0.3])}, source_row=rows)
        save_scores(t, tmp_path / str(rows.dtype))
        back = load_scores(tmp_path / str(rows.dtype))
        assert back.source_row.tolist() == rows.tolist() and back.measures == ["loss"]
        col = [r["source_row"] for r in _csv_rows(tmp_path / str(rows.dtype) / "scores.csv")]
        assert col == [str(v) for v in rows.tolist()]


@pytest.mark.parametrize("spec, path, fmt", [
    ("csv:d.csv", "o.csv", "csv"), ("csv:d.csv?subsample=50", "o.CSV", "csv"), ("npz:d.npz+randY0.2s0", "o.npz", "npz"),
    ("digits", "o.npz", "npz"), ("plugin:m:f", "o.npz", "npz"), ("imagefolder:imgs", "kept.txt", "file-list"),
])
def test_check_export_path_accepts_the_matching_extension(spec, path, fmt):
    from sensprune.pruning.export import check_export_path

    assert check_export_path(spec, path) == fmt


@pytest.mark.parametrize("spec, path, match", [
    ("csv:d.csv", "o.npz", r"dataset 'csv:d\.csv' is exported as the CSV file's own rows \(csv\), so the file must "
                           r"end in \.csv, not '\.npz'"),
    ("npz:d.npz", "o", r"dataset 'npz:d\.npz' is exported as arrays \(npz\), so the file must end in \.npz, not "
                       r"'no extension'"),
    ("digits?subsample=100", "o.csv", r"dataset 'digits' is exported as arrays \(npz\), so the file must end in \.npz"),
    ("imagefolder:imgs", "kept.npz", r"dataset 'imagefolder:imgs' is exported as a list of image files \(file-list\), "
                                     r"so the file must end in \.txt, not '\.npz'"),
])
def test_check_export_path_refuses_another_extension(spec, path, match):
    from sensprune.errors import ValidationError
    from sensprune.pruning.export import check_export_path

    with pytest.raises(ValidationError, match=r"^--export-data " + re.escape(path) + ": " + match):
        check_export_path(spec, path)
