"""Bad input to the Python API and the Tracker (issue 23, "nothing silently wrong"): each is refused at the edge
with one ValidationError (a ValueError) whose message is pinned here in full, before anything is computed, recorded
or written; the CLI's cases follow the table of tests/test_bad_inputs.py (one ``Error:`` line, the exit code,
nothing written).

The Tracker refuses every floating-point ``y``, 1.0 included (``F.cross_entropy`` refuses float class ids too),
as ``labels=`` refuses a float array.
"""

import json
import re
import shutil

import numpy as np
import pytest
import torch
from test_bad_inputs import PRUNE, SCORE, _fill, _snapshot, base, run_case, run_cli  # noqa: F401 (base: the fixture)

import sensprune as sp
from sensprune.config import MAX_SEED
from sensprune.errors import ValidationError
from sensprune.reproduce.settings import load_settings

BIG = 99999999999999999999  # above 2**64: once an overflow deep in torch, after `.partial` was made
TINY = load_settings().scales["tiny"]  # the counts of benchmarks/paper/settings.toml [scale.tiny]


def _exact(message):
    return "^" + re.escape(message) + "$"


# -- the Tracker ------------------------------------------------------------------------------------------

def _logits(b, k=4, fill=None):
    out = torch.randn(b, k, generator=torch.Generator().manual_seed(b))
    return out if fill is None else out.fill_(fill)


def _twice(t, y):
    t.step(torch.arange(4), _logits(4), torch.from_numpy(y[:4]))
    t.step(torch.tensor([5, 2]), _logits(2), torch.from_numpy(y[[5, 2]]))


def _relabelled(t, y):
    t.step(torch.arange(4), _logits(4), torch.tensor([0, 1, 2, 3]))
    t.epoch_end()
    t.step(torch.tensor([7, 1]), _logits(2), torch.tensor([0, 3]))


