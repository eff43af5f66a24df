"""What the six paper experiments share: scales, the data, the training set-ups, a fit tracker, figures.

Paper: Arpit et al., "A Closer Look at Memorization in Deep Networks", ICML 2017 (arXiv 1706.05394 v2).

**What stands in for what.** The paper used MNIST (and CIFAR-10), plain SGD with lr 0.01, and MLPs of
up to 4096 units on up to 50 000 examples. Here, on 2 CPU cores:

- *Data*: Fashion-MNIST average-pooled 2×2 to 14×14 (the Debian package ``dataset-fashion-mnist``)
  stands in for MNIST; a stratified subset of the training images (subsample seed 0) and the first
  ``n_test`` test images as the validation set. The ``tiny`` scale (tests) uses scikit-learn's
  8×8 ``digits``, which ships with the library.
- *Loss sensitivity (exps 2, 3)*: the paper's measure — ``loss_sensitivity``, the full-horizon
  estimator (K = 16 stratified probe steps, each ∂L_t/∂x exact through every earlier SGD update,
  :mod:`sensprune.measures.loss_sensitivity.sampled`) — on the paper's MLP 16-16 trained with **plain SGD** (no
  momentum, no weight decay, constant lr); lr 0.1 stands in for the paper's 0.01 so that 60
  CPU epochs get somewhere (random inputs about half fit at the full scale).
- *Memorization model (exps 1, 4, 5, 6)*: an MLP 512-512 trained with Adam (lr 1e-3, constant, no
  weight decay) stands in for the paper's wider MLPs with SGD: random data must actually be fit
  within a CPU budget.
- *Random labels* are ``randY-uniform`` (every label redrawn uniformly from all K classes, as in the
  paper), not ``randY`` (always a different class). *Random inputs* are ``randX`` (Gaussian with the
  data's per-feature mean and std).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from sensprune.config import TrainConfig
from sensprune.data import load_dataset, make_dataset
from sensprune.data.noise import apply_corruption, corrupt_inputs
from sensprune.data.registry import subsample_dataset
from sensprune.reporting.plots import _save as save_png  # noqa: F401  (PNG written atomically)
from sensprune.reporting.plots import _subplots as subplots  # noqa: F401  (a matplotlib Figure; no pyplot)
from sensprune.reproduce.settings import SCALES, Rules, Scale  # noqa: F401  (re-exported)
from sensprune.reproduce.verdict import Verdict
from sensprune.scoring.stage import ScoreConfig, score
from sensprune.train.hooks import Hook, Run
from sensprune.train.loop import train
from sensprune.train.models import build_model
from sensprune.train.sources import ArraySource

FASHION = "fashion-mnist-14x14"
RANDOM_LABELS = "randY-uniform"  # the paper's random labels
STAND_IN = ("Fashion-MNIST 14x14 stands in for the paper's MNIST")


#: the paper's MLP for the loss-sensitivity experiments (§3.2)
PAPER_WIDTHS = (16, 16)
SENS_LR, SENS_BATCH = 0.1, 32


def sens_train(epochs: int, seed: int) -> TrainConfig:
    """Plain SGD of experiments 2 and 3, as in the paper (no momentum, no weight decay, constant lr;
    lr 0.1 stands in for the paper's 0.01)."""
    return TrainConfig(epochs=epochs, batch_size=SENS_BATCH, optimizer="sgd", lr=SENS_LR, momentum=0.0,
                       weight_decay=0.0, schedule="constant", seed=seed, device="cpu")


def mem_train(epochs: int, seed: int, batch_size: int = 128, weight_decay: float = 0.0) -> TrainConfig:
    """Adam config of the memorization model (constant lr, no weight decay unless asked)."""
    return TrainConfig(epochs=epochs, batch_size=batch_size, optimizer="adam", lr=1e-3, weight_decay=weight_decay,
                       schedule="constant", seed=seed, device="cpu")


@lru_cache(maxsize=2)
def _pooled_fashion(n_test: int):
    d = load_dataset("fashion-mnist")

    def pool(x):
        return F.avg_pool2d(torch.as_tensor(x)[:, None], 2)[:, 0].numpy()
    return make_dataset(pool(d.x_train), d.y_train, pool(d.x_test[:n_test]), d.y_test[:n_test],
                        spec=FASHION, num_classes=10, info={"input_range": 1.0})


@lru_cache(maxsize=2)
def _digits(n_test: int):
    d = load_dataset("digits")
    return make_dataset(d.x_train, d.y_train, d.x_test[:n_test], d.y_test[:n_test], spec="digits", num_classes=10,
                        info={"input_range": 1.0})


def paper_data(n: int, scale: Scale):
    """A stratified subset of ``n`` training images and the first ``n_test`` test images of the scale's data."""
    base = _pooled_fashion(scale.n_test) if scale.dataset == FASHION else _digits(scale.n_test)
    return subsample_dataset(base, min(int(n), base.n_train), seed=0)


def random_labels(data, fraction: float, seed: int):
    """The paper's random labels (uniform over all classes) on ``fraction`` of the training set."""
    return apply_corruption(data, RANDOM_LABELS, fraction, seed)


def norm_matched_random_inputs(real, seed: int):
    """randX whose every input is rescaled to the L1 norm ‖x‖₁ of the real input it replaces.

    Real images differ a lot in norm (dark vs bright garments: the Gini of ‖x‖₁ is about 0.25 on
    Fashion-MNIST), Gaussian inputs hardly at all (about 0.03); with the norms matched, a Gini
    difference between real and random inputs is no longer one of input norms.
    """
    x = np.asarray(real.x_train, np.float32)
    noise, idx = corrupt_inputs(x, 1.0, seed=seed)
    flat_r, flat_n = x.reshape(len(x), -1), noise.reshape(len(x), -1)
    scale = np.abs(flat_r).sum(1) / np.maximum(np.abs(flat_n).sum(1), 1e-12)
    info = {**real.info, "corruption": {"kind": "randX, norm-matched", "fraction": 1.0, "seed": int(seed),
                                        "n_corrupted": int(len(idx)),
                                        "note": "Gaussian inputs rescaled to each real input's L1 norm"}}
    return dataclasses.replace(real, x_train=(noise * scale.reshape((-1,) + (1,) * (x.ndim - 1))).astype(np.float32),
                               spec=f"{real.spec}+randXnorm1s{seed}", info=info)


def input_norms(data, p: int = 1) -> np.ndarray:
    """‖x_i‖_p of every training input."""
    x = np.asarray(data.x_train, np.float64)
    return np.linalg.norm(x.reshape(len(x), -1), ord=p, axis=1)


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
    """What an experiment returns.

    ``verdict`` is the headline outcome of the paper's claim; ``evidence`` the numbers with their
    interval and number of seeds; ``rule`` one sentence saying how the verdict follows from them;
    ``rows`` which CSV rows hold the numbers; ``extra`` further rows (name, Verdict, text) such as
    controls or claims the paper does not make.
    """

    verdict: Verdict
    evidence: str
    rule: str
    rows: str
    numbers: dict
    files: list[str]
    config: dict = dataclasses.field(default_factory=dict)
    extra: list = dataclasses.field(default_factory=list)

    @property
    def word(self) -> str:
        return self.verdict.word


_SENS_CACHE: dict = {}


def sensitivity_run(data, seed: int, epochs: int, per_class: bool, progress: bool = False) -> dict:
    """One plain-SGD run of the MLP 16-16 on ``data`` with the paper's ``loss_sensitivity`` (full horizon).

    Returns ``values`` (N,), ``per_class`` ((K, K) or None), ``train_acc`` (eval mode, after the last
    epoch), ``notes`` (the hooks' ``meta()``: mode, probe steps, …). Runs are memoized for the process,
    so experiments 2 and 3 share the runs on the same data and seed.
    """

    key = (data.spec, data.n_train, seed, epochs, per_class)
    if key not in _SENS_CACHE:
        cfg = ScoreConfig(dataset=data.spec, widths=PAPER_WIDTHS, measures=("loss_sensitivity",),
                          measure_options={"per_class": True} if per_class else {}, train=sens_train(epochs, seed))
        table = score(data, cfg, progress=progress)
        acc = float(np.mean(table.predicted == np.asarray(data.y_train)))
        _SENS_CACHE[key] = {"values": np.asarray(table.scores["loss_sensitivity"], np.float64),
                            "per_class": np.asarray(table.extras["per_class"]) if per_class else None,
                            "train_acc": acc, "notes": table.meta.get("measure_notes", {})}
    return _SENS_CACHE[key]


def estimator_note(notes: dict) -> str:
    """One line naming the estimator from a hook's ``meta()`` (the score table's ``measure_notes``)."""
    ls = notes.get("loss_sensitivity") or notes.get("per_class") or {}
    return (f"{ls.get('mode', '?')}: K={ls.get('probe_times', '?')} of T={ls.get('steps', '?')} SGD steps, "
            f"each dL_t/dx exact through every earlier update")


def fmt(v: float, digits: int = 3) -> str:
    return "nan" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"
