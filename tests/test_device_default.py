"""``--device`` defaults to ``auto`` (CUDA if available, else MPS, else CPU) in every place a user sets it:
the CLI's train options, ``bench --device``, ``TrainConfig`` (so a bench TOML's ``[train]`` and the facade's
``**train_kw``) and the torchrun process group."""

from pathlib import Path

import pytest
import torch
import torch.distributed as dist

from sensprune.config import TrainConfig
from sensprune.train import distributed as D
from sensprune.train.loop import resolve_device

REPO = Path(__file__).resolve().parents[1]


def _fake_devices(monkeypatch, cuda: bool, mps: bool) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)


@pytest.mark.parametrize("cuda, mps, want", [(False, False, "cpu"), (True, False, "cuda"), (True, True, "cuda"),
                                             (False, True, "mps")])
def test_auto_takes_cuda_then_mps_then_cpu(monkeypatch, cuda, mps, want):
    _fake_devices(monkeypatch, cuda, mps)
    assert resolve_device("auto").type == want


@pytest.mark.skipif(torch.cuda.is_available() or torch.backends.mps.is_available(), reason="an accelerator is here")
def test_the_default_resolves_to_cpu_on_a_machine_without_an_accelerator():
    assert resolve_device(TrainConfig().device) == torch.device("cpu")


def test_train_config_and_the_facade_default_to_auto():
    from sensprune.api import _train_config

    assert TrainConfig().device == "auto"
    assert _train_config(1, 0, {}, "sp.score").device == "auto"
    assert _train_config(1, 0, {"device": "cpu"}, "sp.score").device == "cpu"


def test_cli_train_options_default_to_auto_and_help_says_what_auto_means():
    from cli_helpers import run_cli

    from sensprune.cli.score import score

    (opt,) = [p for p in score.params if p.name == "device"]
    assert opt.default == "auto"
    r = run_cli(["score", "--help"])
    assert r.exit_code == 0
    assert "CUDA if available, else MPS, else CPU" in " ".join(r.output.split())
    assert "[default: auto]" in " ".join(r.output.split())
    r = run_cli(["bench", "--help"])
    assert r.exit_code == 0 and "default auto = CUDA if available" in " ".join(r.output.split())


def test_bench_toml_without_a_device_is_auto_and_committed_cpu_grids_say_cpu():
    from sensprune.benchmark.config import load_config

    assert load_config(REPO / "benchmarks" / "open_question" / "demo.toml").train.device == "auto"
    # the committed grids ran on CPU: their TOMLs say so, so --resume matches the stored config.json
    assert load_config(REPO / "benchmarks" / "open_question" / "digits.toml").train.device == "cpu"


def test_torchrun_with_the_default_device_binds_the_gpu_and_starts_nccl(monkeypatch):
    started, bound = [], []
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", bound.append)
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend, **kw: started.append(backend))
    D.init_from_env(TrainConfig().device)
    assert started == [D.CUDA_BACKEND] and bound == [1]
