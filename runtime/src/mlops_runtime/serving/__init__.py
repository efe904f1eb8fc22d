"""The prediction service, its model loader and its prediction log."""
