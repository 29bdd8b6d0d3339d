"""Errors a user can act on, and every exit code the CLI uses: the one place both are defined.

The CLI prints an error as one line and exits with its code, never with a traceback.
"""

import errno
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from enum import IntEnum


class ExitCode(IntEnum):
    """What a command's exit status means; CI and cron jobs branch on these."""

    OK = 0
    GATE = 1  # a gate refused: data broke its contract, or a model missed the quality bar
    INPUT = 2  # bad input, settings or environment: the message names it and the fix
    ALERT = 3  # `monitor` raised an alert (drift or a quality drop)
    UNDELIVERED = 4  # `monitor` raised an alert that could not be delivered
    UNDECIDED = 5  # `compare` has too few labelled rows to decide


EXIT_CODES_HELP = (
    "Exit status: "
    + "; ".join(f"{code.value} {code.name.lower()}" for code in ExitCode)
    + " (see errors.py)."
)


def listed(names: Sequence[str], limit: int = 5) -> str:
    """Names for a one-line message: the first `limit`, then how many were left out."""
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


class ProjectError(Exception):
    """A problem with the user's input, settings or data; the message names it and the fix."""

    exit_code = ExitCode.INPUT


class DataValidationError(ProjectError):
    """The data broke its contract; the validation gate stops the pipeline."""

    exit_code = ExitCode.GATE


class QualityGateError(ProjectError):
    """A model missed a quality threshold or a behavioural test; it will not be promoted."""

    exit_code = ExitCode.GATE


class NotificationError(ProjectError):
    """An alert could not be delivered."""

    exit_code = ExitCode.UNDELIVERED


class MonitoringInputError(ProjectError):
    """A window, reference or label file that cannot be monitored; names the file and the fix."""


class MonitoringReportError(ProjectError):
    """Reports that could not be written after the verdict was printed and any alert sent."""


class StoppedError(ProjectError):
    """A command stopped by a signal; the processes it started were stopped with it."""


@contextmanager
def file_errors_named() -> Iterator[None]:
    """A path that cannot be read or written is a one-line error naming it, not a traceback.

    Only the user's paths: missing, unreadable, read-only or a file where a folder should be.
    A full disk or an I/O error is the machine's, worth a retry: it stays as it is.
    """
    try:
        yield
    except (
        PermissionError,
        FileNotFoundError,
        FileExistsError,  # a file where a folder is to be made
        NotADirectoryError,
        IsADirectoryError,
    ) as error:
        raise _path_error(error) from None
    except OSError as error:
        if error.errno != errno.EROFS:
            raise
        raise _path_error(error) from None


def _path_error(error: OSError) -> ProjectError:
    return ProjectError(
        f"{error.filename or 'a file'}: {error.strerror or error}; fix: make the input "
        "readable and the output folder writable, or choose other paths"
    )
