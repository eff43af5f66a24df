"""sensprune: find the training examples a network memorizes, then prune or reweight them.

Based on Arpit et al., "A Closer Look at Memorization in Deep Networks" (ICML 2017).
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:  # one version source: pyproject.toml, read from the installed package's metadata
    __version__ = _version("sensprune")
except PackageNotFoundError:  # a source tree that was never installed (pip install -e .)
    __version__ = "0+unknown"
FORMAT_VERSION = 1

__all__ = ["__version__", "FORMAT_VERSION"]
