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
