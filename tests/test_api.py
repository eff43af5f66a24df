"""The Python facade (sp.score / sp.prune / sp.bench), the hook contract and no global-state changes."""

from __future__ import annotations

import numpy as np
import torch

from sensprune.config import TrainConfig
from sensprune.train.hooks import REPLICATED, SUM, Hook
from sensprune.train.loop import train
from sensprune.train.sources import ArraySource


def test_train_leaves_global_rng_untouched(tiny_arrays):
    x, y, _, _ = tiny_arrays
    src = ArraySource(x, y, torch.device("cpu"))

    def build():
        return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.Dropout(0.5), torch.nn.Linear(8, 4))
    torch.manual_seed(123)
    expect = torch.rand(3)
    torch.manual_seed(123)
    a = train(build, src, TrainConfig(epochs=1, batch_size=32), progress=False)
    after = torch.rand(3)
    torch.manual_seed(999)  # another caller state: the run is the same (its own seeds)
    b = train(build, src, TrainConfig(epochs=1, batch_size=32), progress=False)
    assert torch.equal(after, expect)
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)


def test_hook_contract_defaults_and_reductions():
    h = Hook()
    assert h.values() == {} and h.extras() == {} and h.meta() == {} and h.state_dict() == {}
    assert h.reduction("anything") == SUM

    class Mixed(Hook):
        replicated = True
        reduce = {"count": SUM}
    assert Mixed().reduction("count") == SUM and Mixed().reduction("other") == REPLICATED


def test_model_plugin_resolves_and_restores_sys_path(tmp_path, monkeypatch):
    import sys

    import pytest

    from sensprune.errors import ValidationError
    from sensprune.train.models import build_model

    (tmp_path / "my_models_h12.py").write_text(
        "import torch\nclass Zoo:\n    @staticmethod\n    def net(k, shape):\n"
        "        return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(shape[0], k))\n"
        "def bad(k, shape):\n    raise RuntimeError('boom')\n")
    monkeypatch.chdir(tmp_path)
    before = list(sys.path)
    model = build_model("plugin:my_models_h12:Zoo.net", 3, (5,))
    assert model(torch.zeros(2, 5)).shape == (2, 3)
    assert sys.path == before
    with pytest.raises(ValidationError, match="Model plugin 'my_models_h12:bad' raised RuntimeError: boom"):
        build_model("plugin:my_models_h12:bad", 3, (5,))
    with pytest.raises(ValidationError, match="Model plugin 'no_such_h12:net' could not be imported"):
        build_model("plugin:no_such_h12:net", 3, (5,))


def test_plots_use_no_pyplot_and_no_backend_switch(tmp_path):
    import subprocess
    import sys

    out = tmp_path / "l.png"
    code = ("import sys, matplotlib; b = dict.__getitem__(matplotlib.rcParams, 'backend'); "
            "import sensprune.reporting.plots as P; "
            f"P.lorenz_curves({{'a': [i / 100 for i in range(101)]}}, {str(out)!r}); "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'; "
            "assert dict.__getitem__(matplotlib.rcParams, 'backend') == b, 'backend switched'")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert out.stat().st_size > 1000


def _readme_python_blocks():
    import re
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = text[text.index("### From Python"):text.index("## Which measure for what")]
    return re.findall(r"```python\n(.*?)```", section, flags=re.S)


def test_readme_facade_example_runs(tmp_path, monkeypatch):
    blocks = _readme_python_blocks()
    assert len(blocks) == 2 and "sp.score(" in blocks[0] and "sp.bench(" in blocks[0]
    monkeypatch.chdir(tmp_path)
    env: dict = {}
    exec(compile(blocks[0], "README.md:facade", "exec"), env)
    assert len(env["sel"].keep) == 1400 - 280 and set(env["result"].summary) == {"full", "mine", "random[mine]"}


def test_readme_tracker_example_runs(tmp_path, monkeypatch):
    import json

    block = _readme_python_blocks()[1]
    assert "sp.Tracker(" in block and "resnet18" in block
    monkeypatch.chdir(tmp_path)
    env: dict = {}
    exec(compile(block, "README.md:tracker", "exec"), env)
    meta = json.loads((tmp_path / "runs" / "mine" / "meta.json").read_text())
    assert meta["kind"] == "scores" and set(meta["measures"]) == {"loss_sensitivity", "aum", "forgetting", "el2n"}
    note = meta["measure_notes"]["loss_sensitivity"]
    assert note["optimizer"][0]["kind"] == "adamw" and note["replay_max_rel_param_diff"] < 1e-4
    assert np.isfinite(np.load(tmp_path / "runs" / "mine" / "scores.npz")["loss_sensitivity"]).all()


def _net():
    return torch.nn.Sequential(torch.nn.Linear(6, 8), torch.nn.ReLU(), torch.nn.Linear(8, 4))


def test_score_bad_input_is_one_line_error(tiny_arrays, tmp_path):
    import pytest

    import sensprune as sp
    from sensprune.errors import ValidationError

    x, y, _, _ = tiny_arrays
    cases = [
        (((x, y[:-1]),), {}, "x_train has 120 rows but y_train has shape (119,)"),
        (((x, np.zeros(120, int)),), {}, "y_train has a single class"),
        (((x, y),), {"measure_options": {"horizn": 4}}, "'horizn'. Valid keys: horizon"),
        (((x, y),), {"lr_rate": 0.1}, "unknown keyword argument(s) 'lr_rate'"),
        (((x, y),), {"model": 3}, "model must be a name"),
        (((x, y),), {"measures": ["aumm"]}, "Unknown measure(s) 'aumm'"),
        ((42,), {}, "data must be (x_train, y_train)"), (("no-such-data",), {}, "Unknown dataset 'no-such-data'"),
    ]
    for args, kw, match in cases:
        with pytest.raises(ValidationError) as info:
            sp.score(*args, model=kw.pop("model", _net), epochs=1, out=tmp_path / "o", **kw)
        assert match in str(info.value) and len(str(info.value).splitlines()) == 1, str(info.value)
    assert not (tmp_path / "o").exists()


