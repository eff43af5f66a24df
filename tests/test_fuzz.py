"""Fuzzing the parsers (issue 23): malformed CSV, NPZ, bench TOML, a score folder's ``meta.json`` and image
folders, each fed through the CLI as a user would.

Every case ends one of two ways: a valid run (exit 0, writing only its outputs), or exactly one ``Error:`` line
(after any ``Warning:`` lines) with exit 1 (a refused input) or 2 (a bad option value), with every file in the
working folder and the shared inputs the same, byte for byte. Never a traceback, never a hang: each case runs
under a SIGALRM limit. The inputs are tiny (a few rows, one epoch, width 8), so the default budget takes
seconds; ``-m slow`` runs the same properties with 200 examples each. Hypothesis is derandomized, so a
failure on CI is the same failure here.

Each strategy draws a plan (text, bytes, a list of edits, a file tree) that prints readably when shrunk; the
case's set-up writes it into a fresh working folder. Data given in Python (``as_dataset``) gets the same NPZ
arrays in-process. What fuzzing found is pinned below each property: fixed bugs as plain tests, bugs still open
in files owned elsewhere as strict xfails that say where (the property's strategy steers clear of them).
"""

import contextlib
import datetime
import io
import json
import math
import os
import shutil
import signal
import struct
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from cli_helpers import run_cli
from sensprune.data.given import as_dataset
from sensprune.errors import ValidationError
from test_bad_inputs import _snapshot

LIMIT_S = 20  # per case: a tiny run takes well under a second, a hang forever
BUDGETS = [pytest.param(15, id="fast"), pytest.param(200, id="slow", marks=pytest.mark.slow)]
TINY = ["--epochs", "1", "--widths", "8", "--quiet", "--measures", "el2n,loss"]


