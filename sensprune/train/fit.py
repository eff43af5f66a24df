"""The ``fit`` rule: train until the model fits its own training examples (the bench's ``budget = "fit"``).

It lives in the training package, below the stages, so that a measure that trains models to fit
(:mod:`sensprune.measures.memorization`) and the bench (:mod:`sensprune.benchmark.unit`, which re-exports
:func:`fit_stop`) use the one rule.
"""

from __future__ import annotations

#: The defaults of the rule, the same numbers as ``[bench] fit_threshold``, ``max_epochs`` and ``fit_schedule``
#: of :class:`sensprune.benchmark.config.BenchConfig` (a test pins the agreement): eval-mode training accuracy
#: 0.99 on the run's own (possibly noisy) labels, checked after every epoch, at most 100 epochs, constant lr.
FIT_THRESHOLD = 0.99
FIT_MAX_EPOCHS = 100
FIT_SCHEDULE = "constant"


def fit_stop(kept, threshold: float, batch_size: int):
    """The stop callback of the ``fit`` budget: True once the eval-mode accuracy on ``kept`` reaches ``threshold``."""
    from sensprune.train.sources import evaluate

    def stop(rec: dict, run) -> bool:
        return evaluate(run.model, kept, batch_size)["acc"] >= threshold
    return stop
