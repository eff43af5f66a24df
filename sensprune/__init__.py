"""sensprune: find the training examples a network memorizes, then prune or reweight them.

Based on Arpit et al., "A Closer Look at Memorization in Deep Networks" (ICML 2017).
"""

__version__ = "0.1.0"
FORMAT_VERSION = 1

__all__ = ["__version__", "FORMAT_VERSION"]
