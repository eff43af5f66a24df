"""Nothing silently wrong (issue 23): misleading words, tracebacks, a full disk and progress bars.

Each refused input is one ``Error:`` line naming the input and the fix (exit 1), with a pinned message, and
nothing written or left behind: every file in the working folder and in the shared inputs is the same, byte
for byte, before and after (the machinery of ``test_bad_inputs.py``).

1. Misleading words: a ``format_version`` that is not an integer, a data file that is not an NPZ archive (never
   numpy's advice to unpickle), a bench TOML value of the wrong type.
2. Tracebacks: a meta.json or TOML nested 100 000 levels deep, a meta.json that is a folder or not UTF-8, a
   score folder's meta.json field of another type than sensprune writes, a damaged compressed NPZ member.
3. A full disk (a monkeypatched ``fsync`` raising ENOSPC for one file; no real tmpfs needed): the message
   names the file under ``--out`` and the operation, and no ``.staging``, ``.partial``, ``_files/`` folder,
   temporary file or half-published output is left -- ``prune --export-data`` publishes both or neither.
4. Progress bars are drawn only on a terminal; every bar goes through ``sensprune.progress``.

A data spec recorded in a meta.json that points outside the folder (``npz:../../../etc/passwd``) is not
refused: a folder's data normally lives outside it (``runs/digits`` scored ``data/digits.npz``), it is only
read (never unpickled) and used only when its fingerprint matches; a file that is not data is refused by its
reader, in words that say so.
"""

import errno
import io
import json
import os
import re
import shutil
from pathlib import Path

import pytest
from test_bad_inputs import DROP, PRUNE, SCORE, _fill, _snapshot, base, run_cli  # noqa: F401 (base: a fixture)

from sensprune.progress import progress_bar, shows_progress

REPO = Path(__file__).resolve().parents[1]
DEEP = "[" * 100_000 + "]" * 100_000  # a RecursionError for json and tomllib
NOT_NPZ = b"root:x:0:0:root:/root:/bin/bash\n"
BENCH = ["bench", "--config", "g.toml", "--out", "o"]


# -- set-ups: each makes files in the working folder W (the current folder of the run) ----------------------

def nothing(w, b):
    pass


def meta_folder(w, text, name="d"):
    """A folder ``name`` whose meta.json holds ``text`` (bytes or str)."""
    (w / name).mkdir()
    data = text if isinstance(text, bytes) else text.encode("utf-8")
    (w / name / "meta.json").write_bytes(data)


def edited_scores(w, b, edit, name="S2"):
    """A copy of the score folder with its meta.json edited by ``edit(meta)``."""
    shutil.copytree(b / "S", w / name)
    meta = json.loads((w / name / "meta.json").read_text())
    edit(meta)
    (w / name / "meta.json").write_text(json.dumps(meta))


def version(v):
    return lambda meta: meta.update(format_version=v)


def outside(meta):
    """The data spec and its recorded location point outside the folder, at a file that is not data."""
    meta["dataset"]["spec"] = "npz:../../../../../../../../../../etc/passwd"
    meta["dataset"]["location"] = {"relative": "../../../../../../../../../../etc/passwd"}


def grid(w, body):
    (w / "g.toml").write_bytes(body if isinstance(body, bytes) else ('[grid]\nmeasures = ["el2n"]\n' + body).encode())


def prune_copy(w, b, keep=b"hello"):
    shutil.copytree(b / "P", w / "P2")
    (w / "P2" / "keep.npy").write_bytes(keep)


def object_npz(w):
    import numpy as np

    np.savez(w / "obj.npz", x_train=np.array([{}, {}], dtype=object), y_train=np.zeros(2, int))


def deflate_broken_npz(w):
    """d.npz, compressed, whose x_train.npy member opens but does not inflate (its first deflate block is given
    the reserved block type 3)."""
    import struct
    import zipfile

    import numpy as np

    buf = io.BytesIO()
    np.savez_compressed(buf, x_train=np.zeros((8, 3), np.float32), y_train=np.arange(8) % 2,
                        x_test=np.zeros((4, 3), np.float32), y_test=np.arange(4) % 2)
    data = bytearray(buf.getvalue())
    at = zipfile.ZipFile(buf).getinfo("x_train.npy").header_offset
    name_len, extra_len = struct.unpack("<HH", data[at + 26:at + 30])
    data[at + 30 + name_len + extra_len] |= 0b110
    (w / "d.npz").write_bytes(bytes(data))


