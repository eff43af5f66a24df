"""What the six paper experiments share: scales, the paper's data, a fit tracker hook, verdicts, figures.

Data (Arpit et al. 2017, §3): Fashion-MNIST average-pooled 2×2 to 14×14 (the recipe of
``benchmarks/unrolled_accuracy/common.py``), a stratified subset of the 60k training images
(subsample seed 0) and the first ``n_test`` test images as the validation set.

Models: the paper's MLP 16-16 for the unrolled measures (experiments 2 and 3, plain SGD as the
unrolling needs), and a wider MLP trained with Adam (the *memorization model*, ``Scale.mem_widths``)
where random data must actually be fit within a CPU budget (experiments 1, 4, 5, 6).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from sensprune.data import load_dataset, make_dataset
from sensprune.data.registry import subsample_dataset
from sensprune.models import build_model
from sensprune.plots import _save as save_png  # noqa: F401  (PNG written atomically)
from sensprune.plots import plt  # noqa: F401  (pyplot on the Agg backend)
from sensprune.train import ArraySource, Hook, Run, TrainConfig, train

REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE = "reproduced", "not reproduced", "inconclusive"
VERDICT_WORDS = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE)


@dataclass(frozen=True)
class Scale:
    """Sizes of one reproduction run (``tiny`` for tests, ``quick`` < 10 min, ``full`` ~ 15-35 min on 2 cores)."""

    name: str
    n: int                                   # training examples, experiments 2-5 (the paper: 1000)
    n_test: int                              # validation examples (first n_test test images)
    mem_widths: tuple[int, ...]              # memorization MLP, experiments 1, 4, 5, 6
    easy_n: int                              # exp 1: training examples
    easy_runs: int                           # exp 1: one-epoch runs (seeds) per dataset
    gini_epochs: int                         # exp 2
    per_class_epochs: int                    # exp 3
    per_class_seeds: int                     # exp 3
    noise_levels: tuple[float, ...]          # exp 4
    csr_epochs: int                          # exp 4
    csr_samples: int                         # exp 4: validation examples searched by LASS per epoch
    dropouts: tuple[float, ...]              # exp 5
    dropout_epochs: int                      # exp 5
    sizes: tuple[int, ...]                   # exp 6
    max_epochs: int                          # exp 6: cap on epochs to reach the threshold


SCALES = {
    "tiny": Scale("tiny", n=120, n_test=200, mem_widths=(64, 64), easy_n=120, easy_runs=3, gini_epochs=2,
                  per_class_epochs=1, per_class_seeds=1, noise_levels=(0.0, 0.4, 0.8), csr_epochs=3,
                  csr_samples=50, dropouts=(0.0, 0.5), dropout_epochs=3, sizes=(60, 120), max_epochs=4),
    "quick": Scale("quick", n=1000, n_test=2000, mem_widths=(512, 512), easy_n=2000, easy_runs=30,
                   gini_epochs=150, per_class_epochs=60, per_class_seeds=1, noise_levels=(0.0, 0.4, 0.8),
                   csr_epochs=60, csr_samples=1000, dropouts=(0.0, 0.2, 0.5, 0.8), dropout_epochs=80,
                   sizes=(250, 500, 1000), max_epochs=150),
    "full": Scale("full", n=1000, n_test=2000, mem_widths=(512, 512), easy_n=3000, easy_runs=100,
                  gini_epochs=300, per_class_epochs=200, per_class_seeds=2,
                  noise_levels=(0.0, 0.2, 0.4, 0.6, 0.8), csr_epochs=150, csr_samples=1000,
                  dropouts=(0.0, 0.2, 0.4, 0.6, 0.8), dropout_epochs=150,
                  sizes=(250, 500, 1000, 2000, 4000), max_epochs=300),
}

#: the paper's setting for the unrolled measures: MLP 16-16, plain SGD with momentum, no weight decay
PAPER_WIDTHS = (16, 16)


def paper_train(epochs: int, seed: int) -> TrainConfig:
    """SGD config of experiments 2 and 3 (unrollable: SGD, no dropout; weight decay 0 to let noise be fit)."""
    return TrainConfig(epochs=epochs, batch_size=128, lr=0.05, momentum=0.9, weight_decay=0.0,
                       schedule="cosine", seed=seed)


def mem_train(epochs: int, seed: int, batch_size: int = 128) -> TrainConfig:
    """Adam config of the memorization model (constant lr, no weight decay: nothing holds memorization back)."""
    return TrainConfig(epochs=epochs, batch_size=batch_size, optimizer="adam", lr=1e-3, weight_decay=0.0,
                       schedule="constant", seed=seed)


@lru_cache(maxsize=2)
def _pooled_fashion(n_test: int):
    d = load_dataset("fashion-mnist")

    def pool(x):
        return F.avg_pool2d(torch.as_tensor(x)[:, None], 2)[:, 0].numpy()
    return make_dataset(pool(d.x_train), d.y_train, pool(d.x_test[:n_test]), d.y_test[:n_test],
                        spec="fashion-mnist-14x14", num_classes=10, info={"input_range": 1.0})


def paper_data(n: int, n_test: int):
    """Fashion-MNIST at 14×14: a stratified subset of ``n`` training images, the first ``n_test`` test images."""
    return subsample_dataset(_pooled_fashion(n_test), int(n), seed=0)


class ThresholdReached(Exception):
    """Raised by :class:`FitTracker` to end a run once the training accuracy threshold is met."""


class FitTracker(Hook):
    """Eval-mode accuracy on the training set after every epoch: all examples, the ``noisy`` ones, the rest.

    ``rows`` is a list of (acc_all, acc_noisy, acc_clean) per epoch (NaN for an empty group). With
    ``stop_at``, the run ends (``ThresholdReached``) after the first epoch with acc_all >= stop_at —
    the one training loop has no early-stop switch, so the hook ends it.
    """

    replicated = True

    def __init__(self, noisy_idx: Sequence[int] = (), stop_at: float | None = None):
        self.noisy_idx = np.asarray(noisy_idx, dtype=np.int64)
        self.stop_at = stop_at
        self.rows: list[tuple[float, float, float]] = []

    def on_epoch_end(self, epoch: int, run: Run) -> None:
        correct = (run.logits(run.train).argmax(1) == run.train.y).cpu().numpy()
        noisy = np.zeros(len(correct), bool)
        noisy[self.noisy_idx] = True
        def acc(m):  # noqa: E306
            return float(correct[m].mean()) if m.any() else float("nan")
        self.rows.append((float(correct.mean()), acc(noisy), acc(~noisy)))
        if self.stop_at is not None and correct.mean() >= self.stop_at:
            raise ThresholdReached(epoch + 1)


def fit(data, widths, cfg: TrainConfig, *, dropout: float = 0.0, hooks: Sequence[Hook] = (),
        validate: bool = True, progress: bool = False, desc: str = "train"):
    """Train an MLP on ``data`` with the one training loop; returns the TrainResult (None if a hook stopped it)."""
    dev = torch.device(cfg.device)

    def build():
        return build_model("mlp", data.num_classes, data.input_shape, widths=widths, dropout=dropout)
    test = ArraySource(data.x_test, data.y_test, dev) if validate else None
    try:
        return train(build, ArraySource(data.x_train, data.y_train, dev), cfg, test_data=test, hooks=hooks,
                     progress=progress, desc=desc)
    except ThresholdReached:
        return None


@dataclass
class Outcome:
    """What an experiment returns: the verdict word and sentence, its numbers and the files it wrote."""

    word: str
    sentence: str
    numbers: dict
    files: list[str]
    config: dict = dataclasses.field(default_factory=dict)


def three_way(ok: bool, bad: bool) -> str:
    """``reproduced`` if ok, ``not reproduced`` if bad (and not ok), else ``inconclusive``."""
    return REPRODUCED if ok else NOT_REPRODUCED if bad else INCONCLUSIVE


def spearman(a, b) -> float:
    """Spearman rank correlation (average ranks for ties); NaN when either side is constant."""
    def ranks(v):
        v = np.asarray(v, np.float64)
        order = np.argsort(v, kind="mergesort")
        r = np.empty(len(v))
        r[order] = np.arange(len(v), dtype=np.float64)
        for u in np.unique(v):
            r[v == u] = r[v == u].mean()
        return r
    ra, rb = ranks(a), ranks(b)
    if ra.std() == 0 or rb.std() == 0:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def fmt(v: float, digits: int = 3) -> str:
    return "nan" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"
