"""The one error type the CLI turns into a one-line message."""


class GeneratorError(Exception):
    """A user mistake or a failed step; printed as `copier-mlops: error: <message>`."""