def fuzz_settings(budget: int):
    return settings(max_examples=budget, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A tiny npz data set and its score folder S (made once)."""
    b = tmp_path_factory.mktemp("fuzz-inputs")
    rng = np.random.default_rng(0)
    y, yt = np.arange(16) % 2, np.arange(6) % 2
    np.savez(b / "data.npz", x_train=(rng.normal(size=(16, 3)) + y[:, None]).astype(np.float32), y_train=y,
             x_test=(rng.normal(size=(6, 3)) + yt[:, None]).astype(np.float32), y_test=yt)
    r = run_cli(["score", "--dataset", f"npz:{b / 'data.npz'}", *TINY, "--out", b / "S"])
    assert r.exit_code == 0, r.output
    return b


# -- one case: set up a working folder, run the CLI there under a time limit, check the contract -------------

class _Hang(BaseException):
    """Raised by SIGALRM inside a run; a BaseException, so that no ``except Exception`` of the code swallows it."""


@contextlib.contextmanager
def _time_limit(seconds: float):
    def expire(signum, frame):
        raise _Hang

    old = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    except _Hang:
        raise AssertionError(f"the run took longer than {seconds} s (a hang)") from None
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def check_run(base, setup, args, outputs=("o",)):
    """Run ``sensprune ARGS`` in a fresh working folder prepared by ``setup(w)``; returns click's Result.

    Exit 0: only the paths in ``outputs`` (relative to the folder) are new, nothing else changed. Otherwise:
    exit 1 or 2, the last line is the one ``Error:`` line, any line before it a ``Warning:``, nothing written.
    """
    with tempfile.TemporaryDirectory(prefix="sensprune-fuzz-") as tmp:
        w = Path(tmp)
        setup(w)
        before = _snapshot(w, base)
        cwd = os.getcwd()
        os.chdir(w)
        try:
            with _time_limit(LIMIT_S):
                r = run_cli(args)
        finally:
            os.chdir(cwd)
        out = r.output.strip()
        assert r.exception is None or isinstance(r.exception, SystemExit), f"{r.exception!r}\n{out}"  # no traceback
        after = _snapshot(w, base)
        if r.exit_code == 0:
            mine = [w / o for o in outputs]
            new = [p for p in after if p not in before]
            assert all(any(Path(p) == o or o in Path(p).parents for o in mine) for p in new), new
            assert {p: after[p] for p in before} == before
            return r
        lines = out.splitlines()
        assert r.exit_code in (1, 2), out
        assert lines and lines[-1].startswith("Error: "), out
        assert all(line.startswith("Warning: ") for line in lines[:-1]), out
        assert after == before  # nothing written, nothing removed, every byte the same
    return r


def usually(draw, percent: int) -> bool:
    """True about ``percent`` % of the time, shrinking towards True: the common case, near a valid input."""
    return draw(st.integers(0, 99)) < percent


@st.composite
def edited(draw, text: str, pieces, max_edits: int = 3) -> str:
    """``text`` after 1..max_edits deletions or insertions of ``pieces`` at drawn places."""
    for _ in range(draw(st.integers(1, max_edits))):
        i = draw(st.integers(0, len(text)))
        if draw(st.booleans()):
            text = text[:i] + text[i + draw(st.integers(1, 4)):]
        else:
            text = text[:i] + draw(st.sampled_from(pieces)) + text[i:]
    return text


@st.composite
def damaged(draw, data: bytes) -> bytes:
    """``data`` as is, truncated, or with one byte changed."""
    how = "as is" if usually(draw, 75) else draw(st.sampled_from(["truncate", "flip"]))
    if how == "truncate":
        return data[:draw(st.integers(0, max(len(data) - 1, 0)))]
    if how == "flip" and data:
        i = draw(st.integers(0, len(data) - 1))
        return data[:i] + bytes([data[i] ^ draw(st.integers(1, 255))]) + data[i + 1:]
    return data


# -- CSV: csv:PATH ----------------------------------------------------------------------------------------

CSV_PIECES = [",", "\n", "\r\n", '"', "x", "-", "e9", "nan", "inf", " ", "1", "\x00", ",split", "test", "é"]
CELLS = st.one_of(st.sampled_from(["0", "1", "2", "1.0", " 1", "-1", "1e400", "nan", "inf", "", " ", "x", "cat",
                                   "train", "test", "TRAIN", "0.5", "99999999999999999999", '"1,2"', '"a\nb"',
                                   '"', "\x00", "é", "0x10", "1_000"]),
                  st.text(max_size=3))
HEADERS = st.one_of(st.sampled_from(["label", "split", "a", "b", "", " label", "Label"]), st.text(max_size=3))


@st.composite
def csv_files(draw) -> bytes:
    """A valid table (12 rows, two classes, maybe a split column) with a few cells, rows or characters changed,
    or a table of drawn cells."""
    if usually(draw, 60):
        rows = [["label", "a", "b"]] + [[str(i % 2), str(i), str(-0.5 * i)] for i in range(12)]
        if not usually(draw, 70):
            rows = [r + [s] for r, s in zip(rows, ["split"] + ["test" if i % 4 == 0 else "train" for i in range(12)])]
        for _ in range(0 if usually(draw, 30) else draw(st.integers(1, 3))):
            r = draw(st.integers(0, len(rows) - 1))
            rows[r][draw(st.integers(0, len(rows[r]) - 1))] = draw(CELLS)
        if not usually(draw, 80):
            rows = rows[:draw(st.integers(1, len(rows)))]
    else:
        header = (["label"] if usually(draw, 70) else []) + draw(st.lists(HEADERS, min_size=1, max_size=3))
        rows = [header] + [draw(st.lists(CELLS, min_size=len(header) - 1, max_size=len(header) + 1))
                           for _ in range(draw(st.integers(0, 10)))]
    eol = "\n" if usually(draw, 70) else draw(st.sampled_from(["\r\n", "\r"]))
    text = eol.join(",".join(r) for r in rows) + draw(st.sampled_from([eol, "", eol * 3]))
    if not usually(draw, 80):
        text = draw(edited(text, CSV_PIECES))
    prefix = b"" if usually(draw, 90) else draw(st.sampled_from([b"\xef\xbb\xbf", b"\xff"]))
    return prefix + text.encode("utf-8")


@pytest.mark.parametrize("budget", BUDGETS)
def test_csv(base, budget):
    @fuzz_settings(budget)
    @given(data=csv_files(), column=st.sampled_from(["label", "a", "split", "nope"]), pass_column=st.integers(0, 99))
    def case(data, column, pass_column):
        extra = ["--label-column", column] if pass_column >= 70 else []
        check_run(base, lambda w: (w / "d.csv").write_bytes(data),
                  ["score", "--dataset", "csv:d.csv", *extra, *TINY, "--out", "o"])

    case()


# -- NPZ: npz:PATH ----------------------------------------------------------------------------------------

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
X_DTYPES = ["float64", "float16", "int64", "uint8", "bool", "complex64", "<U2", "S1", "datetime64[s]"]
Y_DTYPES = ["int32", "int8", "uint8", "uint64", "float64", "float32", "bool", "<U2"]
FEATURES = [(1,), (2, 2), (1, 1, 2), (), (0,), (3, 0)]


def _elements(dtype: str):
    """Labels near 0..K-1 (a few out of range); other inputs from hypothesis' own (NaN, inf, extremes)."""
    kind = np.dtype(dtype).kind
    if kind == "u":
        return st.integers(0, 3)
    if kind == "i":
        return st.integers(-1, 3)
    if kind == "f":
        return st.sampled_from([0.0, 1.0, 2.0, 0.5, math.nan])
    if kind == "U":
        return st.sampled_from(["0", "1", "a"])
    return None


@st.composite
def npz_arrays(draw) -> dict:
    """The four arrays of a valid file (8 and 4 rows, two classes) with shapes, dtypes or values drawn instead."""
    feat = (3,) if usually(draw, 60) else draw(st.sampled_from(FEATURES))
    arrays = {}
    for split, rows in (("train", 8 if usually(draw, 85) else draw(st.sampled_from([0, 1, 2]))),
                        ("test", 4 if usually(draw, 85) else draw(st.sampled_from([0, 1])))):
        any_shape = hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4)
        x_shape = (rows, *feat) if usually(draw, 90) else draw(any_shape)
        if usually(draw, 70):
            x = draw(hnp.arrays("float32", x_shape, elements=st.floats(-3, 3, width=32) if usually(draw, 75)
                                else None))
        else:
            x_dtype = draw(st.sampled_from(X_DTYPES))
            x = draw(hnp.arrays(x_dtype, x_shape, elements=_elements(x_dtype) if x_dtype == "<U2" else None))
        y_shape = (rows,) if usually(draw, 90) else draw(any_shape)
        y_dtype = "int64" if usually(draw, 70) else draw(st.sampled_from(Y_DTYPES))
        if usually(draw, 70):  # classes 0, 1, 0, 1, ...
            y = (np.arange(int(np.prod(y_shape))) % 2).reshape(y_shape).astype(y_dtype)
        else:
            y = draw(hnp.arrays(y_dtype, y_shape, elements=_elements(y_dtype)))
        arrays[f"x_{split}"], arrays[f"y_{split}"] = x, y
    if not usually(draw, 90):
        for key in draw(st.lists(st.sampled_from(NPZ_KEYS), min_size=1, max_size=2, unique=True)):
            del arrays[key]
    if not usually(draw, 90):
        arrays["extra"] = np.array([1, "a"], dtype=object)  # a pickled member: refused, never unpickled
    return arrays


