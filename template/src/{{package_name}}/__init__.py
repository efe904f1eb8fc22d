"""The project's ML pipeline, model and tooling."""

__version__ = "0.1.0"
