"""The pipeline stages, one module each, `run(params, paths, ...)`: what a project's pipeline/<stage>.py calls."""