@st.composite
def npz_files(draw):
    arrays = draw(npz_arrays())
    buf = io.BytesIO()
    (np.savez if usually(draw, 60) else np.savez_compressed)(buf, **arrays)
    return arrays, draw(damaged(buf.getvalue()))


@pytest.mark.parametrize("budget", BUDGETS)
def test_npz(base, budget):
    @fuzz_settings(budget)
    @given(case=npz_files())
    def case(case):
        _, data = case
        check_run(base, lambda w: (w / "d.npz").write_bytes(data),
                  ["score", "--dataset", "npz:d.npz", *TINY, "--out", "o"])

    case()


@pytest.mark.parametrize("arrays, message", [
    ({"x_train": np.zeros((60, 0)), "y_train": np.arange(60) % 2, "x_test": np.zeros((4, 0)),
      "y_test": np.arange(4) % 2},
     "npz:d.npz: each example must have at least one input value; got x_train of shape (60, 0)."),
    ({"x_train": np.ones((8, 2)) + 1j, "y_train": np.arange(8) % 2, "x_test": np.ones((4, 2)) + 0j,
      "y_test": np.arange(4) % 2},
     "npz:d.npz: x_train must hold real numbers; got dtype complex128."),
    ({"x_train": np.full((8, 2), 1e300), "y_train": np.arange(8) % 2, "x_test": np.ones((4, 2)),
      "y_test": np.arange(4) % 2},
     "npz:d.npz: x_train values must fit in float32 (|x| <= 3.4e+38); got 1e+300."),
], ids=["no input values", "complex inputs", "beyond float32"])
def test_npz_found_by_fuzzing(base, arrays, message):
    """Were a traceback (N, 0), a silent loss of the imaginary part (complex) and an overflow warning before the
    NaN/inf refusal (values beyond float32)."""
    r = check_run(base, lambda w: np.savez(w / "d.npz", **arrays), ["score", "--dataset", "npz:d.npz", *TINY,
                                                                    "--out", "o"])
    assert r.exit_code == 1 and r.output.strip() == f"Error: {message}"