def test_facade_score_prune_subset_bench(tiny_arrays, tmp_path):
    import pytest
    from torch.utils.data import Dataset, TensorDataset

    import sensprune as sp

    x, y, xt, yt = tiny_arrays

    class Mine(Dataset):  # a user's map-style Dataset returning (x, y)
        def __len__(self):
            return len(y)

        def __getitem__(self, i):
            return torch.from_numpy(x[i]), int(y[i])

    module = _net()
    a = sp.score(Mine(), measures=["aum", "el2n"], model=module, epochs=2, seed=0, batch_size=32,
                 out=tmp_path / "scores")
    b = sp.score((torch.from_numpy(x), torch.from_numpy(y)), measures=["aum", "el2n"], model=module, epochs=2,
                 seed=0, batch_size=32)
    np.testing.assert_array_equal(a.scores["aum"], b.scores["aum"])  # Dataset, tensors: the same data
    assert a.meta["dataset"]["train_fingerprint"] == b.meta["dataset"]["train_fingerprint"]
    assert sp.load_scores(tmp_path / "scores").scores["el2n"].shape == (120,)
    sel = sp.prune(tmp_path / "scores", by="aum", rule="drop-high", fraction=0.25, per_class=True)
    assert len(sel.keep) == 88  # round(0.25 * 30) = 8 removed per class
    assert len(sel.subset(TensorDataset(torch.from_numpy(x), torch.from_numpy(y)))) == 88
    assert len(sel.subset(Mine())) == 88  # no fingerprint on a generic Dataset: checked by length
    other = TensorDataset(torch.from_numpy(x + 1), torch.from_numpy(y))  # same length, other data
    with pytest.raises(sp.SensPruneError, match=r"^sel.subset: this data has training fingerprint \w+, but"):
        sel.subset(other)
    with pytest.raises(sp.SensPruneError, match="covers 120 training examples but the dataset has 60"):
        sel.subset((x[:60], y[:60]))
    with pytest.raises(sp.ValidationError, match="unknown option"):
        sp.prune(a, by="aum", rule="drop-high", fraction=0.2, per_clas=True)
    res = sp.bench((x, y, xt, yt), selections={"mine": sel}, model=_net, seeds=2, epochs=1, batch_size=32)
    assert {r["arm"] for r in res.rows} == {"full", "mine", "random[mine]"} and len(res.rows) == 6
    assert all(r["n_train"] == 88 for r in res.rows if r["arm"] != "full")
    assert "vs_random" in res.summary["mine"] and "mine" in str(res)
    with pytest.raises(sp.ValidationError, match="needs a test split"):
        sp.bench((x, y), selections={"mine": sel})
    with pytest.raises(sp.SensPruneError, match="made from other data"):
        sp.bench((x + 1, y, xt, yt), selections={"mine": sel}, epochs=1)


def test_import_sensprune_is_light_and_facade_names_keep_modules():
    import subprocess
    import sys

    code = ("import sys, sensprune as sp; assert 'torch' not in sys.modules and 'numpy' not in sys.modules; "
            "import sensprune.benchmark as B; assert hasattr(B, 'run_grid'); "
            "import sensprune.scoring.stage as S; assert S.ScoreConfig and callable(sp.score) and callable(sp.prune); "
            "assert sp.Tracker.__name__ == 'Tracker'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_bench_reweighting_selection_uses_weights_and_shuffled_baseline(tiny_arrays):
    import sensprune as sp

    x, y, xt, yt = tiny_arrays
    table = sp.score((x, y), measures=["aum"], epochs=1, widths=(8,))
    sel = sp.prune(table, by="aum", reweight="softmax", per_class=True)
    assert sel.weights is not None and len(sel.keep) == 120
    res = sp.bench((x, y, xt, yt), selections={"w": sel}, seeds=2, epochs=1, widths=(8,))
    assert [r["n_train"] for r in res.rows] == [120] * 6 and "vs_random" in res.summary["w"]


def test_prune_and_load_selection_return_one_class_with_a_one_line_repr(tiny_arrays, tmp_path):
    import sensprune as sp
    from sensprune.pruning.selection import Selection

    x, y, _, _ = tiny_arrays
    table = sp.score((x, y), measures=["aum"], epochs=1, widths=(8,))
    sel = sp.prune(table, by="aum", rule="drop-high", fraction=0.25)
    loaded = sp.load_selection(sel.save(tmp_path / "p"))
    assert type(sel) is type(loaded) is Selection is sp.Selection
    assert all(callable(getattr(loaded, m)) for m in ("subset", "sampler", "save"))
    assert repr(loaded) == repr(sel) == "Selection(n=120, kept=90, dropped=30, rule='drop-high', by='aum')"
    np.testing.assert_array_equal(loaded.indices(), sel.keep)
    w = sp.prune(table, by="aum", reweight="softmax")
    assert repr(w) == "Selection(n=120, kept=120, dropped=0, reweight='softmax', by='aum')"


def test_a_python_model_is_passed_as_an_object(tiny_arrays):
    import sensprune.api as api

    x, y, _, _ = tiny_arrays
    assert not hasattr(api, "_user_models")  # no module global holds the user's model while it runs
    table = api.score((x, y), measures=["aum"], model=_net, epochs=1)
    assert table.meta["config"]["model"] == "python:_net" and "model_factory" not in table.meta["config"]
