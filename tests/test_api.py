"""The Python facade (sp.score / sp.prune / sp.bench), the hook contract and no global-state changes."""

from __future__ import annotations

import numpy as np
import torch

from sensprune.train import REPLICATED, SUM, ArraySource, Hook, TrainConfig, train


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
    from sensprune.models import build_model

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
            "import sensprune.plots as P; "
            f"P.lorenz_curves({{'a': [i / 100 for i in range(101)]}}, {str(out)!r}); "
            "assert 'matplotlib.pyplot' not in sys.modules, 'pyplot imported'; "
            "assert dict.__getitem__(matplotlib.rcParams, 'backend') == b, 'backend switched'")
    subprocess.run([sys.executable, "-c", code], check=True)
    assert out.stat().st_size > 1000
