"""CUDA check of the Python surface: part ``api`` of ``benchmarks/device_check.sh`` (run from the repository root).

    PYTHONPATH=. python3 benchmarks/device_check/api_cuda.py     # PASS/FAIL lines; exit 1 on a failure

1) train() on CUDA seeds inside a forked RNG: the caller's CPU and CUDA generator states are unchanged
   after it, and two runs (dropout on) give identical weights.
2) sp.score on CUDA equals the Tracker fed the same run in a plain loop on CUDA (same init, order, SGD).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

import sensprune as sp
from sensprune.config import TrainConfig
from sensprune.train.loop import train
from sensprune.train.sources import ArraySource

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from train_helpers import user_loop  # noqa: E402  (the user loop of tests/test_tracker.py)

FAILED = []


def check(ok: bool, what: str) -> None:
    print(("PASS  " if ok else "FAIL  ") + what, flush=True)
    if not ok:
        FAILED.append(what)


def main() -> None:
    name = sys.argv[1] if len(sys.argv) > 1 else "cuda"  # "cpu" runs the same checks here (a dry run)
    cuda = name == "cuda"
    assert not cuda or torch.cuda.is_available(), "needs a CUDA device"
    print(f"# api_cuda_check: torch {torch.__version__}, {torch.cuda.get_device_name() if cuda else 'cpu'}")
    rng = np.random.default_rng(0)
    c = rng.normal(size=(4, 6)) * 3
    y = np.repeat(np.arange(4), 64)
    x = (c[y] + rng.normal(size=(256, 6))).astype(np.float32)
    dev = torch.device(name)

    def drop_net():
        return torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Dropout(0.5),
                                   torch.nn.Linear(32, 4))
    torch.manual_seed(7)
    cpu0, cuda0 = torch.get_rng_state(), torch.cuda.get_rng_state() if cuda else None
    src = ArraySource(x, y, dev)
    a = train(drop_net, src, TrainConfig(epochs=2, batch_size=32, device=name), progress=False)
    same_rng = torch.equal(torch.get_rng_state(), cpu0) and (not cuda or torch.equal(torch.cuda.get_rng_state(), cuda0))
    check(same_rng, f"1) train() on {name} leaves the caller's CPU and CUDA RNG states unchanged")
    b = train(drop_net, src, TrainConfig(epochs=2, batch_size=32, device=name), progress=False)
    d = max(float((p - q).detach().abs().max()) for p, q in zip(a.model.parameters(), b.model.parameters()))
    check(d == 0.0, f"1) two {name} runs with dropout: max |dtheta| = {d:g}")

    def net():
        return torch.nn.Sequential(torch.nn.Linear(6, 32), torch.nn.ReLU(), torch.nn.Linear(32, 4))
    measures = ["loss", "forgetting", "aum", "confidence", "correctness", "input_grad", "el2n"]
    table = sp.score((x, y), measures=measures, model=net, epochs=3, seed=0, batch_size=32, schedule="constant",
                     device=name)
    t = user_loop(net, x, y, measures, epochs=3, bs=32, seed=0, device=name)
    got = t.values()
    for m in measures:
        err = float(np.max(np.abs(got[m] - table.scores[m]) / (np.abs(table.scores[m]) + 1e-6)))
        check(np.isfinite(got[m]).all() and err < 1e-3, f"2) Tracker = sp.score on {name}: {m} max rel err {err:.2e}")
    with tempfile.TemporaryDirectory() as tmp:
        t.save(f"{tmp}/t")
        check(sp.load_scores(f"{tmp}/t").scores["aum"].shape == (256,), f"2) Tracker.save on {name} writes a folder")
    print("# all passed" if not FAILED else f"# {len(FAILED)} failed")
    sys.exit(1 if FAILED else 0)


if __name__ == "__main__":
    main()
