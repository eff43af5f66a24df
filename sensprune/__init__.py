"""sensprune: find the training examples a network memorizes, then prune or reweight them.

Based on Arpit et al., "A Closer Look at Memorization in Deep Networks" (ICML 2017).
"""

from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

try:  # one version source: pyproject.toml, read from the installed package's metadata
    __version__ = _version("sensprune")
except PackageNotFoundError:  # a source tree that was never installed (pip install -e .)
    __version__ = "0+unknown"
FORMAT_VERSION = 1

# The facade (``sp.score``, ``sp.prune``, ``sp.bench``, ``sp.Tracker``, ...), imported on first use so that
# ``import sensprune`` (and the CLI's start-up) stays light: it imports neither torch nor numpy. The verbs are
# plain functions of :mod:`sensprune.api`; the stage packages are nouns (``scoring``, ``pruning``, ``benchmark``,
# ``reporting``).
_LAZY = {
    "score": "sensprune.api", "prune": "sensprune.api", "bench": "sensprune.api",
    "Selection": "sensprune.api", "BenchResult": "sensprune.api", "as_dataset": "sensprune.api",
    "Tracker": "sensprune.tracker",
    "MeasureOptions": "sensprune.config", "DataOptions": "sensprune.config",
    "ScoreTable": "sensprune.scoring.table", "load_scores": "sensprune.scoring.table",
    "load_selection": "sensprune.pruning.selection", "load_dataset": "sensprune.data",
    "SensPruneError": "sensprune.errors", "ValidationError": "sensprune.errors",
}

__all__ = ["__version__", "FORMAT_VERSION", *_LAZY]


def __getattr__(name: str):
    import importlib

    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sensprune' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_LAZY})