def three_features(w, *, cnn_grid=False, pruned=False):
    """d3.npz: 16 + 6 examples of 3 features (too few for the small CNN's two poolings); with ``cnn_grid`` a grid
    g.toml on it with ``[score] model = "cnn"``; with ``pruned`` its score folder S3 and a prune folder P3."""
    import numpy as np

    rng = np.random.default_rng(0)
    y, yt = np.arange(16) % 2, np.arange(6) % 2
    np.savez(w / "d3.npz", x_train=(rng.normal(size=(16, 3)) + y[:, None]).astype(np.float32), y_train=y,
             x_test=(rng.normal(size=(6, 3)) + yt[:, None]).astype(np.float32), y_test=yt)
    if cnn_grid:
        grid(w, '[grid]\ndatasets = ["npz:d3.npz"]\nmeasures = ["el2n"]\n[score]\nmodel = "cnn"\n'.encode())
    if pruned:
        cwd = os.getcwd()
        os.chdir(w)  # the folders record the data path as typed, relative to the working folder
        try:
            for args in (["score", "--dataset", "npz:d3.npz", "--epochs", "1", "--widths", "8", "--measures", "el2n",
                          "--quiet", "--out", "S3"],
                         ["prune", "--scores", "S3", "--by", "el2n", "--rule", "random", "--fraction", "0.25",
                          "--out", "P3"]):
                r = run_cli(args)
                assert r.exit_code == 0, r.output
        finally:
            os.chdir(cwd)


def meta_value(path, value):
    """An edit of a meta.json that sets the value at ``path`` (keys and list indices)."""
    def edit(meta):
        parent = meta
        for k in path[:-1]:
            parent = parent[k]
        parent[path[-1]] = value
    return edit


