"""Errors that carry a message for the user rather than a traceback."""


class StageError(Exception):
    """A pipeline stage cannot go on: bad input, bad data or a model that falls short.

    The CLI prints the message on one or more lines and exits with status 1.
    """