def _deflate_broken(w: Path) -> None:
    """d.npz, compressed, with the first deflate block of x_train.npy given the reserved block type 3."""
    buf = io.BytesIO()
    np.savez_compressed(buf, x_train=np.zeros((8, 3), np.float32), y_train=np.arange(8) % 2,
                        x_test=np.zeros((4, 3), np.float32), y_test=np.arange(4) % 2)
    data = bytearray(buf.getvalue())
    at = zipfile.ZipFile(buf).getinfo("x_train.npy").header_offset
    name_len, extra_len = struct.unpack("<HH", data[at + 26:at + 30])
    data[at + 30 + name_len + extra_len] |= 0b110  # BTYPE = 11: "invalid block type"
    (w / "d.npz").write_bytes(bytes(data))


def test_npz_compressed_member_damaged(base):
    """Was a zlib.error traceback: a compressed member is inflated only when read, after the archive opened."""
    r = check_run(base, _deflate_broken, ["score", "--dataset", "npz:d.npz", *TINY, "--out", "o"])
    assert r.exit_code == 1 and r.output.strip() == ("Error: d.npz is truncated or corrupt (x_train.npy: Error -3 "
                                                     "while decompressing data: invalid block type).")


# -- data given in Python: sensprune.data.given.as_dataset (sp.score, sp.bench, the Tracker) --------------------

ODD_LABELS = [np.array([0, None, 1, 0, 1, 0, 1, 0], dtype=object), [0, 1, "a", 0, 1, 0, 1, 0], [[0], [1, 2]], None]


@pytest.mark.parametrize("budget", BUDGETS)
def test_as_dataset(budget):
    @fuzz_settings(budget)
    @given(arrays=npz_arrays(), four=st.booleans(), odd=st.integers(-1, len(ODD_LABELS) - 1))
    def case(arrays, four, odd):
        data = [arrays.get(k) for k in NPZ_KEYS[:4 if four else 2]]
        if odd >= 0:
            data[1] = ODD_LABELS[odd]
        try:
            ds = as_dataset(tuple(data))
        except ValidationError:
            return
        assert ds.x_train.dtype == np.float32 and ds.y_train.dtype == np.int64
        assert len(ds.x_train) == len(ds.y_train) > 0 and ds.x_train.size > 0

    case()


