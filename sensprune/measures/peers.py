"""Peer scores computed in the same warmup run (docs/measures.md §6), all oriented higher = harder.

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
    """Per row, in float64: p(y|x) (softmax) and the AUM margin (as :func:`margins`).

    The work runs on a contiguous (K, B) transpose: reductions over its first axis are K elementwise
    passes over B-long rows, where numpy reduces a short last axis row by row (~4x slower); that
    was the fold's time. Whether argmax = y comes from the loop (``StepInfo.correct``).
    """
    lt = np.ascontiguousarray(logits.T, dtype=np.float64)  # (K, B)
    cols = np.arange(len(y))
    assigned = lt[y, cols]
    top = lt.max(0)
    e = np.exp(lt - top)
    p = e[y, cols] / e.sum(0)
    lt[y, cols] = -np.inf
    return p, assigned - lt.max(0)


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
        hit = step.correct if step.correct is not None else step.logits.argmax(1) == step.y
        self.buffer.append(step.idx, step.logits, step.y, step.losses, hit)

    def on_epoch_end(self, epoch: int, run: Run) -> None:
        self._fold()

    def _fold(self) -> None:
        groups = self.buffer.drain()
        # a whole epoch over all N, each example once: the updates below can run in index order, contiguous
        whole = self.buffer.distinct and len(groups) == 1 and len(groups[0][0]) == len(self.n_pres)
        for idx, logits, y, losses, hit in groups:
            # one device→host copy per tensor and epoch; the float64 arithmetic runs in numpy, whose
            # vectorised exp is ~10x faster than torch's float64 softmax on CPU
            p, margin = _presentation_stats(logits.cpu().numpy(), y.cpu().numpy())
            correct, ls, at = hit.cpu().numpy(), losses.cpu().numpy().astype(np.float64), idx
            if whole:  # gather the per-example results (not the (N, K) logits) into index order
                order = np.empty_like(idx)
                order[idx] = np.arange(len(idx))
                p, margin, correct, ls, at = p[order], margin[order], correct[order], ls[order], slice(None)
            self.forgets[at] += (self.n_pres[at] > 0) & self.prev_correct[at] & ~correct
            self.prev_correct[at] = correct
            self.ever_correct[at] |= correct
            self.n_pres[at] += 1
            self.loss_sum[at] += ls
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
