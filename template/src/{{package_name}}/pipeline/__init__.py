"""One module per DVC stage, each with a `run(params, paths)` function."""