def test_as_dataset_refuses_python_objects_as_labels():
    """Was a TypeError from np.unique (None and int cannot be compared)."""
    with pytest.raises(ValidationError, match=r"^sp.score: y_train must hold numbers; got an array of Python "
                                              r"objects \(dtype object\)\.$"):
        as_dataset((np.zeros((4, 2)), np.array([0, None, 1, 0], dtype=object)))


# -- TOML: bench --config -----------------------------------------------------------------------------------

JUNK = [0, -1, 1.5, "x", "", True, [], {}, math.nan, math.inf, [1, "a"], datetime.date(2020, 1, 1),
        2 ** 63 - 1, {"a": 1}]
#: per [section] key: cheap valid values and bad ones (no value makes a valid run long: few seeds and epochs)
TOML_VALUES = {
    "grid": {
        "datasets": [["{D}"], ["nope"], [""], ["{D}", "{D}"], ["npz:missing.npz"], [3]],
        "corruptions": [["none"], ["randY:0.2"], ["randX:0.5"], ["unique"], ["randY"], ["randY:2"], ["none", "x"]],
        "measures": [["el2n"], ["loss"], ["random"], ["el2n", "random"], ["aum"], ["forgetting"], ["nope"],
                     ["loss_sensitivity_h1"], ["cv_confidence"]],
        "rules": [["drop-high"], ["drop-low"], ["keep-middle"], ["stratified"], ["reweight:softmax"],
                  ["reweight:nope"], ["nope"]],
        "fractions": [[0.2], [0.5], [0.0], [1.0], [0.99], [0.01], [-0.1], [math.nan], ["0.2"], [0.2, 0.2]],
        "seeds": [1, 2, 0, -1, [0], [0, 1], [0, 0], [-1], [True], 1001, "x"],
    },
    "data": {"subsample": [4, 1, 0, -1, 6, 100, True, "x", 2.5], "subsample_seed": [0, 1, -1, "x"],
             "data_root": [".", "nope", "", 3]},
    "train": {
        "epochs": [1, 2, 0, -1, "x", 1.5, True], "batch_size": [1, 4, 128, 0, -1, "x", 2 ** 31],
        "optimizer": ["sgd", "adam", "nope", 1], "lr": [0.1, 0.0, -1.0, math.nan, math.inf, 1e308, "x"],
        "momentum": [0.0, 0.9, 1.0, -0.1, math.nan, "x"], "weight_decay": [0.0, -1.0, math.nan, math.inf, "x"],
        "schedule": ["cosine", "step", "constant", "nope"], "device": ["cpu", "auto", "cuda", "cuda:99", "nope", 3],
        "eval_batch_size": [1, 0, -1, "x"], "amp": ["none", "bf16", "fp16", "nope"], "compile": [False],
        "augment": ["none", "crop-flip", "nope"], "seed": [0],
    },
    "score": {
        "model": ["mlp", "cnn", "nope", "plugin:nope_mod:make", 3],
        "widths": [[8], [4, 4], [], [0], [-1], ["a"], 8],
        "dropout": [0.0, 0.5, 1.0, -0.5, math.nan, "x"], "epochs": [1, 2, 0, -1, "x"], "el2n_epoch": [1, 2, 0],
        "measure_options": [{}, {"horizon": 1}, {"nope": 1}, {"probe_size": -1}, "x"],
        "budget": ["epochs", "fit", "nope"],
    },
    "bench": {
        "per_class": [True, False, "x"], "min_per_class": [0, 1, 5, -1, "x"], "beta": [0.0, 0.1, 0.5, -1.0, "x"],
        "bins": [1, 2, 50, 0, -1, "x"], "cv_folds": [2, 5, 1, 100, "x"], "threads": [1, 2, 0, "x"],
        "budget": ["epochs", "steps", "fit", "fit-steps", "nope"], "fit_threshold": [0.5, 1.0, 0.0, 1.5, math.nan],
        "max_epochs": [1, 2, 0, "x"], "fit_schedule": ["constant", "cosine", "nope"],
        "temperature": [1.0, 0.0, -1.0, math.inf, "x"], "warmup_cache": ["", 3], "margin": [0.01, 0.0, 1.0, "x"],
    },
}
VALID_TOML = {"grid": {"datasets": ["{D}"], "measures": ["el2n"], "rules": ["drop-high"], "fractions": [0.25],
                       "seeds": 1},
              "train": {"epochs": 1}, "score": {"widths": [8]}}