# id -> (Tracker keyword arguments, the refused call(tracker, y), the whole message)
TRACKER = {
    "y differs from labels=": ({}, lambda t, y: t.step(torch.arange(4), _logits(4), torch.tensor([0, 0, 3, 0])),
                               "Tracker.step: y must equal the labels= the Tracker was given; got y=3 for index 2, "
                               "whose label is 0."),
    "float y 1.7": ({}, lambda t, y: t.step(torch.arange(2), _logits(2), torch.tensor([0.0, 1.7])),
                    "Tracker.step: y must hold integer class ids (an integer dtype, as F.cross_entropy takes); got "
                    "torch.float32."),
    "float y 1.0": ({"labels": None}, lambda t, y: t.step(torch.arange(2), _logits(2), np.array([0.0, 1.0])),
                    "Tracker.step: y must hold integer class ids (an integer dtype, as F.cross_entropy takes); got "
                    "torch.float64."),
    "bool y": ({}, lambda t, y: t.step(torch.arange(2), _logits(2), torch.tensor([True, False])),
               "Tracker.step: y must hold integer class ids (an integer dtype, as F.cross_entropy takes); got "
               "torch.bool."),
    "one-hot y": ({}, lambda t, y: t.step(torch.arange(4), _logits(4), torch.eye(4, dtype=torch.long)),
                  "Tracker.step: y must hold one label per index, shape (4,); got shape (4, 4)."),
    "y shorter than idx": ({}, lambda t, y: t.step(torch.arange(4), _logits(4), torch.from_numpy(y[:3])),
                           "Tracker.step: y must hold one label per index, shape (4,); got shape (3,)."),
    "y out of range": ({"labels": None}, lambda t, y: t.step(torch.arange(2), _logits(2), torch.tensor([0, 4])),
                       "Tracker.step: labels must be in 0..3; got 0..4."),
    "y changes between epochs (no labels=)": ({"labels": None}, _relabelled,
                                              "Tracker.step: y must equal its label at an earlier step; got y=3 for "
                                              "index 1, whose label is 1."),
    "index 16 times in a batch": ({}, lambda t, y: t.step(torch.tensor([9] + [3] * 16), _logits(17),
                                                          torch.from_numpy(y[[9] + [3] * 16])),
                                  "Tracker.step: the indices of a batch must be distinct (each example once per "
                                  "epoch); got index 3 16 times."),
    "example twice in one epoch": ({}, _twice,
                                   "Tracker.step: each example must be presented at most once per epoch (call "
                                   "tracker.epoch_end() after each pass over the data); got index 2 a second time "
                                   "in epoch 1."),
    "idx above n": ({}, lambda t, y: t.step(torch.tensor([0, 120]), _logits(2), torch.tensor([0, 0])),
                    "Tracker.step: indices must be in 0..119 (n=120); got 0..120."),
    "negative idx": ({}, lambda t, y: t.step(torch.tensor([-1, 3]), _logits(2), torch.tensor([0, 0])),
                     "Tracker.step: indices must be in 0..119 (n=120); got -1..3."),
    "float idx": ({}, lambda t, y: t.step(torch.tensor([0.0, 1.0]), _logits(2), torch.tensor([0, 0])),
                  "Tracker.step: idx must be a 1-D integer tensor of positions; got torch.float32 of shape (2,)."),
    "NaN logits": ({}, lambda t, y: t.step(torch.arange(4), torch.cat([_logits(3), _logits(1, fill=float("nan"))]),
                                           torch.from_numpy(y[:4])),
                   "Tracker.step: logits must be finite; got nan in the row of index 3 (the training diverged or the "
                   "model's output is broken)."),
    "inf logits": ({}, lambda t, y: t.step(torch.tensor([4, 8]), _logits(2, fill=float("-inf")),
                                           torch.from_numpy(y[[4, 8]])),
                   "Tracker.step: logits must be finite; got -inf in the row of index 4 (the training diverged or the "
                   "model's output is broken)."),
    "int logits": ({}, lambda t, y: t.step(torch.arange(2), torch.zeros(2, 4, dtype=torch.long), torch.tensor([0, 0])),
                   "Tracker.step: logits must be a floating-point tensor (the model's raw outputs); got torch.int64."),
    "logits rows differ from idx": ({}, lambda t, y: t.step(torch.arange(3), _logits(4), torch.from_numpy(y[:3])),
                                    "Tracker.step: logits must have shape (3, 4) (one row per index, one column per "
                                    "class); got (4, 4)."),
    "logits of another width": ({}, lambda t, y: t.step(torch.arange(2), _logits(2, k=5), torch.tensor([0, 0])),
                                "Tracker.step: logits must have shape (2, 4) (one row per index, one column per "
                                "class); got (2, 5)."),
}


@pytest.mark.parametrize("case", list(TRACKER), ids=list(TRACKER))
def test_tracker_step_refuses(case, tiny_arrays):
    kw, call, message = TRACKER[case]
    y = tiny_arrays[1]
    t = sp.Tracker(n=120, **{"labels": y, **kw}, measures=["loss", "forgetting", "aum"])
    done, step = [], t.step

    def counted(idx, *args, **kwargs):  # the steps of the case that are accepted, before the refused one
        step(idx, *args, **kwargs)
        done.append(len(idx))
    t.step = counted
    with pytest.raises(ValidationError, match=_exact(message)) as err:
        call(t, y)
    assert isinstance(err.value, ValueError)
    # nothing of the refused step was recorded: the step counter, the labels seen and the values are as before
    t.epoch_end()
    assert t.steps == len(done) and (t.seen_labels >= 0).sum() == sum(done)
    assert np.isfinite(t.values()["loss"]).sum() == sum(done)


def test_a_refused_step_leaves_its_examples_free(tiny_arrays):
    """The indices of a refused step were not marked as presented: the corrected call goes through."""
    y = tiny_arrays[1]
    t = sp.Tracker(n=120, labels=y, measures=["loss"])
    with pytest.raises(ValidationError, match="must be finite"):
        t.step(torch.arange(4), _logits(4, fill=float("nan")), torch.from_numpy(y[:4]))
    t.step(torch.arange(4), _logits(4), torch.from_numpy(y[:4]))
    t.step(torch.tensor([4, 5]), _logits(2), None)  # y taken from labels=
    t.epoch_end()
    t.step(torch.arange(4), _logits(4), torch.from_numpy(y[:4]))  # a new epoch presents them again
    assert t.steps == 3 and np.isfinite(t.values()["loss"][:6]).all()


