"""copier-mlops: render the MLOps project template and set it up."""