TOML_PIECES = ["=", "[", "]", '"', "\n", "#", ",", "{", "}", ".", "1", "x", "[grid]", "\n[train]\n"]


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf") if math.isinf(v) else repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, list):
        return "[" + ", ".join(toml_value(e) for e in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k} = {toml_value(e)}" for k, e in v.items()) + "}"
    if isinstance(v, datetime.date):
        return v.isoformat()
    return str(v)


def toml_text(cfg: dict) -> str:
    top = [f"{name} = {toml_value(v)}\n" for name, v in cfg.items() if not isinstance(v, dict)]
    tables = [f"[{name}]\n" + "".join(f"{k} = {toml_value(v)}\n" for k, v in section.items())
              for name, section in cfg.items() if isinstance(section, dict)]
    return "".join(top) + "\n".join(tables)


@st.composite
def toml_files(draw) -> str:
    """The tiny valid grid with 0..3 keys set (mostly to a value of that key), removed or unknown, a section
    replaced or unknown, then maybe a few characters changed."""
    cfg = json.loads(json.dumps(VALID_TOML))
    for _ in range(0 if usually(draw, 25) else draw(st.integers(1, 3))):
        name = draw(st.sampled_from(sorted(TOML_VALUES)))
        other = st.sampled_from(["remove", "unknown key", "unknown section", "replace section"])
        how = "set" if usually(draw, 70) else draw(other)
        section = cfg.setdefault(name, {}) if isinstance(cfg.get(name, {}), dict) else {}
        if how == "replace section":
            cfg[name] = draw(st.sampled_from(JUNK))
        elif how == "unknown section":
            cfg["nope"] = {"a": 1}
        elif how == "unknown key":
            section["nope"] = 1
        elif how == "remove":
            keys = sorted(set(section) - {"datasets"})  # the default data set (digits) would make a long run
            if keys:
                del section[draw(st.sampled_from(keys))]
        else:
            key = draw(st.sampled_from(sorted(TOML_VALUES[name])))
            section[key] = draw(st.sampled_from(TOML_VALUES[name][key])) if usually(draw, 75) else draw(
                st.sampled_from(JUNK))
    text = toml_text(cfg)
    return text if usually(draw, 85) else draw(edited(text, TOML_PIECES))


@pytest.mark.parametrize("budget", BUDGETS)
def test_bench_toml(base, budget):
    @fuzz_settings(budget)
    @given(text=toml_files())
    def case(text):
        data = text.replace("{D}", f"npz:{base / 'data.npz'}").encode("utf-8")
        check_run(base, lambda w: (w / "g.toml").write_bytes(data),
                  ["bench", "--config", "g.toml", "--quiet", "--out", "o"])

    case()


def test_bench_cnn_on_flat_inputs(base):
    """Was a RuntimeError from max_pool1d: the grid's preflight now makes score's model check
    (train.model_check.check_model) before anything trains."""
    cfg = json.loads(json.dumps(VALID_TOML))
    cfg["score"]["model"] = "cnn"
    data = toml_text(cfg).replace("{D}", f"npz:{base / 'data.npz'}").encode("utf-8")
    r = check_run(base, lambda w: (w / "g.toml").write_bytes(data), ["bench", "--config", "g.toml", "--quiet",
                                                                     "--out", "o"])
    assert r.exit_code == 1 and r.output.strip().endswith(
        "data.npz: [score] model 'cnn' must build from (num_classes=2, input_shape=(3,)); got RuntimeError: "
        "max_pool1d() Invalid computed output size: 0."), r.output


