"""Errors a user can act on: the CLI prints them as one line and exits, never with a traceback."""


class ProjectError(Exception):
    """A problem with the user's input, settings or data; the message names it and the fix."""

    exit_code = 2


class DataValidationError(ProjectError):
    """The data broke its contract; the validation gate stops the pipeline."""

    exit_code = 1


class QualityGateError(ProjectError):
    """A model missed a quality threshold or a behavioural test; it will not be promoted."""

    exit_code = 1