# id -> (set-up(w, base), args with {S} {P} {D} {B} placeholders, exit code, pinned message)
CASES = {
    # 1. misleading words: a meta.json's format_version and kind
    "info format_version '1'": (lambda w, b: meta_folder(w, '{"kind": "scores", "format_version": "1"}'),
                                ["info", "d"], 1,
                                "d/meta.json: format_version must be an integer >= 1 (this sensprune writes 1); "
                                "got '1'."),
    "info format_version true": (lambda w, b: meta_folder(w, '{"kind": "scores", "format_version": true}'),
                                 ["info", "d"], 1, "d/meta.json: format_version must be an integer >= 1 (this "
                                                   "sensprune writes 1); got True."),
    "info format_version 0": (lambda w, b: meta_folder(w, '{"kind": "scores", "format_version": 0}'),
                              ["info", "d"], 1, "format_version must be an integer >= 1 (this sensprune writes 1); "
                                                "got 0."),
    "info kind a list": (lambda w, b: meta_folder(w, '{"kind": ["scores"], "format_version": 1}'), ["info", "d"], 1,
                         "d/meta.json: kind must be a string such as 'scores'; got ['scores']."),
    "prune --scores format_version '1'": (lambda w, b: edited_scores(w, b, version("1")),
                                          [*DROP[:2], "S2", *DROP[3:], "--out", "o"], 1,
                                          "S2/meta.json: format_version must be an integer >= 1 (this sensprune "
                                          "writes 1); got '1'."),
    # 1. misleading words: a file that is not an NPZ archive is said to be one, never "allow_pickle"
    "prune --export-data, recorded spec outside the folder": (
        lambda w, b: edited_scores(w, b, outside), [*DROP[:2], "S2", *DROP[3:], "--out", "o", "--export-data",
                                                    "e.npz"], 1,
        "etc/passwd (relative to S2: does not load: ../../../../../../../../../etc/passwd is not an NPZ archive (a "
        "zip of .npy arrays); write one with numpy.savez). Pass --data-root"),
    "score npz: a text file": (lambda w, b: (w / "notes.npz").write_bytes(NOT_NPZ),
                               [*SCORE[:2], "npz:notes.npz", *SCORE[3:], "--out", "o"], 1,
                               "notes.npz is not an NPZ archive (a zip of .npy arrays); write one with numpy.savez."),
    "score npz: object arrays": (lambda w, b: object_npz(w), [*SCORE[:2], "npz:obj.npz", *SCORE[3:], "--out", "o"],
                                 1, "obj.npz holds an array of Python objects (dtype object), which sensprune never "
                                    "unpickles; save numeric arrays."),
    "score npz: a compressed member damaged": (lambda w, b: deflate_broken_npz(w),
                                               [*SCORE[:2], "npz:d.npz", *SCORE[3:], "--out", "o"], 1,
                                               "d.npz is truncated or corrupt (x_train.npy: Error -3 while "
                                               "decompressing data: invalid block type)."),
    "bench --selection keep.npy is text": (lambda w, b: prune_copy(w, b),
                                           ["bench", "--selection", "P2", "--out", "o"], 1,
                                           "P2/keep.npy is not a .npy array file; it must be one array written by "
                                           "numpy.save."),
    "bench --selection keep.npy is an npz": (lambda w, b: prune_copy(w, b, b"PK\x05\x06" + bytes(18)),
                                             ["bench", "--selection", "P2", "--out", "o"], 1,
                                             "P2/keep.npy is an .npz archive; it must be one array written by "
                                             "numpy.save."),
    # 1. misleading words: every key of a bench TOML has its type, checked once in the loader
    "bench lr = 'fast'": (lambda w, b: grid(w, '[train]\nlr = "fast"\n'), BENCH, 1,
                          "[train] lr must be a number; got 'fast'."),
    "bench lr = nan": (lambda w, b: grid(w, "[train]\nlr = nan\n"), BENCH, 1,
                       "[train] lr must be a finite number; got nan."),
    "bench weight_decay = inf": (lambda w, b: grid(w, "[train]\nweight_decay = inf\n"), BENCH, 1,
                                 "[train] weight_decay must be a finite number; got inf."),
    "bench epochs = 2.5": (lambda w, b: grid(w, "[train]\nepochs = 2.5\n"), BENCH, 1,
                           "[train] epochs must be an integer; got 2.5."),
    "bench batch_size = '64'": (lambda w, b: grid(w, '[train]\nbatch_size = "64"\n'), BENCH, 1,
                                "[train] batch_size must be an integer; got '64'."),
    "bench eval_batch_size = 0": (lambda w, b: grid(w, "[train]\neval_batch_size = 0\n"), BENCH, 1,
                                  "The 'eval_batch_size' parameter must be an integer >= 1; got 0."),
    "bench compile = 1": (lambda w, b: grid(w, "[train]\ncompile = 1\n"), BENCH, 1,
                          "[train] compile must be true or false; got 1."),
    "bench device = 0": (lambda w, b: grid(w, "[train]\ndevice = 0\n"), BENCH, 1,
                         "[train] device must be a string; got 0."),
    "bench model = 5": (lambda w, b: grid(w, "[score]\nmodel = 5\n"), BENCH, 1,
                        "[score] model must be a string; got 5."),
    "bench widths = [8, 'a']": (lambda w, b: grid(w, '[score]\nwidths = [8, "a"]\n'), BENCH, 1,
                                "[score] widths must be a list of integers; got 'a'."),
    "bench widths = [0]": (lambda w, b: grid(w, "[score]\nwidths = [0]\n"), BENCH, 1,
                           "[score] widths must be integers in 1..65536; got 0."),
    "bench dropout = 1.5": (lambda w, b: grid(w, "[score]\ndropout = 1.5\n"), BENCH, 1,
                            "[score] dropout must be a float in [0, 1); got 1.5."),
    "bench measure_options = 3": (lambda w, b: grid(w, "[score]\nmeasure_options = 3\n"), BENCH, 1,
                                  "[score] measure_options must be a table; got 3."),
    "bench subsample = '300'": (lambda w, b: grid(w, '[data]\nsubsample = "300"\n'), BENCH, 1,
                                "[data] subsample must be a positive integer; got '300'."),
    "bench per_class = 'yes'": (lambda w, b: grid(w, '[bench]\nper_class = "yes"\n'), BENCH, 1,
                                "[bench] per_class must be true or false; got 'yes'."),
    "bench beta = -0.1": (lambda w, b: grid(w, "[bench]\nbeta = -0.1\n"), BENCH, 1,
                          "[bench] beta must be a float in [0, 1); got -0.1."),
    "bench bins = 0": (lambda w, b: grid(w, "[bench]\nbins = 0\n"), BENCH, 1,
                       "[bench] bins must be an integer >= 1; got 0."),
    "bench min_per_class = -1": (lambda w, b: grid(w, "[bench]\nmin_per_class = -1\n"), BENCH, 1,
                                 "[bench] min_per_class must be an integer >= 0; got -1."),
    "bench cv_folds = 'five'": (lambda w, b: grid(w, '[bench]\ncv_folds = "five"\n'), BENCH, 1,
                                "[bench] cv_folds must be an integer >= 2; got 'five'."),
    "bench model = 'cnn' on flat inputs": (lambda w, b: three_features(w, cnn_grid=True), BENCH, 1,
                                           "npz:d3.npz: [score] model 'cnn' must build from (num_classes=2, "
                                           "input_shape=(3,)); got RuntimeError: max_pool1d() Invalid computed "
                                           "output size: 0."),
    "bench --selection, model = 'cnn' on flat inputs": (lambda w, b: three_features(w, cnn_grid=True, pruned=True),
                                                        ["bench", "--selection", "P3", *BENCH[1:]], 1,
                                                        "[score] model 'cnn' must build from (num_classes=2, "
                                                        "input_shape=(3,)); got RuntimeError: max_pool1d() "
                                                        "Invalid computed output size: 0."),
    "bench measures = [5]": (lambda w, b: grid(w, b"[grid]\nmeasures = [5]\n"), BENCH, 1,
                             "[grid] measures must be a list of strings; got 5."),
    # 2. tracebacks: deep nesting, a folder or binary bytes where a file of text is expected
    "info meta.json 100 000 levels deep": (lambda w, b: meta_folder(w, DEEP), ["info", "d"], 1,
                                           "d/meta.json is nested too deeply to read (sensprune writes a few "
                                           "levels); it was not written by sensprune: restore it or rerun the "
                                           "command that made it."),
    "prune --scores meta.json deep": (lambda w, b: meta_folder(w, DEEP), [*DROP[:2], "d", *DROP[3:], "--out", "o"],
                                      1, "d/meta.json is nested too deeply to read"),
    "report meta.json deep": (lambda w, b: meta_folder(w, DEEP), ["report", "d", "--out", "r.html"], 1,
                              "d/meta.json is nested too deeply to read"),
    "score --force over a deep meta.json": (lambda w, b: meta_folder(w, DEEP), [*SCORE, "--out", "d", "--force"], 1,
                                            "d is not empty and not a sensprune output"),
    "bench-merge config.json deep": (lambda w, b: ((w / "d").mkdir(), (w / "d" / "config.json").write_text(DEEP)),
                                     ["bench-merge", "d", "--out", "o"], 1,
                                     "d/config.json is nested too deeply to read"),
    "info meta.json is a folder": (lambda w, b: ((w / "d").mkdir(), (w / "d" / "meta.json").mkdir()),
                                   ["info", "d"], 1, "d/meta.json: the path must be a regular file; got a folder."),
    "info meta.json not UTF-8": (lambda w, b: meta_folder(w, b"\xff\xfe{}"), ["info", "d"], 1,
                                 "d/meta.json is not valid JSON ('utf-8' codec can't decode byte 0xff"),
    "prune --scores: dataset a number": (lambda w, b: edited_scores(w, b, lambda m: m.update(dataset=5)),
                                         [*DROP[:2], "S2", *DROP[3:], "--out", "o"], 1,
                                         "S2/meta.json: dataset must be a JSON object, as sensprune writes it; got 5. "
                                         "Restore the file or rerun the command that made it."),
    # 2. tracebacks: a score folder's meta.json field of another type than sensprune writes (scoring.meta_schema)
    "prune --scores: measures.el2n null": (lambda w, b: edited_scores(w, b, meta_value(("measures", "el2n"), None)),
                                           [*DROP[:2], "S2", *DROP[3:], "--out", "o"], 1,
                                           "S2/meta.json: measures.el2n must be a JSON object; got null. Restore the "
                                           "file or rerun the command that made it."),
    "prune --scores: dataset.location.absolute true": (
        lambda w, b: edited_scores(w, b, meta_value(("dataset", "location", "absolute"), True)),
        [*DROP[:2], "S2", *DROP[3:], "--out", "o"], 1,
        "S2/meta.json: dataset.location.absolute must be a string or null; got true."),
    "report: a history record null": (lambda w, b: edited_scores(w, b, meta_value(("history", "0", 0), None)),
                                      ["report", "S2", "--out", "r.html"], 1,
                                      'S2/meta.json: history["0"][0] must be a JSON object of finite numbers or '
                                      "null; got null."),
    "report: a Lorenz value a string": (lambda w, b: edited_scores(w, b, meta_value(("lorenz", "el2n", 0), "x")),
                                        ["report", "S2", "--out", "r.html"], 1,
                                        'S2/meta.json: lorenz.el2n[0] must be a finite number; got "x".'),
    "report: input_shape a string": (lambda w, b: edited_scores(w, b, meta_value(("dataset", "input_shape"), "x")),
                                     ["report", "S2", "--out", "r.html"], 1,
                                     'S2/meta.json: dataset.input_shape must be a JSON array of integers; got "x".'),
    "report: a Gini NaN": (lambda w, b: edited_scores(w, b, meta_value(("gini_per_epoch", "loss", 0), float("nan"))),
                           ["report", "S2", "--out", "r.html"], 1,
                           "S2/meta.json: gini_per_epoch.loss[0] must be a finite number or null; got NaN."),
    "report: config.el2n_epoch a string": (lambda w, b: edited_scores(w, b, meta_value(("config", "el2n_epoch"), "2")),
                                           ["report", "S2", "--out", "r.html"], 1,
                                           'S2/meta.json: config.el2n_epoch must be an integer or null; got "2".'),
    "report: seeds a string": (lambda w, b: edited_scores(w, b, lambda m: m.update(seeds="x")),
                               ["report", "S2", "--out", "r.html"], 1,
                               "S2/meta.json: seeds must be a JSON array, as sensprune writes it; got 'x'."),
    "bench TOML 100 000 levels deep": (lambda w, b: grid(w, ("[grid]\nmeasures = " + DEEP).encode()), BENCH, 1,
                                       "g.toml is nested too deeply to read; a grid file needs tables of keys and "
                                       "flat lists."),
    "bench TOML binary": (lambda w, b: grid(w, b"\x00\xff\xfe"), BENCH, 1,
                          "g.toml is not valid TOML ('utf-8' codec can't decode byte 0xff"),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input(case, base, tmp_path, monkeypatch):  # noqa: F811
    setup, args, code, message = CASES[case]
    w = tmp_path / "w"
    w.mkdir()
    setup(w, base)
    monkeypatch.chdir(w)
    before = _snapshot(w, base)
    r = run_cli([_fill(a, base) for a in args])
    out = r.output.strip()
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)  # no traceback
    assert r.exit_code == code, out
    assert len(out.splitlines()) == 1 and out.startswith("Error: "), out
    assert _fill(message, base) in out, out
    assert "allow_pickle" not in out and "pickle.load" not in out
    assert _snapshot(w, base) == before  # nothing written, nothing removed, every byte the same