# -- meta.json of a score folder: prune, info, report --------------------------------------------------------

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 65, 2 ** 65) | st.floats() | st.text(max_size=4),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
    max_leaves=6)
WRONG = [None, "x", -1, 0, 1.5, 1e308, [], {}, True, 2 ** 64, "scores", 1]
META_COMMANDS = {
    "info": ["info", "S2"],
    "prune random": ["prune", "--scores", "S2", "--by", "el2n", "--rule", "random", "--fraction", "0.2", "--out",
                     "P"],
    "prune drop-high per class": ["prune", "--scores", "S2", "--by", "loss", "--rule", "drop-high", "--fraction",
                                  "0.25", "--per-class", "--out", "P"],
    "report": ["report", "S2", "--out", "r.html", "--quiet"],
}


def _paths(obj, prefix=()):
    """Every key path in a JSON tree (list items: the first two only)."""
    yield prefix
    items = obj.items() if isinstance(obj, dict) else enumerate(obj[:2]) if isinstance(obj, list) else ()
    for k, v in items:
        yield from _paths(v, (*prefix, k))


@st.composite
def meta_files(draw, meta: dict) -> bytes:
    """A score folder's meta.json with 1..3 values removed or replaced, replaced whole, its text changed, or
    nested too deep."""
    how = draw(st.sampled_from(["edit", "edit", "edit", "replace", "text", "nested"]))
    if how == "replace":
        return json.dumps(draw(JSON_VALUES)).encode("utf-8")
    if how == "nested":
        depth = draw(st.sampled_from([10, 1000, 100_000]))
        return ("[" * depth + "]" * depth).encode("ascii")
    text = json.dumps(meta, indent=2)
    if how == "text":
        return draw(damaged(draw(edited(text, ["{", "}", '"', ",", ":", "1", "\\", "null"], 2)).encode("utf-8")))
    meta = json.loads(text)
    paths = list(_paths(meta))[1:]
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(paths))
        parent = meta
        try:
            for k in path[:-1]:
                parent = parent[k]
            parent[path[-1]]
        except (KeyError, IndexError, TypeError):  # gone with an earlier edit
            continue
        if isinstance(parent, dict) and draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = draw(st.sampled_from(WRONG) | JSON_VALUES)
    return json.dumps(meta).encode("utf-8")


@pytest.mark.parametrize("budget", BUDGETS)
def test_score_meta(base, budget):
    meta = json.loads((base / "S" / "meta.json").read_text())

    def setup(w, data):
        shutil.copytree(base / "S", w / "S2")
        (w / "S2" / "meta.json").write_bytes(data)

    @st.composite
    def cases(draw):
        command = draw(st.sampled_from(sorted(META_COMMANDS)))
        return command, draw(meta_files(meta))

    @fuzz_settings(budget)
    @given(case=cases())
    def case(case):
        command, data = case
        check_run(base, lambda w: setup(w, data), META_COMMANDS[command], outputs=("P", "r.html", "r_files"))

    case()


def _set(meta: dict, path: tuple, value) -> dict:
    parent = meta
    for k in path[:-1]:
        parent = parent[k]
    parent[path[-1]] = value
    return meta


@pytest.mark.parametrize("command, path, value, message", [
    ("prune random", ("measures", "el2n"), None, "measures.el2n must be a JSON object; got null."),
    ("report", ("history", "0", 0), None, 'history["0"][0] must be a JSON object of finite numbers or null; got '
                                          "null."),
    ("report", ("lorenz", "el2n", 0), "x", 'lorenz.el2n[0] must be a finite number; got "x".'),
    ("report", ("dataset", "input_shape"), "x", 'dataset.input_shape must be a JSON array of integers; got "x".'),
])
def test_score_meta_found_by_fuzzing(base, command, path, value, message):
    """Were an AttributeError (prune), a TypeError or ValueError in the report's plots: the score folder's
    meta.json is now checked where it is loaded (scoring.meta_schema)."""
    data = json.dumps(_set(json.loads((base / "S" / "meta.json").read_text()), path, value)).encode()

    def setup(w):
        shutil.copytree(base / "S", w / "S2")
        (w / "S2" / "meta.json").write_bytes(data)

    r = check_run(base, setup, META_COMMANDS[command], outputs=("P", "r.html", "r_files"))
    assert r.exit_code == 1 and r.output.strip().startswith(f"Error: S2/meta.json: {message}"), r.output


