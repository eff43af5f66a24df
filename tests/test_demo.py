"""`make demo` is the pipeline: its bench step benches the very prune folder the demo made."""

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _demo_recipe() -> str:
    if shutil.which("make"):
        # -n prints the recipe without running it; -o keeps the venv stamp from being rebuilt
        out = subprocess.run(["make", "-n", "-o", ".venv/.installed", "demo"], cwd=REPO, capture_output=True,
                             text=True, check=True).stdout
    else:  # pragma: no cover - make is part of the dev environment
        text = (REPO / "Makefile").read_text(encoding="utf-8")
        out = text[text.index("\ndemo:"):text.index("\ntest:")]
    return " ".join(out.replace("\\\n", " ").split())


def test_demo_benches_its_own_prune_folder():
    recipe = _demo_recipe()
    steps = [s.strip() for s in re.split(r";\s*", recipe)]
    score = next(s for s in steps if "sensprune score" in s)
    prune = next(s for s in steps if "sensprune prune" in s)
    bench = next(s for s in steps if "sensprune bench" in s)
    report = next(s for s in steps if "sensprune report" in s)
    assert "--out demo-out/scores" in score and "loss_sensitivity" in score
    assert "--scores demo-out/scores" in prune and "--by loss_sensitivity" in prune
    assert "--out demo-out/pruned" in prune
    assert "--selection demo-out/pruned" in bench
    # the order is the pipeline's: score -> prune -> bench -> report, and the verdict is printed from the bench
    assert steps.index(score) < steps.index(prune) < steps.index(bench) < steps.index(report)
    assert "demo-out/bench/verdict.md" in recipe


@pytest.mark.parametrize("folder", ["demo-out/scores", "demo-out/pruned", "demo-out/bench"])
def test_demo_says_where_each_folder_is(folder):
    assert f"{folder} " in _demo_recipe().split("Folders:")[1]
