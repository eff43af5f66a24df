"""User plugins ``module:callable`` (models and datasets), resolved with :func:`pkgutil.resolve_name`.

The current folder is searched first, as ``python -m`` would, but only while the plugin is imported:
``sys.path`` is restored afterwards, so loading a plugin changes no global state beyond the import.
"""

from __future__ import annotations

import os
import pkgutil
import sys
from typing import Any, Callable

from sensprune.errors import ValidationError


def resolve_plugin(target: str, what: str) -> Callable[..., Any]:
    """The callable named by ``target`` = ``module:attr`` (``attr`` may be dotted).

    ``what`` names the plugin in errors, e.g. ``"Model plugin"`` (then ``Model plugin 'mod:fn' ...``).
    A malformed target, a failed import (whatever the module raises) or a non-callable is a one-line
    :class:`ValidationError`.
    """
    module, sep, attr = str(target).partition(":")
    if not sep or not module or not attr:
        raise ValidationError(f"{what} '{target}': expected plugin:module:callable, e.g. plugin:mydata:load.")
    cwd = os.getcwd()
    added = cwd not in sys.path
    if added:
        sys.path.insert(0, cwd)
    try:
        obj = pkgutil.resolve_name(f"{module}:{attr}")
    except Exception as exc:  # ImportError, AttributeError, or whatever the plugin module raises on import
        raise ValidationError(f"{what} '{target}' could not be imported: {type(exc).__name__}: {exc}") from None
    finally:
        if added and cwd in sys.path:
            sys.path.remove(cwd)
    if not callable(obj):
        raise ValidationError(f"{what} '{target}' is not callable (got {type(obj).__name__}).")
    return obj


def lazy_exports(package: str, names: dict[str, str]):
    """``(__getattr__, __dir__)`` for a stage package that re-exports ``names`` = ``{name: submodule}`` lazily.

    A stage package imports nothing on its own (PEP 562): ``import sensprune.pruning.selection`` stays
    torch-free, and ``from sensprune.pruning import select`` imports :mod:`sensprune.pruning.stage` on first use.
    """
    import importlib

    def __getattr__(name: str):
        sub = names.get(name)
        if sub is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        return getattr(importlib.import_module(f"{package}.{sub}"), name)

    def __dir__():
        return sorted({*names, *sys.modules[package].__dict__})

    return __getattr__, __dir__
