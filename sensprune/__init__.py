"""sensprune: find the training examples a network memorizes, then prune or reweight them.

Based on Arpit et al., "A Closer Look at Memorization in Deep Networks" (ICML 2017).
"""

import sys as _sys
import types as _types
from importlib.metadata import PackageNotFoundError
from importlib.metadata import version as _version

try:  # one version source: pyproject.toml, read from the installed package's metadata
    __version__ = _version("sensprune")
except PackageNotFoundError:  # a source tree that was never installed (pip install -e .)
    __version__ = "0+unknown"
FORMAT_VERSION = 1

# The facade (``sp.score``, ``sp.prune``, ``sp.bench``, ``sp.Tracker``), imported on first use so that
# ``import sensprune`` (and the CLI's start-up) stays light: it imports neither torch nor numpy.
#
# ``score``, ``prune`` and ``bench`` are also the stage modules (``sensprune/score/stage.py``, ...). Python sets
# a submodule as an attribute of its package on import, so the facade names are the modules themselves,
# made callable: ``sp.score(...)`` calls :func:`sensprune.api.score`, and ``sensprune.score.stage.ScoreConfig``,
# ``from sensprune import bench as B`` keep working.
_FACADE = ("score", "prune", "bench")
_LAZY = {
    "Selection": "sensprune.api", "BenchResult": "sensprune.api", "as_dataset": "sensprune.api",
    "Tracker": "sensprune.tracker",
    "MeasureOptions": "sensprune.config", "DataOptions": "sensprune.config",
    "ScoreTable": "sensprune.score.table", "load_scores": "sensprune.score.table",
    "load_selection": "sensprune.prune.selection", "load_dataset": "sensprune.data",
    "SensPruneError": "sensprune.errors", "ValidationError": "sensprune.errors",
}

__all__ = ["__version__", "FORMAT_VERSION", *_FACADE, *_LAZY]


class _FacadeModule(_types.ModuleType):
    """A stage module that, called, runs the facade function of the same name in :mod:`sensprune.api`."""

    def __call__(self, *args, **kwargs):
        from sensprune import api

        return getattr(api, self.__name__.rpartition(".")[2])(*args, **kwargs)


class _Package(_types.ModuleType):
    def __setattr__(self, name, value):
        if name in _FACADE and type(value) is _types.ModuleType:
            value.__class__ = _FacadeModule
        super().__setattr__(name, value)


def __getattr__(name: str):
    import importlib

    if name in _FACADE:
        return importlib.import_module(f"{__name__}.{name}")  # set on the package (callable) by the import
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'sensprune' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *_FACADE, *_LAZY})


_sys.modules[__name__].__class__ = _Package
for _name in _FACADE:  # stage modules imported before this point (none in a normal import)
    if type(_sys.modules.get(f"{__name__}.{_name}")) is _types.ModuleType:
        _sys.modules[f"{__name__}.{_name}"].__class__ = _FacadeModule