# -- 3. a full disk ------------------------------------------------------------------------------------------

def full_disk(monkeypatch, name):
    """Every write of a file whose name holds ``name`` fails as on a full disk: its ``fsync`` raises ENOSPC
    (sensprune writes each file to a temporary sibling ``.<name>.*.tmp``, fsyncs it, then renames it)."""
    real = os.fsync

    def fsync(fd):
        if name in os.path.basename(os.readlink(f"/proc/self/fd/{fd}")):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd)

    monkeypatch.setattr(os, "fsync", fsync)


def copy_scores(w, b, name="S2"):
    shutil.copytree(b / "S", w / name)


def old_export(w, b):
    """An earlier prune folder and export that a --force run over them must leave as they were."""
    assert run_cli([*DROP[:2], _fill("{S}", b), *DROP[3:], "--out", w / "o", "--export-data", w / "e.npz"]) \
        .exit_code == 0


EXPORT = [*DROP, "--out", "o", "--export-data", "e.npz"]
# id -> (set-up(w, base), the file name that cannot be written, args, pinned message)
FULL_DISK = {
    "prune: keep.npy": (nothing, "keep.npy", [*DROP, "--out", "o"],
                        "Cannot write o/keep.npy: No space left on device."),
    "prune: keep.txt below new folders": (nothing, "keep.txt", [*DROP, "--out", "new/sub/o"],
                                          "Cannot write new/sub/o/keep.txt: No space left on device."),
    "prune --export-data: the export": (nothing, "e.npz", EXPORT, "Cannot write e.npz: No space left on device."),
    "prune --export-data: the folder after the export": (nothing, "meta.json", EXPORT,
                                                         "Cannot write o/meta.json: No space left on device."),
    "prune --export-data --force: the export": (old_export, "e.npz", [*EXPORT, "--force"],
                                                "Cannot write e.npz: No space left on device."),
    "score: scores.npz": (nothing, "scores.npz", [*SCORE, "--out", "o"],
                          "Cannot write o/scores.npz: No space left on device."),
    "score: the checkpoint's config.json": (nothing, "config.json", [*SCORE, "--out", "o"],
                                            "Cannot write o.partial/config.json: No space left on device."),
    "report --out: the page": (nothing, "r.html", ["report", "{S}", "--out", "r.html", "--quiet"],
                               "Cannot write r.html: No space left on device."),
    "report --out: a figure": (nothing, ".png", ["report", "{S}", "--out", "r.html", "--quiet"],
                               "Cannot write r_files/"),
    "report: the default layout": (copy_scores, "report.html", ["report", "S2", "--quiet"],
                                   "Cannot write S2/report/report.html: No space left on device."),
}


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="finds a file's name from its descriptor in /proc")
@pytest.mark.parametrize("case", list(FULL_DISK), ids=list(FULL_DISK))
def test_a_full_disk_names_the_file_and_leaves_nothing(case, base, tmp_path, monkeypatch):  # noqa: F811
    setup, name, args, message = FULL_DISK[case]
    w = tmp_path / "w"
    w.mkdir()
    setup(w, base)
    monkeypatch.chdir(w)
    before = _snapshot(w, base)
    full_disk(monkeypatch, name)
    r = run_cli([_fill(a, base) for a in args])
    out = r.output.strip()
    assert r.exception is None or isinstance(r.exception, SystemExit), repr(r.exception)  # no traceback
    assert r.exit_code == 1, out
    assert len(out.splitlines()) == 1 and out.startswith("Error: "), out
    assert _fill(message, base) in out, out
    assert ".staging" not in out and ".tmp" not in out, out  # the user's path, not a hidden one
    assert _snapshot(w, base) == before  # no .staging, .partial, _files/, temporary file or half an output


