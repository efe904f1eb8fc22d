"""copier-mlops: render the MLOps project template and set it up."""

__version__ = "0.1.0"
