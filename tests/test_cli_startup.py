"""CLI start-up (issue 14 item 3): `--help`, usage errors and the commands that do not train never import torch.

Each check runs in a fresh interpreter (a subprocess), since this test process has torch loaded already.
No timing is asserted here; the wall times are measured in README ("Start-up time").
"""

import subprocess
import sys
from pathlib import Path

import pytest

from sensprune.cli import COMMANDS

PROBE = """
import sys
from sensprune.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
heavy = [m for m in ("torch", "torchvision", "matplotlib") if m in sys.modules]
print("HEAVY=" + ",".join(heavy), file=sys.stderr)
"""


def _heavy(args, cwd=None):
    r = subprocess.run([sys.executable, "-c", PROBE, *map(str, args)], capture_output=True, text=True, cwd=cwd,
                       timeout=300)
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("HEAVY=")]
    assert line, r.stderr
    return line[-1][len("HEAVY="):], r


def test_import_of_every_command_does_not_load_torch():
    code = ("import sys\nimport sensprune.cli as c\n"
            "for name in c.COMMANDS: c.cli.get_command(None, name)\n"
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "False"


@pytest.mark.parametrize("args", [["--help"], *[[c, "--help"] for c in COMMANDS],
                                  ["prune"], ["score", "--epochs", "0", "--out", "x"], ["nope"],
                                  ["prune", "--scores", "missing", "--by", "el2n", "--rule", "drop-high",
                                   "--fraction", "0.1", "--out", "p"]],
                         ids=lambda a: " ".join(a))
def test_help_and_usage_errors_do_not_load_torch(args, tmp_path):
    heavy, r = _heavy(args, cwd=tmp_path)
    assert "torch" not in heavy.split(","), r.stderr
    assert "Traceback" not in r.stderr


def test_info_prune_report_on_existing_folders_do_not_load_torch(tmp_path):
    import numpy as np

    from sensprune.scoring.table import ScoreTable, save_scores

    n = 40
    rng = np.random.default_rng(0)
    table = ScoreTable(index=np.arange(n), label=np.arange(n) % 2, scores={"el2n": rng.random(n)},
                       meta={"dataset": {"spec": "digits", "n_train": n, "num_classes": 2, "fingerprint": "x"}})
    save_scores(table, tmp_path / "s")
    for args in (["info", "s"],
                 ["prune", "--scores", "s", "--by", "el2n", "--rule", "drop-high", "--fraction", "0.1", "--out", "p"],
                 ["info", "p"], ["report", "p", "--quiet"]):
        heavy, r = _heavy(args, cwd=tmp_path)
        assert "torch" not in heavy.split(","), (args, r.stderr)
        assert "Error" not in r.stderr, r.stderr
    assert (tmp_path / "p" / "keep.npy").exists()


def test_option_types_and_stage_packages_import_without_torch():
    """sensprune.config (TrainConfig, MeasureOptions, ...) and the stage packages themselves load no torch."""
    code = ("import sys\nimport sensprune.config, sensprune.benchmark.config, sensprune.pruning.selection\n"
            "import sensprune.train, sensprune.scoring, sensprune.pruning, sensprune.benchmark, sensprune.reporting\n"
            "from sensprune.config import TrainConfig\nTrainConfig(epochs=1)\n"
            "print('torch' in sys.modules)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "False"
    from sensprune.train.loop import TrainConfig
    from sensprune.config import TrainConfig as torch_free
    assert TrainConfig is torch_free  # one class, one home


GRID = Path(__file__).resolve().parents[1] / "benchmarks" / "open_question" / "v2" / "small" / "digits-fit"


@pytest.mark.skipif(not (GRID / "config.json").exists(), reason="the committed digits grid is absent")
def test_bench_merge_of_an_existing_grid_does_not_load_torch(tmp_path):
    heavy, r = _heavy(["bench-merge", GRID, "--out", "merged"], cwd=tmp_path)
    assert "torch" not in heavy.split(","), r.stderr
    assert (tmp_path / "merged" / "summary.csv").exists(), r.stderr


def test_group_help_lists_every_command_with_its_summary():
    from cli_helpers import run_cli

    from sensprune.cli import SUMMARY

    r = run_cli(["--help"])
    assert r.exit_code == 0
    assert set(SUMMARY) == set(COMMANDS)
    for name, line in SUMMARY.items():
        assert f"{name}  " in r.output and line.split()[0] in r.output
