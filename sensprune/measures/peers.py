"""Peer scores computed in the same warmup run (MEASURES §6), all oriented higher = harder.

- ``loss``: mean per-example cross-entropy over the example's presentations.
- ``forgetting`` (Toneva et al., ICLR 2019): number of correct → incorrect transitions between
  consecutive presentations; an example never classified correctly gets (presentations + 1), more
  than any learned example can reach, so never-learned examples rank as most forgettable.
- ``aum`` (Pleiss et al., NeurIPS 2020): the stored value is **−AUM**, i.e. minus the mean over
  presentations of (logit of the assigned label − largest other logit).
- ``confidence`` (Swayamdipta et al., EMNLP 2020): stored as 1 − mean p(y|x).
- ``variability``: standard deviation over presentations of p(y|x) (as in dataset cartography).
- ``correctness``: stored as 1 − fraction of presentations classified correctly.
- ``el2n`` (Paul et al., NeurIPS 2021): ‖softmax(f(x)) − onehot(y)‖₂ at the end of a chosen epoch,
  in eval mode over the whole training set.

Choice of ours: the training-dynamics measures use the logits the example had *when it was
presented* in a minibatch (train mode, before that step's update) — free, and what Toneva et al.
and Pleiss et al. do; dataset cartography evaluates at epoch ends instead.
"""

from __future__ import annotations

from functools import reduce

import numpy as np
import torch
import torch.nn.functional as F

from sensprune.measures.buffers import StepBuffer, accumulator, restore
from sensprune.train.hooks import Hook, Run, StepInfo
from sensprune.train.loop import autocast_dtype
from sensprune.train.sources import predict_logits

DYNAMICS = ("loss", "forgetting", "aum", "confidence", "variability", "correctness")


def margins(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """AUM margin (B,): logit of the assigned label minus the largest other logit."""
    assigned = logits.gather(1, y[:, None]).squeeze(1)
    other = logits.scatter(1, y[:, None], float("-inf")).max(1).values
    return assigned - other


def el2n(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """EL2N (B,): ‖softmax(logits) − onehot(y)‖₂."""
    p = F.softmax(logits.double(), dim=1)
    return (p - F.one_hot(y, p.shape[1]).double()).norm(dim=1)


def _presentation_stats(logits: np.ndarray, y: np.ndarray):
    """Per row, in float64: p(y|x) (softmax), whether argmax = y, and the AUM margin (as :func:`margins`).

    The work runs on the transpose (K, B): numpy reduces a short last axis row by row, ~4x slower than
    K elementwise passes over B-long rows (``functools.reduce``), which is what the fold's time was.
    """
    lt = logits.T.astype(np.float64)  # (K, B), a contiguous copy
    cols = np.arange(len(y))
    assigned = lt[y, cols]
    top = reduce(np.maximum, lt)
    correct = lt.argmax(0) == y
    e = np.exp(lt - top)
    p = e[y, cols] / reduce(np.add, e)
    lt[y, cols] = -np.inf
    return p, correct, assigned - reduce(np.maximum, lt)


class DynamicsHook(Hook):
    """Online accumulators (all O(N)) for the training-dynamics measures in :data:`DYNAMICS`.

    Each step's logits are buffered and folded into the arrays once per epoch (see StepBuffer).
    """

    ARRAYS = ("n_pres", "loss_sum", "margin_sum", "p_sum", "p_sq_sum", "correct_sum", "forgets",
              "prev_correct", "ever_correct")

    def __init__(self, n: int):
        for name in self.ARRAYS:
            dtype = bool if name.endswith("correct") and name != "correct_sum" else (
                np.int64 if name in ("n_pres", "correct_sum", "forgets") else np.float64)
            setattr(self, name, accumulator(n, dtype))
        self.buffer = StepBuffer()

    def on_step(self, step: StepInfo, run: Run) -> None:
        self.buffer.append(step.idx, step.logits, step.y, step.losses)

    def on_epoch_end(self, epoch: int, run: Run) -> None:
        self._fold()

    def _fold(self) -> None:
        n = len(self.n_pres)
        for idx, logits, y, losses in self.buffer.drain():
            # one device→host copy per tensor and epoch; the float64 arithmetic runs in numpy, whose
            # vectorised exp is ~10x faster than torch's float64 softmax on CPU
            lg, yy, ls = logits.cpu().numpy(), y.cpu().numpy(), losses.cpu().numpy()
            at = idx
            # a whole epoch over all N, each once (a sampler with replacement can repeat within a step): rows in
            # index order
            if len(idx) == n and np.bincount(idx, minlength=n).max() == 1:
                order = np.empty_like(idx)
                order[idx] = np.arange(n)
                lg, yy, ls, at = lg[order], yy[order], ls[order], slice(None)  # then every update is contiguous
            p, correct, margin = _presentation_stats(lg, yy)
            self.forgets[at] += (self.n_pres[at] > 0) & self.prev_correct[at] & ~correct
            self.prev_correct[at] = correct
            self.ever_correct[at] |= correct
            self.n_pres[at] += 1
            self.loss_sum[at] += ls.astype(np.float64)
            self.margin_sum[at] += margin
            self.p_sum[at] += p
            self.p_sq_sum[at] += p * p
            self.correct_sum[at] += correct

    def values(self) -> dict[str, np.ndarray]:
        self._fold()
        k = np.maximum(self.n_pres, 1).astype(np.float64)
        none = self.n_pres == 0
        mean_p = self.p_sum / k
        var_p = np.maximum(self.p_sq_sum / k - mean_p ** 2, 0.0)
        out = {
            "loss": self.loss_sum / k,
            "forgetting": np.where(self.ever_correct, self.forgets, self.n_pres + 1).astype(np.float64),
            "aum": -self.margin_sum / k,
            "confidence": 1.0 - mean_p,
            "variability": np.sqrt(var_p),
            "correctness": 1.0 - self.correct_sum / k,
        }
        return {name: np.where(none, np.nan, v) for name, v in out.items()}

    def state_dict(self):
        self._fold()
        return {name: getattr(self, name) for name in self.ARRAYS}

    def load_state_dict(self, state):
        for name in self.ARRAYS:
            setattr(self, name, restore(getattr(self, name), state[name]))


class EL2NHook(Hook):
    """EL2N over the whole training set at the end of 1-based ``epoch`` (eval mode).

    Its cost is one forward pass over the N training examples, once. It cannot reuse the forwards
    of training: Paul et al. (2021) score every example at the *same* parameters (the end of the
    epoch, eval mode), while each training batch is seen at its own θ_s; the only forward at the
    end-of-epoch parameters is the first batch of the next epoch (B/N of the pass). Under ``--amp``
    the pass runs in the training precision.
    """

    replicated = True

    def __init__(self, n: int, epoch: int):
        self.epoch = epoch
        self.value = np.full(n, np.nan)

    def on_epoch_end(self, epoch: int, run: Run) -> None:
        if epoch + 1 == self.epoch:
            logits, y = _train_logits(run)
            self.value = el2n(logits, y).cpu().numpy()

    def values(self) -> dict[str, np.ndarray]:
        return {"el2n": self.value}

    def state_dict(self):
        return {"value": self.value}

    def load_state_dict(self, state):
        self.value = state["value"].copy()


def _train_logits(run: Run):

    # in the precision the run trains in (--amp bf16: a bf16 forward, as the training forward)
    return predict_logits(run.model, run.train, run.config.eval_batch_size, with_labels=True,
                          amp=autocast_dtype(run.config, run.device))
