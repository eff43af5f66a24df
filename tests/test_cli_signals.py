"""SIGTERM (a scheduler's or a user's kill) ends a command cleanly: one line, exit 143, no output folder."""

import os
import signal
import subprocess
import sys
import time


def test_sigterm_during_score_is_one_line_and_publishes_nothing(tmp_path):
    out = tmp_path / "s"
    env = {**os.environ, "TQDM_DISABLE": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "sensprune", "score", "--dataset", "digits", "--epochs", "400",
                             "--measures", "loss", "--quiet", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    partial = tmp_path / "s.partial"
    deadline = time.time() + 120
    while not partial.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert partial.exists(), "the run never started"
    time.sleep(1.0)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, (proc.returncode, err)
    assert err.strip().splitlines() == ["Terminated."], err
    assert not out.exists()
    assert not [p for p in tmp_path.rglob("*") if "staging" in p.name]
