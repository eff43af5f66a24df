"""The one progress bar: tqdm on stderr when a person watches it, off otherwise.

Every loop that shows progress (training epochs, bench retrains, report figures, the memorization and
loss_sensitivity engines, the reproduce experiments) calls :func:`progress_bar`, so that one rule decides
when a bar is drawn: only when ``enabled`` (no ``--quiet``) and stderr is a terminal, or in a notebook
(tqdm's widget). A log file, a pipe or a test runner gets no carriage-return bars.
"""

from __future__ import annotations

import sys
from typing import Any, Iterable


def shows_progress(enabled: bool = True, stream: Any = None) -> bool:
    """Whether :func:`progress_bar` draws: ``enabled`` and (``stream``, default stderr, is a terminal or this
    is a notebook)."""
    if not enabled:
        return False
    from tqdm.auto import tqdm

    if any(c.__module__ == "tqdm.notebook" for c in tqdm.__mro__):  # tqdm.auto chose the notebook widget
        return True
    stream = sys.stderr if stream is None else stream
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


def progress_bar(iterable: Iterable | None = None, *, enabled: bool = True, **kwargs: Any):
    """``tqdm(iterable, **kwargs)`` on stderr, disabled unless :func:`shows_progress` (a disabled bar still
    iterates and takes ``update``, ``set_postfix`` and ``close``)."""
    from tqdm.auto import tqdm

    kwargs.setdefault("file", sys.stderr)
    return tqdm(iterable, disable=not shows_progress(enabled, kwargs["file"]), **kwargs)


def use_thread_lock() -> None:
    """Give tqdm a thread lock before starting a spawn pool: its default multiprocessing lock leaks a
    semaphore under spawn."""
    import threading

    from tqdm.auto import tqdm

    tqdm.set_lock(threading.RLock())
