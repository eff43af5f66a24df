"""A fresh machine has neither the Fashion-MNIST Debian package nor Chromium: the tests that need
them skip with a reason instead of failing (issue 13, item 9).

Both are hidden by pointing their locations at an empty folder (``$SENSPRUNE_FASHION_MNIST_DIR``,
which the loader honours, and ``$CHROMIUM``) and running the dependent tests in a child pytest.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from sensprune.data import builtin, load_dataset
from sensprune.errors import ValidationError

REPO = Path(__file__).resolve().parents[1]
# every test that needs Fashion-MNIST or Chromium; the reproduce tests run on digits (shipped with
# scikit-learn) except the slow --quick one, selected here with -m so that its skip is seen too
DEPENDENT = ["tests/test_reproduce.py::test_quick_run_finishes_with_six_verdicts",
             "tests/test_data.py::test_fashion_mnist_loads",
             "tests/test_report.py::test_screenshot_script_all_images_load"]


def test_env_var_hides_the_system_folder(tmp_path, monkeypatch):
    monkeypatch.setenv(builtin.FASHION_MNIST_ENV, str(tmp_path))
    assert builtin.fashion_mnist_dir() == str(tmp_path) and not builtin.fashion_mnist_available()
    with pytest.raises(ValidationError, match=re.escape(f"Fashion-MNIST files not found in {tmp_path}; ")):
        load_dataset("fashion-mnist")


def test_dependent_tests_skip_without_fashion_mnist_and_chromium(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    env = {**os.environ, builtin.FASHION_MNIST_ENV: str(empty), "CHROMIUM": str(empty / "chromium")}
    r = subprocess.run([sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider", "-m", "slow or not slow",
                        *DEPENDENT],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out  # nothing failed
    skipped = [ln for ln in out.splitlines() if ln.startswith("SKIPPED")]
    fashion = [ln for ln in skipped if f"Fashion-MNIST, absent from {empty}" in ln
               or f"Fashion-MNIST files absent from {empty}" in ln]
    chromium = [ln for ln in skipped if f"needs Chromium, absent from {empty / 'chromium'}" in ln]
    assert len(fashion) == 2 and len(chromium) == 1, out  # reproduce --quick and the loader test; the screenshot
    assert len(skipped) == len(fashion) + len(chromium), out  # nothing else skipped