def test_a_full_disk_in_the_library_is_still_an_oserror(tmp_path, monkeypatch):
    """StorageError is a SensPruneError (one line in the CLI) and an OSError with its errno (for callers)."""
    from sensprune.errors import SensPruneError
    from sensprune.io import write_npz

    full_disk(monkeypatch, "a.npz")
    with pytest.raises(OSError) as info:
        write_npz(tmp_path / "x" / "y" / "a.npz", {"a": [1, 2]})
    assert isinstance(info.value, SensPruneError) and info.value.errno == errno.ENOSPC
    assert str(info.value) == f"Cannot write {tmp_path / 'x' / 'y' / 'a.npz'}: No space left on device."
    assert list(tmp_path.iterdir()) == []  # neither the temporary file nor the folders made for it


# -- 4. progress bars ----------------------------------------------------------------------------------------

class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_a_progress_bar_is_drawn_only_on_a_terminal():
    assert shows_progress(True, Terminal()) and not shows_progress(False, Terminal())
    assert not shows_progress(True, io.StringIO())  # a log file or a pipe
    for stream, drawn in ((Terminal(), True), (io.StringIO(), False)):
        with progress_bar(range(3), desc="steps", file=stream) as bar:
            assert list(bar) == [0, 1, 2]
        assert ("steps" in stream.getvalue()) is drawn


def test_commands_draw_no_bar_when_stderr_is_not_a_terminal(base, tmp_path):  # noqa: F811
    """Without --quiet, a score and a report under a test runner (stderr not a terminal) write no '\\r' bars."""
    r = run_cli(["score", "--dataset", f"npz:{base / 'data.npz'}", "--epochs", "2", "--widths", "8", "--measures",
                 "el2n", "--out", tmp_path / "s"])
    assert r.exit_code == 0, r.output
    assert "\r" not in r.output and "it/s" not in r.output
    r = run_cli(["report", tmp_path / "s", "--out", tmp_path / "r.html"])
    assert r.exit_code == 0, r.output
    assert "\r" not in r.output and "report figures" not in r.output


def test_every_progress_bar_goes_through_one_helper():
    """No module but sensprune/progress.py imports tqdm, so one rule decides when a bar is drawn."""
    users = [p.relative_to(REPO).as_posix() for p in sorted((REPO / "sensprune").rglob("*.py"))
             if re.search(r"^\s*(from tqdm|import tqdm)", p.read_text(encoding="utf-8"), re.M)]
    assert users == ["sensprune/progress.py"]
