"""Exceptions raised by sensprune.

Every error a user can cause derives from :class:`SensPruneError`; the CLI turns
it into a one-line message and a non-zero exit code, never a traceback.
"""


class SensPruneError(Exception):
    """Base class of every error sensprune reports to the user."""


class ValidationError(SensPruneError, ValueError):
    """Bad input: a parameter, a file or data that cannot be used as given."""


class ArtifactMismatchError(SensPruneError):
    """An artifact was made from other data or another config than the one asked for."""


class TrainingDivergedError(SensPruneError):
    """The loss became NaN or infinite during training."""


class SensPruneWarning(UserWarning):
    """Something the user should know that does not stop the run (the CLI prints it as one 'Warning:' line)."""


class StorageError(SensPruneError, OSError):
    """The file system refused an operation on a path (a full disk, a lost permission): the message names the
    operation and the path the user knows (``--out``, not a hidden staging folder). Still an :class:`OSError`
    with its ``errno``, so code that handles a full disk keeps working."""

    def __init__(self, operation: str, path, exc: OSError):
        super().__init__(exc.errno, exc.strerror or str(exc) or type(exc).__name__, str(path))
        self.operation = operation
        self.message = f"Cannot {operation} {path}: {self.strerror}."

    def __str__(self) -> str:
        return self.message
