"""CUDA paths the CPU tests cannot see: part ``cuda-paths`` of ``benchmarks/device_check.sh``. On a CUDA device:

    .venv/bin/python benchmarks/device_check/cuda_paths.py       # prints PASS/FAIL lines; exit 1 on a failure

1. Collectives under NCCL. With one GPU a real 2-rank NCCL group cannot be built (NCCL refuses two ranks on
   one device), so a 1-rank group is used and sensprune is told the world has 2 ranks: the training loop then
   makes the same collective calls as under torchrun (epoch statistics and hook accumulators, CPU tensors).
   a) a plain ``nccl`` group (as a user's own script may start) rejects a CPU tensor — the original defect;
   b) ``sensprune.train.distributed.all_reduce`` sends it as a CUDA copy, and ``train()`` with every online
      measure runs 2 epochs through NCCL;
   c) the ``cpu:gloo,cuda:nccl`` group that ``init_from_env`` now starts takes CPU and CUDA tensors.
2. Checkpoints restore the CUDA RNG: with dropout on the GPU, 2 epochs straight equal a run killed in
   epoch 2 and resumed in a process whose CUDA generator was reseeded.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist

from sensprune.config import TrainConfig
from sensprune.data import make_dataset
from sensprune.scoring.stage import ScoreConfig, build_hooks, model_builder
from sensprune.train import distributed as D
from sensprune.train.loop import train
from sensprune.train.models import MLP
from sensprune.train.sources import ArraySource

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "tests"))
from train_helpers import KillInSecondEpoch, Killed  # noqa: E402  (shared with tests/test_checkpoint.py)

FAILED = []


def report(ok: bool, what: str) -> None:
    print(f"{'PASS' if ok else 'FAIL'}  {what}", flush=True)
    if not ok:
        FAILED.append(what)


def _data(n=256, f=20, k=4, seed=0):
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    x = rng.normal(size=(k, f))[y] * 2 + rng.normal(size=(n, f))
    return x.astype(np.float32), y


def _group(backend: str, tmp: Path, name: str) -> None:
    dist.init_process_group(backend, init_method=f"file://{tmp / name}", rank=0, world_size=1)


def check_collectives(tmp: Path) -> None:
    dev = torch.device("cuda")
    # a) plain NCCL rejects a CPU tensor
    _group("nccl", tmp, "g1")
    try:
        dist.all_reduce(torch.ones(3, dtype=torch.float64))
        rejected = False
    except Exception as exc:  # torch raises RuntimeError / DistBackendError
        rejected = True
        print(f"      plain nccl + CPU tensor: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")
    report(rejected, "a) a plain nccl group rejects a CPU tensor (the defect sensprune must avoid)")
    # b) through sensprune: all_reduce moves it; train() with every online measure runs its collectives
    real_world = D.world_size
    D.world_size = lambda: 2
    seen = []
    real_all_reduce = dist.all_reduce

    def recording(t, *a, **k):
        seen.append(t.device.type)
        return real_all_reduce(t, *a, **k)

    dist.all_reduce = recording
    try:
        t = torch.arange(3, dtype=torch.float64)
        D.all_reduce(t)
        report(t.device.type == "cpu" and t.tolist() == [0.0, 1.0, 2.0] and seen == ["cuda"],
               f"b) D.all_reduce(CPU tensor) under nccl went through as {seen}, result back on {t.device}")
        seen.clear()
        x, y = _data()
        data = make_dataset(x, y, x[:32], y[:32], spec="cuda-check")
        measures = ("input_grad", "loss", "el2n", "forgetting", "aum", "confidence", "variability")
        cfg = ScoreConfig(dataset="cuda-check", widths=(32,), measures=measures,
                          train=TrainConfig(epochs=2, batch_size=32, device="cuda"))
        _, hooks = build_hooks(data, cfg)
        try:
            train(model_builder(data, cfg), ArraySource(data.x_train, data.y_train, dev), cfg.train, hooks=hooks,
                  progress=False)
            ok, why = True, ""
        except Exception as exc:
            ok, why = False, f": {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
        report(ok and len(seen) > 0 and set(seen) == {"cuda"},
               f"b) train() on CUDA, 2 epochs, 7 measures, world seen as 2: {len(seen)} collectives, "
               f"devices {sorted(set(seen))}{why}")
    finally:
        dist.all_reduce = real_all_reduce
        D.world_size = real_world
        dist.destroy_process_group()
    # c) the group a CUDA torchrun now starts takes both
    try:
        _group(D.CUDA_BACKEND, tmp, "g2")
        a, b = torch.ones(2, dtype=torch.float64), torch.ones(2, device=dev)
        dist.all_reduce(a)
        dist.all_reduce(b)
        report(a.tolist() == [1.0, 1.0] and b.tolist() == [1.0, 1.0],
               f"c) a '{D.CUDA_BACKEND}' group reduces a CPU and a CUDA tensor")
    except Exception as exc:
        report(False, f"c) a '{D.CUDA_BACKEND}' group: {type(exc).__name__}: {exc}")
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


def check_cuda_rng_resume(tmp: Path) -> None:
    x, y = _data()
    dev = torch.device("cuda")
    cfg = TrainConfig(epochs=2, batch_size=32, device="cuda")

    def build():
        return MLP(4, (20,), widths=(64, 64), dropout=0.5)

    straight = train(build, ArraySource(x, y, dev), cfg, progress=False)
    try:
        train(build, ArraySource(x, y, dev), cfg, hooks=[KillInSecondEpoch()], checkpoint_dir=tmp / "ck",
              progress=False)
    except Killed:
        pass
    with np.load(tmp / "ck" / "checkpoint.npz") as z:
        saved = [k for k in z.files if k.startswith("rng/cuda/")]
    torch.manual_seed(999)
    torch.cuda.manual_seed_all(999)  # a new process: other CPU and CUDA generator states
    resumed = train(build, ArraySource(x, y, dev), cfg, checkpoint_dir=tmp / "ck", progress=False)
    pairs = zip(straight.model.parameters(), resumed.model.parameters())
    diff = max(float((a.detach() - b.detach()).abs().max()) for a, b in pairs)
    report(bool(saved) and resumed.resumed_from_epoch == 1 and diff == 0.0,
           f"2) dropout on CUDA: checkpoint holds {saved}; straight vs killed+resumed max |Δθ| = {diff:.3g}")


def main() -> int:
    if not torch.cuda.is_available():
        print("SKIP  no CUDA device")
        return 0
    os.environ.setdefault("TQDM_DISABLE", "1")
    print(f"# cuda_paths_check: torch {torch.__version__}, {torch.cuda.get_device_name()}, "
          f"{torch.cuda.device_count()} GPU(s), NCCL {'available' if dist.is_nccl_available() else 'ABSENT'}")
    with tempfile.TemporaryDirectory() as d:
        check_collectives(Path(d))
        check_cuda_rng_resume(Path(d))
    print(f"# {'all passed' if not FAILED else f'{len(FAILED)} FAILED'}")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