# -- image folders: imagefolder:PATH ---------------------------------------------------------------------------

CLASSES = ["ant", "bee", "cat", ".hidden", "é", "a b"]
IMAGE_KINDS = ["other size", "other mode", "garbage", "empty", "truncated", "flipped", "folder", "link loop"]
MODES = ["L", "RGB", "RGBA", "P", "1", "I;16", "LA"]
NAMES = ["{i}.jpg", "{i}.PNG", "{i}.txt", ".{i}.png", "{i}"]


def png(size, mode, seed) -> bytes:
    from PIL import Image

    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0]), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels, "L").convert(mode).save(buf, "PNG")
    return buf.getvalue()


@st.composite
def image_trees(draw):
    """``(size, mode, plan)``: a plan ``[(relative path, kind, detail)]`` under the data set's root; mostly two
    classes of two same-size PNG images in train/ and test/, with a few folders, names or images drawn instead."""
    size, mode = draw(st.sampled_from([(3, 3), (2, 4)])), draw(st.sampled_from(["L", "RGB"]))
    classes = ["ant", "bee"] if usually(draw, 80) else draw(st.lists(st.sampled_from(CLASSES), max_size=3,
                                                                     unique=True))
    plan = []
    for split in ("train", "test"):
        if not usually(draw, 95):
            continue  # the split folder is missing
        names = classes if usually(draw, 90) else draw(st.lists(st.sampled_from(CLASSES), max_size=3, unique=True))
        plan.append((split, "folder", None))
        for c in names:
            plan.append((f"{split}/{c}", "folder", None))
            for i in range(2 if usually(draw, 80) else draw(st.integers(0, 3))):
                name = f"{i}.png" if usually(draw, 85) else draw(st.sampled_from(NAMES)).format(i=i)
                kind = "png" if usually(draw, 85) else draw(st.sampled_from(IMAGE_KINDS))
                detail = (draw(st.sampled_from([(1, 1), (4, 2)])) if kind == "other size" else
                          draw(st.sampled_from(MODES)) if kind == "other mode" else
                          draw(st.integers(0, 10_000)) if kind in ("truncated", "flipped") else None)
                plan.append((f"{split}/{c}/{name}", kind, detail))
    if not usually(draw, 90):
        plan.append(("train/stray.png", "png", None))
    return size, mode, plan


def write_tree(root: Path, size, mode, plan) -> None:
    root.mkdir()
    for i, (rel, kind, detail) in enumerate(plan):
        p = root / rel
        if p.exists() or p.is_symlink():
            continue
        p.parent.mkdir(parents=True, exist_ok=True)
        if kind == "folder":
            p.mkdir()
        elif kind == "link loop":
            os.symlink(p.name, p)
        elif kind == "empty":
            p.write_bytes(b"")
        elif kind == "garbage":
            p.write_bytes(b"not an image")
        else:
            data = png(detail if kind == "other size" else size, detail if kind == "other mode" else mode, i)
            if kind == "truncated":
                data = data[:detail % len(data)]
            elif kind == "flipped":
                k = detail % len(data)
                data = data[:k] + bytes([data[k] ^ 0x5A]) + data[k + 1:]
            p.write_bytes(data)


@pytest.mark.parametrize("budget", BUDGETS)
def test_imagefolder(base, budget):
    @fuzz_settings(budget)
    @given(tree=image_trees())
    def case(tree):
        check_run(base, lambda w: write_tree(w / "imgs", *tree),
                  ["score", "--dataset", "imagefolder:imgs", *TINY, "--out", "o"])

    case()
