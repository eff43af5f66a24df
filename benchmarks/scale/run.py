"""Scoring time and peak memory at 100k, 300k and 1M examples (issue 7).

For each N a synthetic ``npz:`` dataset (benchmarks/scale/make_synthetic.py, D = 32) is scored
by a fresh ``sensprune score`` process (MLP 64, batch 512, all default online measures), and the
wall time and peak resident memory (ru_maxrss of that process) are printed, with the ratios that
check linear growth: (time / N) relative to the smallest N, and the throughput of scoring (training
examples × epochs ÷ score()'s own time). Targets: peak RSS at 1M < 3 GB; time linear in N.

    python benchmarks/scale/run.py [--sizes 100000,300000,1000000] [--epochs 2] [--device cpu]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from make_synthetic import make  # noqa: E402


def run_one(n: int, epochs: int, work: Path, device: str = "cpu") -> tuple[float, float, float]:
    data = work / f"synth-{n}.npz"
    np.savez(data, **make(n))
    cmd = [sys.executable, "-m", "sensprune", "score", "--dataset", f"npz:{data}", "--widths", "64",
           "--batch-size", "512", "--epochs", str(epochs), "--device", device, "--quiet",
           "--out", str(work / f"scores-{n}")]
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"score failed for N={n}: {proc.stderr.read().decode()}")
    data.unlink()
    scoring = json.loads((work / f"scores-{n}" / "meta.json").read_text())["wall_time_s"]
    return wall, scoring, usage.ru_maxrss / 1024 ** 2  # ru_maxrss is in KiB on Linux → GiB


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="100000,300000,1000000")
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    sizes = [int(s) for s in a.sizes.split(",")]
    import torch

    print("# sensprune scoring at scale")
    gpu = torch.cuda.get_device_name() if a.device.startswith("cuda") else "no GPU used"
    print(f"date {date.today()}  machine: {os.cpu_count()} CPU cores ({platform.machine()}), {gpu}, "
          f"device {a.device}, torch {torch.__version__}; load average {os.getloadavg()[0]:.1f} at start")
    print(f"model mlp(64), batch 512, epochs {a.epochs}, measures: default online set, D = 32, 10 classes\n")
    print("wall = the whole process (start-up, loading, scoring, writing); scoring = score()'s own time\n")
    print(f"{'N':>10} {'wall s':>8} {'scoring s':>10} {'peak RSS GiB':>13} {'µs/example/epoch':>17} "
          f"{'(t/N) ÷ (t/N)_first':>20} {'examples/s':>11}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in sizes:
            wall, scoring, rss = run_one(n, a.epochs, Path(tmp), a.device)
            rows.append((n, scoring, rss))
            per = scoring / n
            print(f"{n:>10} {wall:>8.1f} {scoring:>10.1f} {rss:>13.2f} {1e6 * per / a.epochs:>17.1f} "
                  f"{per / (rows[0][1] / rows[0][0]):>20.2f} {n * a.epochs / scoring:>11,.0f}", flush=True)
    n_max, _, rss_max = rows[-1]
    print(f"\npeak RSS at N={n_max}: {rss_max:.2f} GiB (target < 3 GB = 2.79 GiB: "
          f"{'met' if rss_max < 3e9 / 2 ** 30 else 'NOT met'})")
    lin = (rows[-1][1] / rows[-1][0]) / (rows[0][1] / rows[0][0])
    print(f"scoring time per example at N={n_max} ÷ at N={rows[0][0]} = {lin:.2f} (1.00 = linear)")


if __name__ == "__main__":
    main()