def test_only_the_per_presentation_measures_take_one_pass_per_epoch(tiny_arrays):
    """el2n (taken at an epoch's end) and loss_sensitivity (a replay of any batches) let an example come back
    within an epoch; a repeat inside one batch is refused for every measure (its values would be lost)."""
    y = torch.from_numpy(tiny_arrays[1])
    t = sp.Tracker(n=120, labels=y, measures=["el2n"])
    t.step(torch.arange(4), _logits(4), y[:4])
    t.step(torch.arange(4), _logits(4), y[:4])
    assert t.steps == 2
    with pytest.raises(ValidationError, match=_exact("Tracker.step: the indices of a batch must be distinct (each "
                                                     "example once per epoch); got index 7 2 times.")):
        t.step(torch.tensor([7, 1, 7]), _logits(3), y[[7, 1, 7]])


def test_loss_sensitivity_labels_must_be_those_of_data(tiny_arrays):
    x, y, _, _ = tiny_arrays
    model = torch.nn.Linear(6, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    other = y.copy()
    other[17] = (y[17] + 1) % 4
    with pytest.raises(ValidationError, match=_exact(f"Tracker: the labels of data= must equal labels= (the same "
                                                     f"training set); got {other[17]} for index 17, whose label is "
                                                     f"{y[17]}.")):
        sp.Tracker(n=120, labels=y, measures=["loss_sensitivity"], model=model, optimizer=opt, data=(x, other))
    t = sp.Tracker(n=120, measures=["loss_sensitivity"], model=model, optimizer=opt, data=(x, y))
    idx = torch.tensor([3, 40, 90])
    with pytest.raises(ValidationError, match=_exact(f"Tracker.step: y must equal the labels of data[idx] (idx "
                                                     f"indexes data= in order); got y={y[90] ^ 1} for index 90, whose "
                                                     f"label is {y[90]}.")):
        t.step(idx, model(torch.from_numpy(x[idx.numpy()])), torch.from_numpy(y[[3, 40]]).tolist() + [y[90] ^ 1])
    assert t.steps == 0 and (t.seen_labels == -1).all()


@pytest.mark.parametrize("kw, message", [
    ({"num_classes": 2}, "Tracker: num_classes must be an integer >= 4 (above every label); got 2."),
    ({"num_classes": 0, "labels": None}, "Tracker: num_classes must be an integer >= 1 (above every label); got 0."),
    ({"seed": -3}, "Tracker: seed must be an integer in 0..4294967295; got -3."),
    ({"seed": 2**32}, "Tracker: seed must be an integer in 0..4294967295; got 4294967296."),
], ids=["num_classes below the labels", "num_classes 0", "seed -3", "seed 2**32"])
def test_tracker_constructor_refuses(kw, message, tiny_arrays):
    with pytest.raises(ValidationError, match=_exact(message)):
        sp.Tracker(n=120, **{"labels": tiny_arrays[1], **kw})


# -- the facade ---------------------------------------------------------------------------------------------

class LSTMNet(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.lstm = torch.nn.LSTM(6, 4, batch_first=True)

    def forward(self, x):
        return self.lstm(x[:, None])  # (output, (h_n, c_n)): a tuple, not logits


WANT = "sp.score: the model {} must map one example of shape (1, 6) to logits of shape (1, 4); got {}."
MODELS = {
    "output width 3": (torch.nn.Linear(6, 3), WANT.format("python:Linear", "(1, 3)")),
    "input width 5": (torch.nn.Linear(5, 4), WANT.format(
        "python:Linear", "RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x6 and 5x4)")),
    "LSTM": (LSTMNet(), WANT.format("python:LSTMNet", "a tuple of 2 items (an nn.LSTM returns (output, (h_n, c_n))): "
                                                      "return the logits tensor")),
    "factory of another width": (lambda k, shape: torch.nn.Linear(shape[0], k + 1), WANT.format(
        "python:<lambda>", "(1, 5)")),
    "factory that raises": (lambda k, shape: 1 / 0,
                            "sp.score: the model python:<lambda> must build from (num_classes=4, input_shape=(6,)); "
                            "got ZeroDivisionError: division by zero."),
}


@pytest.mark.parametrize("case", list(MODELS), ids=list(MODELS))
def test_score_refuses_a_model_that_does_not_give_logits(case, tiny_arrays, tmp_path):
    model, message = MODELS[case]
    x, y, _, _ = tiny_arrays
    torch.manual_seed(5)
    expect = torch.rand(3)
    torch.manual_seed(5)
    with pytest.raises(ValidationError, match=_exact(message)):
        sp.score((x, y), measures=["loss"], model=model, epochs=1, out=tmp_path / "o")
    assert torch.equal(torch.rand(3), expect)  # the one forward left the caller's random state as it was
    assert list(tmp_path.iterdir()) == []


def test_bench_refuses_a_model_that_does_not_give_logits(tiny_arrays):
    with pytest.raises(ValidationError, match=_exact(WANT.replace("sp.score", "sp.bench").format(
            "python:Linear", "(1, 3)"))):
        sp.bench(tiny_arrays, selections={"m": np.arange(120) % 2 == 0}, model=torch.nn.Linear(6, 3), seeds=1)


@pytest.mark.parametrize("call, message", [
    (lambda d, t: sp.score(d, measures=["loss"], epochs=1, seed=-3),
     "sp.score: seed must be an integer in 0..4294967295; got -3."),
    (lambda d, t: sp.score(d, measures=["loss"], epochs=1, seed=BIG),
     f"sp.score: seed must be an integer in 0..4294967295; got {BIG}."),
    (lambda d, t: sp.score(d, measures=["loss"], epochs=1, seeds=1001),
     "sp.score: seeds must be an integer in 1..1000; got 1001."),
    (lambda d, t: sp.bench(d, selections={"m": np.ones(120, bool)}, seeds=10**9),
     "sp.bench: seeds must be an integer in 1..1000; got 1000000000."),
    (lambda d, t: sp.prune(t, by="loss", rule="random", fraction=0.2, seed=-3),
     "sp.prune: seed must be an integer in 0..4294967295; got -3."),
    (lambda d, t: sp.prune(t, by="loss", rule="random", fraction=0.2, seed=BIG),
     f"sp.prune: seed must be an integer in 0..4294967295; got {BIG}."),
    (lambda d, t: sp.prune(t, by="loss", rule="stratified", fraction=0.2, seed=1.5),
     "sp.prune: seed must be an integer in 0..4294967295; got 1.5."),
    (lambda d, t: sp.score(d, measures=["loss"], epochs=1, seed=MAX_SEED, seeds=2),
     "sp.score: seed + seeds - 1 (the last run's seed) must be at most 4294967295; got 4294967295 + 2 - 1 = "
     "4294967296."),
    (lambda d, t: sp.score(d, measures=["loss"], epochs=1, seed=MAX_SEED - 998, seeds=1000),
     "sp.score: seed + seeds - 1 (the last run's seed) must be at most 4294967295; got 4294966297 + 1000 - 1 = "
     "4294967296."),
], ids=["score seed -3", "score seed 1e20", "score seeds 1001", "bench seeds 1e9", "prune seed -3",
        "prune seed 1e20", "prune seed 1.5", "score seed MAX_SEED seeds 2", "score seeds past MAX_SEED"])
def test_seeds_are_bounded(call, message, tiny_arrays, tmp_path):
    table = _table(tiny_arrays)
    with pytest.raises(ValidationError, match=_exact(message)):
        call(tiny_arrays, table)


def test_the_last_seed_may_be_max_seed(tiny_arrays):
    """seed .. seed+seeds-1 up to MAX_SEED itself trains (the CSR draw seeds np.random.RandomState, which takes
    at most 2**32-1)."""
    table = sp.score(tiny_arrays, measures=["loss"], epochs=1, widths=(8,), seed=MAX_SEED - 1, seeds=2,
                     measure_options={"csr": True, "csr_samples": 5})
    assert sorted(map(int, table.meta["history"])) == [MAX_SEED - 1, MAX_SEED]


@pytest.mark.parametrize("kw, message", [
    ({"seed": -1, "only": [2]}, "seed must be an integer in 0..4294967295; got -1."),
    ({"seed": 2**32, "only": [2]}, "seed must be an integer in 0..4294967295; got 4294967296."),
    ({"seed": "0", "only": [2]}, "seed must be an integer in 0..4294967295; got '0'."),
    ({"seed": MAX_SEED, "only": [2, 3], "seeds": 3},
     "seed + seeds per experiment - 1 (the last run's seed) must be at most 4294967295; got 4294967295 + 3 - 1 = "
     "4294967297."),
    ({"seed": MAX_SEED - 2, "only": [1, 2]}, "seed + seeds per experiment - 1 (the last run's seed) must be at most "
     f"4294967295; got 4294967293 + {TINY.easy_runs} - 1 = {MAX_SEED - 3 + TINY.easy_runs}."),
], ids=["seed -1", "seed 2**32", "seed '0'", "seeds 3 from MAX_SEED", "experiment 1's runs from MAX_SEED - 2"])
def test_run_reproduce_checks_its_seed(kw, message, tmp_path):
    """The Python function checks its seed as the CLI does: every experiment's runs are seeded seed .. seed+n-1."""
    from sensprune.reproduce import run_reproduce

    with pytest.raises(ValidationError, match=_exact(message)):
        run_reproduce(tmp_path / "o", scale="tiny", progress=False, **kw)
    assert list(tmp_path.iterdir()) == []


def test_bench_checks_a_python_model_once(tiny_arrays, monkeypatch):
    """sp.bench checks the model in the one function it shares with `bench --selection` (one forward, not two)."""
    import sensprune.train.model_check as mc

    calls, check = [], mc.check_model
    monkeypatch.setattr(mc, "check_model", lambda *a, **k: (calls.append(a[2]), check(*a, **k))[1])
    with pytest.raises(ValidationError, match="^sp.bench: the model python:Linear must map"):
        sp.bench(tiny_arrays, selections={"m": np.arange(120) % 2 == 0}, model=torch.nn.Linear(6, 3), seeds=1)
    assert calls == ["sp.bench: the model python:Linear"]


def _table(arrays):
    from sensprune.scoring.table import ScoreTable

    y = arrays[1]
    loss = np.linspace(0, 1, len(y))
    return ScoreTable(np.arange(len(y)), y, {"loss": loss}, {"loss": loss[None]}, {"dataset": {"spec": "x"}})


def test_prune_out_records_where_the_data_is_as_the_cli_does(tmp_path, monkeypatch):
    """sp.prune(out=) writes the folder `sensprune prune` writes, with the data's location relative to it: the
    folder and the data moved together still find each other (tests/test_travel.py for the CLI)."""
    from sensprune.data.locate import load_recorded

    a = tmp_path / "A"
    (a / "data").mkdir(parents=True)
    rng = np.random.default_rng(0)
    yy = np.arange(40) % 2
    np.savez(a / "data" / "d.npz", x_train=(rng.normal(size=(40, 4)) + yy[:, None]).astype(np.float32), y_train=yy,
             x_test=rng.normal(size=(10, 4)).astype(np.float32), y_test=np.arange(10) % 2)
    monkeypatch.chdir(a)
    r = run_cli(["score", "--dataset", "npz:data/d.npz", "--epochs", "1", "--widths", "8", "--measures", "el2n",
                 "--quiet", "--out", "runs/S"])
    assert r.exit_code == 0, r.output
    r = run_cli(["prune", "--scores", "runs/S", "--by", "el2n", "--rule", "drop-high", "--fraction", "0.2",
                 "--out", "runs/cli"])
    assert r.exit_code == 0, r.output
    sel = sp.prune("runs/S", by="el2n", rule="drop-high", fraction=0.2, out="runs/api")
    cli, api = (json.loads((a / "runs" / f / "meta.json").read_text())["dataset"] for f in ("cli", "api"))
    assert api["location"] == {"absolute": str(a / "data" / "d.npz"), "relative": "../../data/d.npz"}
    assert api == cli
    np.testing.assert_array_equal(np.load(a / "runs" / "api" / "keep.npy"), sel.keep)
    # refused again without force, before anything is written; a ScoreTable in memory records the same place
    with pytest.raises(ValidationError, match=_exact("runs/api already exists; pass --force to replace it.")):
        sp.prune("runs/S", by="el2n", rule="drop-high", fraction=0.2, out="runs/api")
    sp.prune(sp.load_scores("runs/S"), by="el2n", rule="drop-high", fraction=0.2, out="runs/api", force=True)
    assert json.loads((a / "runs" / "api" / "meta.json").read_text())["dataset"] == cli
    # the data and the folder move together: the data is found relative to the folder
    moved = tmp_path / "elsewhere"
    monkeypatch.chdir(tmp_path)
    shutil.move(str(a), str(moved))
    ds = load_recorded(api, folder=moved / "runs" / "api")
    assert ds.n_train == 40


# -- the CLI (the CASES table of tests/test_bad_inputs.py) ---------------------------------------------------

def _plugin(w, name, body):
    (w / f"{name}.py").write_text("import torch\n\n\n" + body)


WIDE = "def make(k, shape):\n    return torch.nn.Linear(shape[0], k + 1)\n"
NARROW = "def make(k, shape):\n    return torch.nn.Linear(shape[0] + 1, k)\n"
LSTM = ("class L(torch.nn.Module):\n    def __init__(self, d, k):\n        super().__init__()\n"
        "        self.l = torch.nn.LSTM(d, k, batch_first=True)\n\n    def forward(self, x):\n"
        "        return self.l(x[:, None])\n\n\ndef make(k, shape):\n    return L(shape[0], k)\n")
DROP = [*PRUNE, "--rule", "random", "--fraction", "0.2"]
MUST = "--model plugin:{}:make must map one example of shape (1, 4) to logits of shape (1, 2); got {}."
CASES = {
    "score --seed -5": (None, [*SCORE, "--seed", "-5", "--out", "o"], 2,
                        "Invalid value for '--seed': -5 is not in the range 0<=x<=4294967295."),
    "score --seed 1e20": (None, [*SCORE, "--seed", str(BIG), "--out", "o"], 2,
                          f"Invalid value for '--seed': {BIG} is not in the range 0<=x<=4294967295."),
    "prune --seed -5": (None, [*DROP, "--seed", "-5", "--out", "o"], 2,
                        "Invalid value for '--seed': -5 is not in the range 0<=x<=4294967295."),
    "prune --seed 1e20": (None, [*DROP, "--seed", str(BIG), "--out", "o"], 2,
                          f"Invalid value for '--seed': {BIG} is not in the range 0<=x<=4294967295."),
    "score --seed MAX_SEED --seeds 2": (None, [*SCORE, "--seed", str(MAX_SEED), "--seeds", "2", "--out", "o"], 2,
                                        "--seed + --seeds - 1 (the last run's seed) must be at most 4294967295; got "
                                        "4294967295 + 2 - 1 = 4294967296."),
    "score plugin model too wide": (("wide_out_h23", WIDE), [*SCORE, "--model", "plugin:wide_out_h23:make",
                                                             "--out", "o"], 1, MUST.format("wide_out_h23", "(1, 3)")),
    "score plugin model of another input width": (
        ("narrow_in_h23", NARROW), [*SCORE, "--model", "plugin:narrow_in_h23:make", "--out", "o"], 1,
        MUST.format("narrow_in_h23", "RuntimeError: mat1 and mat2 shapes cannot be multiplied (1x4 and 5x2)")),
    "score plugin LSTM": (("lstm_h23", LSTM), [*SCORE, "--model", "plugin:lstm_h23:make", "--out", "o"], 1,
                          MUST.format("lstm_h23", "a tuple of 2 items (an nn.LSTM returns (output, (h_n, c_n))): "
                                                  "return the logits tensor")),
}


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_cli_input(case, base, tmp_path, monkeypatch):  # noqa: F811 (base: the fixture imported above)
    plugin, args, code, message = CASES[case]
    run_case(lambda w, b: plugin is not None and _plugin(w, *plugin), args, code, message, base, tmp_path,
             monkeypatch)
